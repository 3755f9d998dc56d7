"""REBASE with KV reuse vs re-encoding every path: tokens run through the model and wall time, side by side.

    python benchmarks/rebase_kv_reuse.py [--checkpoint DIR] [--questions 4] [--width 8]

Both searches run the same questions with the same seeds and PRM (a value head with fixed random weights on
the policy's hidden states: this measures the search machinery, not the PRM). `infscale.methods.kv_tree.expand`
continues every child from its parent's cached KV state; the baseline re-encodes prompt + path of every
parent before each expansion (what a search built on stateless `generate` calls does), then decodes the same
way. "tokens processed" counts every token position a forward pass computed.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from infscale.compute import ModelDims
from infscale.data.sample_dataset import DatasetConfig, build_splits
from infscale.methods import build_config
from infscale.methods.kv_tree import ExpandStats, encode_prompt, expand
from infscale.methods.rebase import allocate_children
from infscale.methods.tree import path_of, run_search
from infscale.models.loading import load_model
from infscale.prompts import build_prompt
from infscale.scoring.scorers import PRMConfig, ValueHead, ValueHeadPRM


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", default=None,
                        help="HF checkpoint folder (default: the pipeline's resources/models/smollm2-135m/checkpoint, "
                             "else the embedded SmolLM2-135M converted into resources/benchmarks/)")
    parser.add_argument("--questions", type=int, default=4)
    parser.add_argument("--width", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = "resources/models/smollm2-135m/checkpoint"
        if not (Path(checkpoint) / "config.json").exists():
            from infscale.models.embedded import convert_embedded

            checkpoint = "resources/benchmarks/smollm2-135m"
            if not (Path(checkpoint) / "config.json").exists():
                convert_embedded("smollm2-135m-instruct", checkpoint)
    lm = load_model({"name": "smollm2-135m", "source": "local", "path": checkpoint}, device="cpu")
    dims = ModelDims.from_config(lm.model.config.to_dict())
    splits = build_splits(DatasetConfig("chain", "reasoning_gym", n_test=args.questions, n_train=3, seed=1,
                                        task="chain_sum", task_config={"min_terms": 3, "max_terms": 3,
                                                                      "min_digits": 1, "max_digits": 1}))
    d = lm.model.config.hidden_size
    head = ValueHead(torch.randn(d, generator=torch.Generator().manual_seed(0)) * 0.05, 0.0, torch.zeros(d), torch.ones(d),
                     ("hidden",))
    scorer = ValueHeadPRM(PRMConfig("bench", "value_head", model="smollm2-135m"), head, lm, reads_policy=True)
    cfg = build_config("bench", {"kind": "rebase", "width": args.width, "scorer": "bench",
                                 "max_depth": 5, "max_step_tokens": 16, "max_total_tokens": 48,
                                 "prompt": {"style": "fewshot_cot", "n_shots": 3, "chat_template": "never"}})

    def policy(scores, width):
        return allocate_children(scores, width, cfg.softmax_temperature)

    def reencode_expand(lm_, parents, counts, cfg_, generator, dims_):
        # stateless baseline: every parent's prompt + path is encoded from scratch before it is expanded
        stats = ExpandStats()
        for parent in parents:
            if parent.parent is None:    # the root's prompt was just encoded by run_search
                continue
            text = prompt + "".join(n.text for n in path_of(nodes_of, parent))
            parent.state, n_tokens = encode_prompt(lm_, text)
            stats.tokens_fed += n_tokens
        children, more = expand(lm_, parents, counts, cfg_, generator, dims_)
        stats.tokens_fed += more.tokens_fed
        for child in children:           # the baseline keeps no KV state between expansions
            nodes_of.append(child)
        return children, stats

    totals = {"kv-reuse": [0, 0.0, 0], "re-encode": [0, 0.0, 0]}
    for question in splits["test"]:
        prompt = build_prompt(question["question"], splits["train"], cfg.prompt_config)
        for name in totals:
            seed = torch.Generator().manual_seed(question["meta"]["index"])
            began = time.perf_counter()
            if name == "kv-reuse":
                nodes, costs = run_search(question, prompt, lm, scorer, cfg, policy, seed, dims)
                fed = costs["tokens_fed"]
            else:
                nodes_of: list = []      # the tree so far, in run_search's node order (root first)

                def tracked(lm_, parents, counts, cfg_, generator, dims_):
                    if not nodes_of:
                        nodes_of.append(parents[0])
                    return reencode_expand(lm_, parents, counts, cfg_, generator, dims_)

                nodes, costs = run_search(question, prompt, lm, scorer, cfg, policy, seed, dims, expand_fn=tracked)
                fed = costs["tokens_fed"]
            totals[name][0] += fed
            totals[name][1] += time.perf_counter() - began
            totals[name][2] += len(nodes) - 1
    print(f"REBASE width {args.width}, {args.questions} questions, SmolLM2-135M on CPU ({args.threads} threads)")
    print(f"{'':12s}{'tokens processed':>18s}{'seconds':>10s}{'nodes':>8s}")
    for name, (fed, seconds, n_nodes) in totals.items():
        print(f"{name:12s}{fed:18d}{seconds:10.1f}{n_nodes:8d}")
    ratio = totals["re-encode"][0] / max(totals["kv-reuse"][0], 1)
    print(f"re-encoding processes {ratio:.1f}x the tokens of KV reuse")


if __name__ == "__main__":
    main()
