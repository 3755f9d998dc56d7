"""PRM scoring, REBASE / beam search and PRM-based selection (issue 5)."""

from __future__ import annotations

import math
import random
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import REPO, Workflow, run_config
from infscale.estimators import VOTE_TIE_RTOL
from infscale.io import read_json, read_jsonl
from infscale.methods import build_config
from infscale.methods.beam import beam_children
from infscale.methods.rebase import allocate_children
from infscale.scoring.features import step_surprisal
from infscale.scoring.scorers import HubPRM, PRMConfig, ValueHead, ValueHeadPRM
from infscale.steps import split_steps

SEARCH_CONFIG = REPO / "config" / "test-search-tiny.yaml"


# --- allocation, worked by hand -------------------------------------------------------------------------

def test_allocate_one_node_gets_the_whole_width():
    assert allocate_children([0.3], 5, 0.2) == [5]


def test_allocate_all_equal_scores_split_evenly_first_visited_first():
    assert allocate_children([0.4, 0.4, 0.4], 6, 0.2) == [2, 2, 2]
    # W=4: n0 = ceil(4·1/3) = 2; then ceil(2·1/2) = 1; the last takes the remaining 1
    assert allocate_children([0.4, 0.4, 0.4], 4, 0.2) == [2, 1, 1]
    # 3·w/(3w) may round to 1.0000000002: must not become 2 (and starve the last node)
    assert allocate_children([0.7] * 3, 3, 0.2) == [1, 1, 1]


def test_allocate_ties_keep_input_order():
    # two equal nodes, W=3: the first gets ceil(1.5) = 2, the second 1
    assert allocate_children([1.0, 1.0], 3, 1.0) == [2, 1]
    # a tie behind a clear winner: the winner is visited first, then the tied nodes in input order
    # T=1: w = e^0, e^-1, e^-1 -> S = 1.7358; n_winner = ceil(3 / 1.7358) = 2; then ceil(1·w/(2w)) = 1, then 0
    assert allocate_children([0.0, 1.0, 0.0], 3, 1.0) == [1, 2, 0]


def test_allocate_width_smaller_than_the_number_of_nodes():
    # T=1, scores .1 .2 .3 .4: w (÷e^.4) = .741 .819 .905 1, S = 3.464
    # node .4: ceil(2·1/3.464) = 1; node .3: ceil(1·.905/2.464) = 1; width used up
    assert allocate_children([0.1, 0.2, 0.3, 0.4], 2, 1.0) == [0, 0, 1, 1]


def test_allocate_low_temperature_is_greedy():
    assert allocate_children([0.1, 0.9, 0.5], 4, 0.01) == [0, 4, 0]


def test_allocate_counts_always_sum_to_the_width():
    rng = random.Random(0)
    for _ in range(500):
        scores = [rng.random() for _ in range(rng.randint(1, 20))]
        width = rng.randint(0, 40)
        counts = allocate_children(scores, width, rng.choice([0.05, 0.2, 1.0, 10.0]))
        assert sum(counts) == width and min(counts) >= 0
        # higher score never gets fewer children than a lower one
        order = sorted(range(len(scores)), key=lambda i: -scores[i])
        assert all(counts[a] >= counts[b] for a, b in zip(order, order[1:]))


def test_allocate_rejects_bad_arguments():
    assert allocate_children([], 3, 0.2) == []
    with pytest.raises(ValueError, match="softmax_temperature"):
        allocate_children([0.1], 3, 0.0)
    with pytest.raises(ValueError, match="width"):
        allocate_children([0.1], -1, 0.2)


def test_beam_keeps_top_width_over_beam_width():
    assert beam_children([0.1, 0.9, 0.5, 0.3], 4, 2) == [0, 2, 2, 0]
    assert beam_children([0.1, 0.9, 0.5, 0.3], 3, 2) == [0, 2, 0, 0]
    assert beam_children([0.1, 0.9, 0.5, 0.3], 1, 2) == [0, 1, 0, 0]


def test_search_configs_check_their_keys():
    with pytest.raises(ValueError, match="unknown key"):
        build_config("r", {"kind": "rebase", "width": 3, "scorer": "prm", "beam_width": 2})
    with pytest.raises(ValueError, match="beam_width"):
        build_config("b", {"kind": "beam", "width": 2, "scorer": "prm", "beam_width": 3})


# --- steps and AUROC ------------------------------------------------------------------------------------


# --- PRMs on a real model -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def smollm(smollm2_checkpoint: Path):
    from infscale.models.loading import load_model

    torch.set_num_threads(1)
    return load_model({"name": "smollm2-135m", "source": "local", "path": str(smollm2_checkpoint)}, device="cpu")


@pytest.mark.slow
def test_hub_prm_reads_label_probabilities_at_every_step_tag(smollm):
    # SmolLM2 stands in for a Math-Shepherd checkpoint: same code path, real forward pass
    cfg = PRMConfig("ms", "hub", id="local", step_tag="ки", good_token="+", bad_token="-")
    prm = HubPRM(cfg, lm=smollm)
    steps = [" 4 - 1 = 3\n", "3 - 7 = -4\n", "The answer is -4."]
    (scores,), (flops,) = prm.score_paths(["What is 4 - 1 - 7?"], [""], [steps])
    assert len(scores) == 3 and all(0 < s < 1 for s in scores) and flops > 0
    text, ends = prm.format("What is 4 - 1 - 7?", steps)
    assert text.count("ки") == 3 and all(text[e - len("ки"):e] == "ки" for e in ends)
    enc = smollm.tokenizer(text, return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0].tolist()
    with torch.no_grad():
        logits = smollm.model(**enc).logits[0]
    plus, minus = (smollm.tokenizer.encode(t, add_special_tokens=False)[0] for t in "+-")
    for score, end in zip(scores, ends):
        position = max(i for i, (a, b) in enumerate(offsets) if a < end and b > a)
        expected = torch.softmax(logits[position, [plus, minus]].float(), -1)[0]
        assert score == pytest.approx(float(expected), abs=1e-5)


def test_pool_quality_reduces_step_scores_and_names_missing_responses(tmp_path):
    from infscale.io import write_jsonl
    from infscale.reports.prm_quality import pool_quality

    graded, scores = tmp_path / "graded.jsonl", tmp_path / "scores.jsonl"
    write_jsonl(graded, [{"id": q, "sample": s, "correct": ok} for q, s, ok in
                         [("a", 0, True), ("a", 1, False), ("b", 0, True), ("b", 1, False)]])
    # last step ranks every right answer first; the minimum ranks them last
    step_scores = {("a", 0): [0.1, 0.9], ("a", 1): [0.5, 0.2], ("b", 0): [0.05, 0.8], ("b", 1): [0.6, 0.3]}
    write_jsonl(scores, [{"id": q, "sample": s, "step_scores": v} for (q, s), v in step_scores.items()])
    (row,) = pool_quality([("d", "m", "sample3", "vh")], [graded], [scores]).to_dict("records")
    assert (row["n_questions"], row["n_responses"], row["accuracy"]) == (2, 4, 50.0)
    assert (row["auroc_last"], row["auroc_min"], row["auroc_mean"]) == (1.0, 0.0, 0.75)
    assert row["auroc_last_lo"] == row["auroc_last_hi"] == 1.0
    write_jsonl(scores, [{"id": "a", "sample": 0, "step_scores": [0.5]}])
    with pytest.raises(ValueError, match=r"scores.jsonl: no step scores for 3 response\(s\)"):
        pool_quality([("d", "m", "sample3", "vh")], [graded], [scores])


def test_follows_reference_tracks_the_worked_solution():
    from infscale.scoring.train_prm import follows_reference

    solution = "4 - 1 = 3\n3 - 7 = -4"
    assert follows_reference([" 4 - 1 = 3\n", "3 - 7 = -4.\n", "The answer is -4."], solution) == [True, True]
    assert follows_reference([" 4 - 1 = 2\n", "2 - 7 = -5\n", "The answer is -5."], solution) == [False, False]
    # off the path once, off for good; steps past the reference are off it
    assert follows_reference(["4 - 1 = 3\n", "3 - 6 = -3\n", "-3 - 1 = -4\n", "x"], solution) == [True, False, False]
    assert follows_reference(["The answer is -4."], solution) == []
    assert follows_reference(["a\n", "b"], None) is None


def test_step_surprisal_groups_all_tokens_and_number_tokens():
    assert step_surprisal([-1.0, -3.0, -0.5], [" 6", " =", " 1"]) == [pytest.approx(-1.5), -0.75, -3.0, -1.0]
    assert step_surprisal([-2.0], ["The"]) == [-2.0, 0.0, -2.0, 0.0]        # no number token
    assert step_surprisal([], []) == [0.0, 0.0, 0.0, 0.0]


@pytest.mark.slow
@pytest.mark.parametrize("features", [("hidden", "surprisal"), ("hidden",), ("surprisal",)])
def test_value_head_scores_match_a_manual_forward_pass(smollm, features):
    """Hidden state at each step's end and the step tokens' log-probabilities, from one plain forward pass."""
    torch.manual_seed(0)
    d = smollm.model.config.hidden_size * ("hidden" in features) + 4 * ("surprisal" in features)
    head = ValueHead(torch.randn(d) * 0.1, 0.2, torch.zeros(d), torch.ones(d), features)
    prm = ValueHeadPRM(PRMConfig("vh", "value_head", model="m"), head, smollm, reads_policy=True)
    prompt, steps = "Q: 4 - 1 - 7 =\nA:", [" 4 - 1 = 3\n", "3 - 7 = -4\n", "The answer is -4."]
    (scores,), _ = prm.score_paths(["q"], [prompt], [steps])
    tok = smollm.tokenizer
    prompt_ids = tok(prompt, add_special_tokens=False)["input_ids"]
    step_ids = [tok(s, add_special_tokens=False)["input_ids"] for s in steps]
    assert sum(step_ids, []) == tok("".join(steps), add_special_tokens=False)["input_ids"]   # clean boundaries
    with torch.no_grad():
        out = smollm.model(input_ids=torch.tensor([prompt_ids + sum(step_ids, [])]), output_hidden_states=True)
    logprobs = torch.log_softmax(out.logits[0].float(), -1)
    position = len(prompt_ids)
    for k, ids in enumerate(step_ids):
        token_logprobs = [float(logprobs[position + j - 1, t]) for j, t in enumerate(ids)]
        position += len(ids)
        parts = {"hidden": out.hidden_states[-1][0, position - 1],
                 "surprisal": torch.tensor(step_surprisal(token_logprobs, [tok.decode([t]) for t in ids]))}
        assert scores[k] == pytest.approx(float(head(torch.cat([parts[f] for f in features]))), abs=1e-4)


# --- the tiny search pipeline ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def search_run(tmp_path_factory: pytest.TempPathFactory, prepared_smollm2: Path) -> Workflow:
    return run_config(tmp_path_factory.mktemp("search-run"), SEARCH_CONFIG, {"smollm2-135m": prepared_smollm2})


def _trees(workflow: Workflow, method: str) -> dict[str, dict]:
    records = read_jsonl(workflow.path(f"results/gen/chain/smollm2-135m/{method}/samples.jsonl"))
    return {r["id"]: r["meta"]["tree"] for r in records if "tree" in r["meta"]}, records


@pytest.mark.slow
@pytest.mark.parametrize("method", ["rebase3", "beam4"])
def test_tree_invariants(search_run: Workflow, method: str):
    cfg = search_run.config["methods"][method]
    trees, records = _trees(search_run, method)
    assert len(trees) == search_run.config["datasets"]["chain"]["n_test"]
    for qid, tree in trees.items():
        nodes = tree["nodes"]
        assert [n["index"] for n in nodes] == list(range(len(nodes))) and nodes[0]["parent"] is None
        for node in nodes[1:]:
            parent = nodes[node["parent"]]
            assert node["depth"] == parent["depth"] + 1 and not parent["finished"]
            assert node["path_tokens"] == parent["path_tokens"] + node["tokens"]
            assert 0 < node["tokens"] <= cfg["max_step_tokens"] or node["finish_reason"] == "stop"
            assert node["path_tokens"] <= cfg["max_total_tokens"] and node["depth"] <= cfg["max_depth"]
            assert 0.0 <= node["score"] <= 1.0
            assert node["finished"] == (node["finish_reason"] is not None)
        # width: nodes made at a depth never exceed the width minus the leaves finished before it
        finished_before = 0
        for depth in range(1, max(n["depth"] for n in nodes) + 1):
            level = [n for n in nodes if n["depth"] == depth]
            assert len(level) <= cfg["width"] - finished_before
            finished_before += sum(n["finished"] for n in level)
        leaves = [n for n in nodes if n["finished"]]
        assert 1 <= len(leaves) <= cfg["width"]
        mine = sorted((r for r in records if r["id"] == qid), key=lambda r: r["sample"])
        assert [r["sample"] for r in mine] == list(range(len(leaves)))
        for record, leaf in zip(mine, leaves):
            path, node = [], leaf
            while node["parent"] is not None:
                path.append(node)
                node = nodes[node["parent"]]
            path.reverse()
            assert record["steps"] == [n["text"] for n in path] and record["completion"] == "".join(record["steps"])
            assert record["step_scores"] == pytest.approx([n["score"] for n in path])
            assert record["finish_reason"] == leaf["finish_reason"]
            assert record["flops"]["scorer"] > 0
        # shared costs split so that the question's records add up to the tree's totals
        assert sum(r["n_completion_tokens"] for r in mine) == sum(n["tokens"] for n in nodes)
        assert sum(r["n_prefill_tokens"] for r in mine) == mine[0]["n_prompt_tokens"]


@pytest.mark.slow
def test_search_selection_rules_match_brute_force(search_run: Workflow):
    base = "results/{}/chain/smollm2-135m/rebase3"
    graded = {(r["id"], r["sample"]): r for r in read_jsonl(search_run.path(base.format("graded") + "/samples.jsonl"))}
    scores = read_jsonl(search_run.path(base.format("scores") + "/prm-vh.jsonl"))
    assert {(s["id"], s["sample"]) for s in scores} == set(graded)
    assert all(s["flops"] == 0.0 and s["step_scores"] == graded[s["id"], s["sample"]]["step_scores"] for s in scores)
    metrics = read_json(search_run.path("results/metrics/chain/smollm2-135m/rebase3.json"))
    assert metrics["search"] and metrics["n_samples"] <= 3
    by_question: dict[str, list] = {}
    for s in scores:
        g = graded[s["id"], s["sample"]]
        by_question.setdefault(s["id"], []).append((s["step_scores"], g["extracted"], g["correct"] and g["extracted"] is not None))
    aggregations = {"last": lambda x: x[-1], "min": min, "mean": lambda x: sum(x) / len(x), "prod": np.prod}
    rows = {(r["rule"], r["weight"]): r for r in metrics["rows"]}
    assert all(r["n"] == metrics["n_samples"] for r in metrics["rows"])
    for agg, fn in aggregations.items():
        best, weighted = [], []
        for leaves in by_question.values():
            w = [fn(s) for s, _, _ in leaves]
            top = max(w)
            tied = [ok for wi, (_, _, ok) in zip(w, leaves) if wi == top]
            best.append(sum(tied) / len(tied))
            votes: dict = {}
            for wi, (_, answer, _) in zip(w, leaves):
                if answer is not None:
                    votes[answer] = votes.get(answer, 0.0) + wi
            if votes:
                high = max(votes.values())
                # the estimators' documented tie rule: totals within VOTE_TIE_RTOL·max(1, |top|) tie
                winners = [a for a, v in votes.items() if v >= high - VOTE_TIE_RTOL * max(1.0, abs(high))]
                right = {a for _, a, ok in leaves if ok}
                weighted.append(sum(a in right for a in winners) / len(winners))
            else:
                weighted.append(0.0)
        assert rows["best_of_n", f"prm-vh:{agg}"]["accuracy"] == pytest.approx(100 * np.mean(best))
        assert rows["weighted_majority", f"prm-vh:{agg}"]["accuracy"] == pytest.approx(100 * np.mean(weighted))


@pytest.mark.slow
def test_prm_quality_table_and_sampling_scores(search_run: Workflow):
    import pandas as pd

    (trained,) = pd.read_csv(search_run.path("results/tables/prm_quality.csv")).to_dict("records")
    assert (trained["scorer"], trained["dataset"], trained["model"], trained["features"]) == \
        ("vh", "chain", "smollm2-135m", "surprisal")
    for name in ("step_auroc", "reference_step_auroc", "final_auroc_last", "untrained_mean_step_auroc",
                 "untrained_min_step_auroc", "untrained_mean_reference_step_auroc", "untrained_min_reference_step_auroc"):
        # a tiny run may lack one class (NaN)
        assert math.isnan(trained[name]) or 0 <= trained[name] <= 1
        assert math.isnan(trained[f"{name}_lo"]) or 0 <= trained[f"{name}_lo"] <= trained[f"{name}_hi"] <= 1
    pools = pd.read_csv(search_run.path("results/tables/prm_pool_quality.csv"))
    assert sorted(pools["method"]) == sorted(set(pools["method"])) and "sample3" in set(pools["method"])
    assert (pools["n_responses"] > 0).all() and {"auroc_last", "auroc_min", "auroc_mean"} <= set(pools.columns)
    scores = read_jsonl(search_run.path("results/scores/chain/smollm2-135m/sample3/prm-vh.jsonl"))
    samples = read_jsonl(search_run.path("results/gen/chain/smollm2-135m/sample3/samples.jsonl"))
    assert len(scores) == len(samples)
    for s, r in zip(sorted(scores, key=lambda x: (x["id"], x["sample"])), samples):
        assert len(s["step_scores"]) == len(split_steps(r["completion"])) and s["flops"] > 0


@pytest.mark.slow
def test_adding_a_width_adds_jobs_without_code(tmp_path: Path, prepared_smollm2: Path):
    config = yaml.safe_load(SEARCH_CONFIG.read_text())
    workflow = Workflow(tmp_path, config, models={"smollm2-135m": prepared_smollm2})
    before = workflow.dry_run_jobs()
    config["methods"]["rebase5"] = {**config["methods"]["rebase3"], "width": 5, "shards": 1}
    config["runs"][0]["methods"].append("rebase5")
    workflow.write_config(config)
    after = workflow.dry_run_jobs()
    assert after["generate"] == before["generate"] + 1 and after["aggregate"] == before["aggregate"] + 1
    assert after["train_prm"] == before["train_prm"] == 1
    config["methods"]["rebase5"]["scorer"] = "nope"
    workflow.write_config(config)
    proc = workflow.run("--dry-run", check=False)
    assert proc.returncode != 0 and "nope" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_tree_hidden_states_match_rescoring_and_hub_prm_guides_a_search(smollm):
    """Scores read from the tree's cached states and sampled tokens' log-probabilities equal a fresh forward
    pass over prompt + path (so KV reuse changes nothing), and a text-based PRM (hub kind) can drive the same search."""
    from infscale.compute import ModelDims
    from infscale.methods.tree import leaf_records, run_search

    torch.manual_seed(1)
    d = smollm.model.config.hidden_size + 4
    head = ValueHead(torch.randn(d) * 0.1, 0.0, torch.zeros(d), torch.ones(d), ("hidden", "surprisal"))
    vh = ValueHeadPRM(PRMConfig("vh", "value_head", model="m"), head, smollm, reads_policy=True)
    hub = HubPRM(PRMConfig("ms", "hub", id="local"), lm=smollm)
    cfg = build_config("r", {"kind": "rebase", "width": 3, "scorer": "prm", "max_depth": 3,
                             "max_step_tokens": 10, "max_total_tokens": 24})
    question = {"id": "q", "question": "4 - 1 - 7 =", "meta": {"index": 0}}
    prompt = "Q: 3 + 2 + 3 =\nA: 3 + 2 = 5\n5 + 3 = 8\nThe answer is 8.\n\nQ: 4 - 1 - 7 =\nA:"
    dims = ModelDims.from_config(smollm.model.config.to_dict())

    def policy(scores, width):
        return allocate_children(scores, width, 0.2)

    for scorer in (vh, hub):
        nodes, costs = run_search(question, prompt, smollm, scorer, cfg, policy, torch.Generator().manual_seed(3), dims)
        records = leaf_records(question, prompt, nodes, costs, 1.0, scorer.name)
        # every sampled token is fed once, except a leaf's stop-string token
        generated = costs["n_prompt_tokens"] + sum(n.tokens for n in nodes)
        assert 1 <= len(records) <= 3 and generated - len(records) <= costs["tokens_fed"] <= generated
        rescored, _ = scorer.score_paths(["4 - 1 - 7 ="] * len(records), [prompt] * len(records),
                                         [r["steps"] for r in records])
        compared = 0
        for record, fresh in zip(records, rescored):
            steps = record["steps"]
            # a step a stop cut to nothing ("\n" then "\n": "\n\n" ends the path) holds sampled tokens its text
            # lacks: not comparable
            if any(not step for step in steps):
                continue
            assert record["step_scores"] == pytest.approx(fresh, abs=2e-3)
            compared += 1
        assert compared >= 1
        if scorer is hub:
            assert costs["scorer_flops"] > 1e9       # a text PRM re-reads every path
        else:
            assert costs["scorer_flops"] < 1e6       # the value head reads states the tree already has


@pytest.mark.slow
def test_batching_questions_changes_no_tree_and_splits_the_time(smollm):
    """Searched one at a time or several in one batch (`batch_rows`), every question grows the same tree:
    each child draws from its own stream and its rows' results do not depend on the batch."""
    from infscale.compute import ModelDims
    from infscale.methods.tree import run_searches
    from infscale.models.hf import stream_generator

    torch.manual_seed(2)
    d = smollm.model.config.hidden_size + 4
    head = ValueHead(torch.randn(d) * 0.1, 0.0, torch.zeros(d), torch.ones(d), ("hidden", "surprisal"))
    scorer = ValueHeadPRM(PRMConfig("vh", "value_head", model="m"), head, smollm, reads_policy=True)
    dims = ModelDims.from_config(smollm.model.config.to_dict())
    shots = "Q: 3 + 2 + 3 =\nA: 3 + 2 = 5\n5 + 3 = 8\nThe answer is 8.\n\n"
    questions = [{"id": f"q{i}", "question": q, "meta": {"index": i}}
                 for i, q in enumerate(["4 - 1 - 7 =", "2 + 9 + 1 =", "6 - 3 + 5 =", "8 + 8 - 2 ="])]

    def trees(batch_rows):
        cfg = build_config("r", {"kind": "rebase", "width": 3, "scorer": "prm", "max_depth": 3,
                                 "max_step_tokens": 10, "max_total_tokens": 24, "batch_rows": batch_rows})
        items = [(q, f"{shots}Q: {q['question']}\nA:",
                  lambda depth, rows, i=q["meta"]["index"]: [stream_generator(5, i, depth, c) for c in range(rows)])
                 for q in questions]
        out = {}
        for question, _, nodes, costs, seconds in run_searches(
                items, smollm, scorer, cfg, lambda scores, width: allocate_children(scores, width, 0.2), dims):
            assert seconds > 0
            out[question["id"]] = ([(n.parent, n.text, n.token_ids, n.finish_reason, n.fed) for n in nodes],
                                   [n.score for n in nodes[1:]], costs["tokens_fed"])
        return out

    alone, together = trees(3), trees(12)
    assert any(node[0] not in (None, 0) for tree in alone.values() for node in tree[0])  # deeper than one step
    assert alone.keys() == together.keys() == {q["id"] for q in questions}
    for key in alone:
        assert alone[key][0] == together[key][0]
        assert alone[key][1] == pytest.approx(together[key][1], abs=1e-4)
        assert alone[key][2] == together[key][2] == sum(n[4] for n in alone[key][0]) + \
            len(smollm.tokenizer(f"{shots}Q: {questions[int(key[1])]['question']}\nA:",
                                 add_special_tokens=False)["input_ids"])


def test_schema_checks_search_methods_and_scorers():
    from infscale.config import ConfigError, validate_config

    schema = REPO / "workflow" / "schemas" / "config.schema.yaml"
    config = yaml.safe_load(SEARCH_CONFIG.read_text())
    validate_config(config, schema)
    for path, change, message in [
        (("methods", "rebase3"), {"bogus": 1}, "bogus"),
        (("methods", "beam4"), {"softmax_temperature": 0.2}, "softmax_temperature"),
        (("scorers", "vh"), {"kind": "hub"}, "scorers.vh.id"),
        (("methods", "rebase3"), {"width": 0}, "width"),
        (("methods", "rebase3"), {"softmax_temperature": 0}, "softmax_temperature"),
        (("methods", "rebase3"), {"step_separator": ""}, "step_separator"),
        (("methods", "rebase3"), {"final_test": "maybe"}, "final_test"),
        (("scorers", "vh"), {"features": ["hiden"]}, "features"),
        (("scorers", "vh"), {"features": [["surprisal"], ["logits"]]}, "features"),
    ]:
        broken = yaml.safe_load(SEARCH_CONFIG.read_text())
        broken[path[0]][path[1]].update(change)
        with pytest.raises(ConfigError, match=message):
            validate_config(broken, schema)


def test_chain_sum_questions_get_a_stepwise_solution():
    from infscale.data.sample_dataset import DatasetConfig, build_splits, stepwise_solution

    assert stepwise_solution("4 - 1 - 7") == "4 - 1 = 3\n3 - 7 = -4"
    assert stepwise_solution("23 + 60 + 71") == "23 + 60 = 83\n83 + 71 = 154"
    assert stepwise_solution("3 * 4") is None and stepwise_solution("( 1 + 2 )") is None
    splits = build_splits(DatasetConfig("c", "reasoning_gym", n_test=3, n_train=3, seed=1, task="chain_sum",
                                        task_config={"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}))
    for question in splits["train"] + splits["test"]:
        last = question["meta"]["solution"].splitlines()[-1]
        assert last.rsplit("= ", 1)[1] == question["answer"]


# --- step and stop rules of tree search (issue 11, item 4) -----------------------------------------------

def _scripted_expand(monkeypatch, lm, parent, cfg, text: str):
    """Expand `parent` once with its one child's sampled tokens forced to `text` (after its header)."""
    from infscale.methods import kv_tree

    child_depth = parent.depth + 1
    header = cfg.header(child_depth)
    header_ids = lm.tokenizer(header, add_special_tokens=False)["input_ids"] if header else []
    script = iter([0] * len(header_ids) + lm.tokenizer(text, add_special_tokens=False)["input_ids"]
                  + [lm.tokenizer.eos_token_id] * 64)
    monkeypatch.setattr(kv_tree, "sample_next", lambda logits, params, generator: torch.tensor([next(script)]))
    children, stats = kv_tree.expand(lm, [parent], [1], cfg, None, None)
    child = children[0]
    child.index, child.path_text = parent.index + 1, parent.path_text + child.text
    return child, stats


def _root(lm, prompt="Q: 3 + 4 = ?\nA:"):
    from infscale.methods.kv_tree import Node, encode_prompt

    state, _ = encode_prompt(lm, prompt)
    return Node(index=0, parent=None, depth=0, state=state, hidden=state.hidden)


@pytest.mark.slow
@pytest.mark.parametrize(("second", "stops", "expected"), [
    ("\nThe answer is 7.", ["\n\n"], ""),                    # "\n\n" spans the boundary: the path ends
    ("  \nThe answer is 7.", ["\n\n"], ""),                  # a whitespace-only line is a blank line
    ("Q: What is 2 + 2?", ["\nQ:"], ""),                     # "\nQ:" spans it too
    ("So it is 7. Q: next", ["Q:"], "So it is 7. "),          # inside a step, as before
])
def test_stops_that_span_the_step_boundary_end_the_path(monkeypatch, smollm, second, stops, expected):
    cfg = build_config("r", {"kind": "rebase", "width": 1, "scorer": "prm", "stop": stops,
                             "max_step_tokens": 30})
    first, _ = _scripted_expand(monkeypatch, smollm, _root(smollm), cfg, " 3 + 4 = 7\nThe")
    assert (first.text, first.finished) == (" 3 + 4 = 7\n", False)
    child, _ = _scripted_expand(monkeypatch, smollm, first, cfg, second)
    assert (child.text, child.finished, child.finish_reason) == (expected, True, "stop")


@pytest.mark.slow
def test_blank_lines_join_the_next_step_without_a_blank_line_stop(monkeypatch, smollm):
    cfg = build_config("r", {"kind": "rebase", "width": 1, "scorer": "prm", "stop": ["\nQ:"]})
    first, _ = _scripted_expand(monkeypatch, smollm, _root(smollm), cfg, " 3 + 4 = 7\n")
    child, _ = _scripted_expand(monkeypatch, smollm, first, cfg, "\nSo it is 7.\nMore")
    assert (child.text, child.finished) == ("\nSo it is 7.\n", False)
    assert split_steps(first.text + child.text) == [first.text, child.text]   # scoring splits it alike


@pytest.mark.slow
def test_step_header_is_fed_and_a_numbered_separator_is_cut(monkeypatch, smollm):
    cfg = build_config("r", {"kind": "rebase", "width": 1, "scorer": "prm", "stop": [],
                             "step_header": "\nStep {n}:", "step_separator": "Step {n}", "max_step_tokens": 40})
    first, _ = _scripted_expand(monkeypatch, smollm, _root(smollm), cfg, " Add 3 and 4.\nStep 2: it is 7")
    assert (first.text, first.header_ids) == (" Add 3 and 4.\n", [])
    child, stats = _scripted_expand(monkeypatch, smollm, first, cfg, " 3 + 4 = 7.\nStep 3: done")
    assert child.text == "\nStep 2: 3 + 4 = 7.\n"
    n_header = len(child.header_ids)
    assert n_header > 0 and child.tokens == len(smollm.tokenizer(" 3 + 4 = 7.\nStep 3",
                                                                 add_special_tokens=False)["input_ids"])
    assert child.path_tokens == first.path_tokens + child.tokens       # the budget counts sampled tokens only
    assert stats.tokens_fed == n_header + child.tokens                 # ... the FLOPs every fed token


@pytest.mark.slow
def test_node_flops_are_the_measured_decode_flops(monkeypatch, smollm):
    from infscale.compute import ModelDims, sequence_flops
    from infscale.methods import kv_tree

    dims = ModelDims.from_config(smollm.model.config.to_dict())
    root = _root(smollm)
    cfg = build_config("r", {"kind": "rebase", "width": 1, "scorer": "prm"})
    script = iter(smollm.tokenizer(" 3 + 4 = 7\n", add_special_tokens=False)["input_ids"])
    monkeypatch.setattr(kv_tree, "sample_next", lambda logits, params, generator: torch.tensor([next(script)]))
    (child,), stats = kv_tree.expand(smollm, [root], [1], cfg, None, dims)
    n_prompt = root.state.length
    assert child.flops == stats.flops == pytest.approx(sequence_flops(dims, n_prompt, child.tokens))


def _node(index, parent, depth, tokens, flops, **kw):
    from infscale.methods.kv_tree import Node

    node = Node(index=index, parent=parent, depth=depth, text=f"s{index}\n", flops=flops, **kw)
    node.token_ids = [1] * tokens
    return node


def test_leaf_decode_flops_are_the_tree_nodes_measured_costs():
    from infscale.methods.tree import leaf_records, tree_record

    nodes = [_node(0, None, 0, 0, 0.0),
             _node(1, 0, 1, 4, 100.0),
             _node(2, 1, 2, 4, 300.0, finished=True, finish_reason="stop", score=0.9),   # deep: costs more
             _node(3, 1, 2, 4, 500.0, finished=True, finish_reason="stop", score=0.8),
             _node(4, 0, 1, 4, 60.0, pruned=True, score=0.05)]                          # pruned: shared by all
    costs = {"n_prompt_tokens": 10, "prefill_flops": 7.0, "decode_flops": 960.0, "scorer_flops": 40.0,
             "tokens_fed": 26, "flops_seed000": 5000.0}
    question = {"id": "q", "question": "?"}
    records = leaf_records(question, "P", nodes, costs, 2.0, "prm")
    assert [r["meta"]["leaf"] for r in records] == [2, 3]
    assert [r["flops"]["decode"] for r in records] == [50 + 300 + 30, 50 + 500 + 30]
    assert sum(r["flops"]["decode"] for r in records) == costs["decode_flops"]
    assert sum(r["flops_seed000"] for r in records) == pytest.approx(costs["flops_seed000"])
    cfg = build_config("r", {"kind": "rebase", "width": 2, "scorer": "prm", "max_step_tokens": 96})
    record = tree_record(question, nodes, costs, cfg)
    assert record["max_step_tokens"] == 96
    assert [(n["depth"], n["tokens"], n["pruned"], n["flops"]) for n in record["nodes"]][3:] == [
        (2, 4, False, 500.0), (1, 4, True, 60.0)]


def test_a_fully_pruned_tree_gives_one_response_without_an_answer():
    from infscale.methods.tree import leaf_records

    nodes = [_node(0, None, 0, 0, 0.0), _node(1, 0, 1, 5, 80.0, pruned=True, score=0.02)]
    costs = {"n_prompt_tokens": 10, "prefill_flops": 7.0, "decode_flops": 80.0, "scorer_flops": 4.0,
             "flops_seed000": 0.0}   # rebase.py charges nodes it keeps only
    (record,) = leaf_records({"id": "q", "question": "?"}, "P", nodes, costs, 1.5, "prm")
    assert record["flops_seed000"] == 0.0
    assert (record["completion"], record["finish_reason"], record["seconds"]) == ("", "pruned", 1.5)
    assert record["flops"] == {"prefill": 7.0, "decode": 80.0, "thought": 0.0, "scorer": 4.0}


@pytest.mark.parametrize(("final_test", "markers", "path", "expected"), [
    ("markers", [], " 3 + 4 = 7\n", False),
    ("markers", [], " The answer is 7.\n", True),
    ("markers", ["Therefore,"], " Therefore, it holds\n", True),
    # rebase.py's leaf test reads question + path: the question's own numbers end a first step
    ("markers_or_number", [], " First, find the total", True),
    ("markers_or_number", [], " We add them. Then we see. It is so. Indeed.", False),
    ("markers_or_number", ["Thus,"], " We add them. Thus, done", True),
])
def test_final_tests(final_test, markers, path, expected):
    from infscale.methods.kv_tree import Node
    from infscale.methods.tree import is_final

    cfg = build_config("r", {"kind": "rebase", "width": 1, "scorer": "prm", "final_test": final_test,
                             "final_markers": markers})
    node = Node(index=1, parent=0, depth=1, text=path, path_text=path)
    assert is_final(cfg, "Tom has 3 apples and gets 4 more. How many now?", node) is expected


@pytest.mark.slow
def test_a_methods_load_is_load_time_and_its_measured_flops_are_kept(tmp_path, prepared_smollm2, monkeypatch):
    """What a method loads besides the policy (a search's PRM) counts as load time, not generation time, and
    records that bring their own measured FLOPs (tree search) keep them."""
    import time as time_module

    from infscale import generate, methods
    from infscale.io import write_jsonl

    def load(lm, cfg, resources):
        time_module.sleep(0.5)
        return {"extra": "loaded"}

    def fake_generate(questions, shots, lm, cfg, seed, extra=None):
        assert extra == "loaded"
        for q in questions:
            yield [{"id": q["id"], "sample": 0, "prompt": "P", "completion": " 1", "n_prompt_tokens": 3,
                    "n_prefill_tokens": 3, "n_completion_tokens": 1, "n_thought_tokens": 0,
                    "flops": {"prefill": 1.0, "decode": 2.0, "thought": 0.0, "scorer": 3.0}}]

    spec = methods.MethodSpec(kind="fake_search", config_class=methods.get_method("rebase").config_class,
                              generate=fake_generate, load=load)
    monkeypatch.setitem(methods.METHODS, "fake_search", spec)
    monkeypatch.setitem(methods.METHOD_MODULES, "fake_search", "infscale.methods.rebase")  # its code, for the job's fingerprint
    write_jsonl(tmp_path / "test.jsonl", [{"id": "a", "question": "1?", "answer": "1", "meta": {"index": 0}}])
    write_jsonl(tmp_path / "train.jsonl", [])
    generate.run_generation(tmp_path / "test.jsonl", tmp_path / "train.jsonl", prepared_smollm2 / "model.json", "s",
                            {"kind": "fake_search", "width": 1, "scorer": "prm"}, tmp_path / "out.jsonl",
                            tmp_path / "timing.json", device="cpu")
    timing = read_json(tmp_path / "timing.json")
    assert timing["load_seconds"] >= 0.5 > timing["generate_seconds"]
    assert read_jsonl(tmp_path / "out.jsonl")[0]["flops"] == {"prefill": 1.0, "decode": 2.0, "thought": 0.0,
                                                             "scorer": 3.0}


class _MistralLikeTokenizer:
    chat_template, bos_token, bos_token_id = None, "<s>", 1

    def __call__(self, text):
        return {"input_ids": [1, 5]}


def test_seed000_rebase_runs_as_rebase_py_does():
    """config/seed000.yaml's REBASE methods carry rebase.py / rebase.yaml's protocol."""
    from infscale.prompts import build_prompt

    config = yaml.safe_load((REPO / "config" / "seed000.yaml").read_text())
    for name, width in [("rebase_w3", 3), ("rebase_w6", 6), ("rebase_w16", 16)]:
        cfg = build_config(name, {**config["methods"][name], "scorer": "prm"})
        assert (cfg.width, cfg.max_step_tokens, cfg.max_total_tokens, cfg.max_depth) == (width, 96, 384, 25)
        assert (cfg.temperature, cfg.softmax_temperature, cfg.min_score, cfg.stop) == (1.0, 0.2, 0.1, [])
        assert cfg.final_test == "markers_or_number" and "The answer is" in cfg.final_markers
        assert cfg.header(1) == "" and cfg.header(2) == "\nStep 2:" and cfg.separator(2) == ("Step 3", True)
        # rebase.py's tokenizer call adds Mistral's <s> (a stand-in tokenizer that adds BOS, as Mistral's does)
        assert build_prompt("Tom has 3 apples.", [], cfg.prompt_config, _MistralLikeTokenizer()) == \
            "<s>Tom has 3 apples.\nA: Let's think step by step."


# --- value-head selection and the untrained baselines (issue 11, item 6) -----------------------------------

def _synthetic_training(monkeypatch, d_model=3):
    """train_value_head without a model: rollouts and features are made up, the surprisal mean column is the
    informative one; returns the problems each rollout call was given."""
    from types import SimpleNamespace

    from infscale.scoring import train_prm

    calls = []
    rng = random.Random(0)

    def rollouts(lm, problems, shots, cfg, generator):
        calls.append([p["id"] for p in problems])
        out = []
        for p in problems:
            for _ in range(2):
                good = [rng.random() < 0.5 for _ in range(3)]
                out.append({"id": p["id"], "prompt": "P", "steps": ["a\n", "b\n", "c"], "correct": good[-1],
                            "values": [float(g) for g in good], "reference": "1", "on_reference": good[:2],
                            "_good": good})
        return out

    def features(lm, prompts, steps, names, batch_size=16):
        assert tuple(names) == ("hidden", "surprisal")
        feats = []
        for _ in prompts:
            rows = []
            for good in pending.pop(0):
                noise = [rng.gauss(0, 1) for _ in range(d_model)]
                mean_lp = (-0.5 if good else -2.0) + rng.gauss(0, 0.3)
                rows.append(noise + [mean_lp, 0.0, mean_lp - 1, 0.0])
            feats.append(torch.tensor(rows))
        return feats, [0.0] * len(prompts)

    pending: list = []
    real_rollouts = rollouts

    def tracked_rollouts(*args):
        out = real_rollouts(*args)
        pending.extend(s["_good"] for s in out)
        return out

    lm = SimpleNamespace(model=SimpleNamespace(config=SimpleNamespace(hidden_size=d_model)), device="cpu")
    monkeypatch.setattr(train_prm, "load_model", lambda spec, device, dtype: lm)
    monkeypatch.setattr(train_prm, "rollout_labels", tracked_rollouts)
    monkeypatch.setattr(train_prm, "path_step_features", features)
    return calls


def test_value_head_candidates_are_chosen_on_validation_problems_only(tmp_path, monkeypatch):
    from infscale.io import write_json, write_jsonl
    from infscale.scoring.scorers import ValueHead
    from infscale.scoring.train_prm import train_value_head

    calls = _synthetic_training(monkeypatch)
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"p{i}", "question": "?", "answer": "1"} for i in range(24)])
    write_json(tmp_path / "model.json", {"path": "m", "name": "m"})
    cfg = {"kind": "value_head", "model": "m", "features": [["surprisal"], ["hidden", "surprisal"]],
           "l2": [0.01, 1.0], "holdout_fraction": 0.25, "validation_fraction": 0.25,
           "prompt": {"style": "zeroshot"}}
    quality = train_value_head(tmp_path / "train.jsonl", tmp_path / "model.json", "vh", cfg, tmp_path / "head.pt",
                               tmp_path / "quality.json", dataset="d")
    fit, validation, held = (set(c) for c in calls)
    assert not (fit & validation or fit & held or validation & held)
    assert (len(fit), len(validation), len(held)) == (14, 4, 6)
    assert (quality["n_fit_problems"], quality["n_validation_problems"], quality["n_heldout_problems"]) == (18, 4, 6)
    assert quality["selected_by"] == "reference_step_auroc" and len(quality["selection"]) == 4
    best = max(quality["selection"], key=lambda t: t["validation_auroc"])
    assert (quality["features"], quality["l2"]) == (best["features"], best["l2"])
    assert ValueHead.load(tmp_path / "head.pt").features == tuple(quality["features"].split("+"))
    # the untrained scores are measured on both label kinds; here the mean log-prob is the informative one
    for name in ("untrained_mean_step_auroc", "untrained_min_step_auroc", "untrained_mean_reference_step_auroc",
                 "untrained_min_reference_step_auroc"):
        assert 0 <= quality[f"{name}_lo"] <= quality[name] <= quality[f"{name}_hi"] <= 1
    assert quality["untrained_mean_reference_step_auroc"] > 0.8


def test_a_single_candidate_needs_no_validation_split(tmp_path, monkeypatch):
    from infscale.io import write_json, write_jsonl
    from infscale.scoring.train_prm import train_value_head

    calls = _synthetic_training(monkeypatch)
    write_jsonl(tmp_path / "train.jsonl", [{"id": f"p{i}", "question": "?", "answer": "1"} for i in range(12)])
    write_json(tmp_path / "model.json", {"path": "m", "name": "m"})
    quality = train_value_head(tmp_path / "train.jsonl", tmp_path / "model.json", "vh",
                               {"kind": "value_head", "model": "m", "features": ["hidden"], "l2": 0.1,
                                "prompt": {"style": "zeroshot"}},
                               tmp_path / "head.pt", tmp_path / "quality.json", dataset="d")
    assert len(calls) == 2 and quality["n_validation_problems"] == 0 and quality["selection"] == []
    assert (quality["features"], quality["l2"]) == ("hidden", 0.1)


def test_prm_config_lists_candidate_features():
    assert PRMConfig("v", "value_head", model="m", features=[["surprisal"], ["hidden", "surprisal"]]).feature_sets \
        == [("surprisal",), ("hidden", "surprisal")]
    assert PRMConfig("v", "value_head", model="m", l2=[0.1, 1]).l2_values == [0.1, 1.0]
