"""`infscale` console script: the pipeline's building blocks, usable on their own files."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

SCHEMA = Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "config.schema.yaml"


def _grade(args: argparse.Namespace) -> int:
    from infscale.grading import grade_file

    summary = grade_file(args.input, args.output, mode=args.mode)
    print(json.dumps(summary))
    return 0


def _vote(args: argparse.Namespace) -> int:
    from infscale.estimators import vote_file

    result = vote_file(args.input, n=args.n, rule=args.rule, exact_limit=args.exact_limit,
                       n_monte_carlo=args.monte_carlo, seed=args.seed)
    print(json.dumps(result))
    return 0


def _efficiency(args: argparse.Namespace) -> int:
    from infscale.reports.efficiency import efficiency_file

    efficiency_file(args.input, args.output, seed_rounding=args.seed_rounding)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from infscale.config import check_config_file

    check_config_file(args.config, args.schema)
    print(f"{args.config}: ok")
    return 0


def _cot_scaling(args: argparse.Namespace) -> int:
    from infscale.cot_scaling import analyse_file

    analyse_file(args.input, args.output)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infscale", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    grade = commands.add_parser("grade", help="extract final answers and mark them correct or not")
    grade.add_argument("--input", required=True, help="JSONL with `response` (or `completion`) and `reference`")
    grade.add_argument("--output", required=True, help="JSONL written with added `extracted` and `correct`")
    grade.add_argument("--mode", choices=["strict", "flexible"], default="flexible")
    grade.set_defaults(func=_grade)

    vote = commands.add_parser("vote", help="expected accuracy of a selection rule over all N-subsets")
    vote.add_argument("--input", required=True, help="JSONL, one response a line: question_id, answer, correct, confidence")
    vote.add_argument("--n", type=int, required=True, help="subset size N")
    vote.add_argument("--rule", required=True, choices=["majority", "weighted_majority", "best_conf", "pass"])
    vote.add_argument("--exact-limit", type=int, default=1000, help="enumerate subsets while C(M,N) is at most this")
    vote.add_argument("--monte-carlo", type=int, default=1000, help="random subsets above the exact limit")
    vote.add_argument("--seed", type=int, default=0)
    vote.set_defaults(func=_vote)

    eff = commands.add_parser("efficiency", help="Acc/TFLOP, Acc/s, Efficiency = Acc/TFLOP x Acc/s x 100, ranked")
    eff.add_argument("--input", required=True, help="CSV with columns method, accuracy, tflops, seconds")
    eff.add_argument("--output", required=True, help="CSV written with acc_per_tflop, acc_per_second, efficiency, rank")
    eff.add_argument("--seed-rounding", action="store_true",
                     help="round Acc/TFLOP and Acc/s to 2 decimals before the product, as the seed 000 table does")
    eff.set_defaults(func=_efficiency)

    check = commands.add_parser("check-config", help="validate a config file as the workflow does, without running it")
    check.add_argument("config", help="config YAML")
    check.add_argument("--schema", default=str(SCHEMA), help="config schema (default: the workflow's)")
    check.set_defaults(func=_check_config)

    cot = commands.add_parser("cot-scaling", help="seed 004: CoT improvement, train-equivalent FLOPs, crossover R*")
    cot.add_argument("--input", required=True, help="CSV with columns model, family, params, training_tokens, "
                     "accuracy_standard, accuracy_cot, tokens_standard, tokens_cot (accuracy in any one unit)")
    cot.add_argument("--output", required=True, help="CSV written with added train_flops, cot_improvement, "
                     "train_equivalent_flops, fit, fit_intercept, fit_slope, crossover_requests")
    cot.set_defaults(func=_cot_scaling)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, KeyError) as err:
        print(f"infscale {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
