"""The in-place KV cache: its layers hold exactly what Hugging Face's would, whatever rows are dropped."""

import random

import pytest
import torch
from transformers.cache_utils import DynamicLayer

from infscale.models.kv_cache import ReservedLayer, compaction_order, stacked_cache


@pytest.mark.parametrize("keep,rows,expected", [
    ([0, 1, 2], 3, [0, 1, 2]),          # nothing dropped: nothing moves
    ([0, 2, 3], 4, [0, 3, 2]),          # row 1 dropped: the last row fills its place, row 2 stays
    ([1, 2, 3], 4, [3, 1, 2]),
    ([4], 5, [4]),
    ([], 3, []),
])
def test_compaction_order_moves_only_rows_beyond_the_new_size(keep, rows, expected):
    assert compaction_order(keep, rows) == expected


def test_compaction_order_is_a_permutation_of_keep_that_moves_the_fewest():
    rng = random.Random(0)
    for _ in range(200):
        rows = rng.randint(1, 40)
        keep = sorted(rng.sample(range(rows), rng.randint(0, rows)))
        order = compaction_order(keep, rows)
        assert sorted(order) == keep
        assert all(order[i] == i for i in range(len(order)) if i in keep)
        assert sum(order[i] != i for i in range(len(order))) == sum(r >= len(keep) for r in keep)


def test_compaction_order_names_a_bad_row():
    with pytest.raises(ValueError, match="batch of 3"):
        compaction_order([0, 5], 3)


def _layer_pair(rows=6, length=5, heads=2, dim=3, reserve=4):
    keys, values = torch.randn(rows, heads, length, dim), torch.randn(rows, heads, length, dim)
    ours = ReservedLayer(keys.clone(), values.clone(), reserve)
    theirs = DynamicLayer()
    theirs.lazy_initialization(keys, values)
    theirs.keys, theirs.values = keys.clone(), values.clone()
    return ours, theirs


@pytest.mark.parametrize("indices", [[0, 2, 3], [0, 5, 2, 3, 4], [3, 1, 2], [1, 1, 0], [5, 4, 3, 2, 1, 0],
                                     [0, 1, 2, 3, 4, 5], [2, 2, 2, 2, 2, 2, 2, 2]])
def test_batch_select_then_decode_equals_huggingface_layer(indices):
    torch.manual_seed(0)
    ours, theirs = _layer_pair()
    index = torch.tensor(indices)
    ours.batch_select_indices(index)
    theirs.batch_select_indices(index)
    assert torch.equal(ours.keys, theirs.keys) and torch.equal(ours.values, theirs.values)
    for _ in range(6):                  # past the reserved room: the buffer grows once
        new_k, new_v = torch.randn(len(indices), 2, 1, 3), torch.randn(len(indices), 2, 1, 3)
        got = ours.update(new_k, new_v)
        want = theirs.update(new_k, new_v)
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
    assert ours.get_seq_length() == theirs.get_seq_length() == 11


def test_compaction_copies_only_the_moved_rows():
    ours, _ = _layer_pair(rows=8)
    before = ours._key_buffer.data_ptr()
    ours.batch_select_indices(torch.tensor(compaction_order([0, 1, 2, 4, 5, 6, 7], 8)))
    assert ours._key_buffer.data_ptr() == before          # the same storage, its leading 7 rows
    assert ours.keys.shape[0] == 7


def test_stacked_cache_left_pads_each_row_with_zeros_and_has_room():
    torch.manual_seed(1)
    rows = [[(torch.randn(1, 2, n, 3), torch.randn(1, 2, n, 3)) for _ in range(4)] for n in (5, 2, 7)]
    cache, pads = stacked_cache(rows, 3)
    assert pads == [2, 5, 0]
    for layer_i, layer in enumerate(cache.layers):
        assert layer.get_seq_length() == 7 and layer.capacity == 10
        for part, tensor in ((0, layer.keys), (1, layer.values)):
            want = torch.cat([torch.nn.functional.pad(kv[layer_i][part], (0, 0, pad, 0))
                              for kv, pad in zip(rows, pads)])
            assert torch.equal(tensor, want)
