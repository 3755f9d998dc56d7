"""`infscale` console script: the pipeline's building blocks, usable on their own files."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from infscale import schema



# --- file-format adapters: the library's functions on the files a user hands the CLI ---------------------


def grade_file(input_path: str | Path, output_path: str | Path, mode: str = "flexible") -> dict[str, Any]:
    """`infscale grade`: grade a JSONL file of responses into `output_path` (atomically); return
    `grading.grade_summary` of it."""
    from infscale.grade import grade_summary
    from infscale.grading import MODES, check_option, grade_record
    from infscale.io import iter_jsonl, write_jsonl

    check_option("mode", mode, MODES)
    graded = []
    for number, record in enumerate(iter_jsonl(input_path), start=1):
        try:
            graded.append(grade_record(record, mode))
        except ValueError as err:
            raise ValueError(f"{input_path}: record {number}: {err}") from None
    write_jsonl(output_path, graded)
    return grade_summary(graded)


def vote_file(path: str | Path, n: int, rule: str, exact_limit: int = 1000, n_monte_carlo: int = 1000,
              seed: int = 0) -> dict[str, Any]:
    """`infscale vote`: expected accuracy of `rule` at N for a JSONL of responses.

    Each record: question_id, answer (string or null), correct (bool), and confidence (number) for the
    weighted rules. Responses of a question keep their file order.
    """
    import pandas as pd

    from infscale.estimators import RULES, WEIGHTED_RULES, selection_rows
    from infscale.io import iter_jsonl

    if rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; known: {list(RULES)}")
    weighted = rule in WEIGHTED_RULES
    records = []
    counts: dict[str, int] = {}
    for number, record in enumerate(iter_jsonl(path), start=1):
        where = f"{path}: record {number}"
        if "question_id" not in record:
            raise ValueError(f"{where}: missing key 'question_id'")
        qid = str(record["question_id"])
        where += f" (question {qid!r})"
        for key in ("answer", "correct") + (("confidence",) if weighted else ()):
            if key not in record:
                raise ValueError(f"{where}: missing key {key!r}" + (f" (rule {rule} needs it)" if key == "confidence" else ""))
        answer, ok = record["answer"], record["correct"]
        if answer is not None and not isinstance(answer, str):
            raise ValueError(f"{where}: 'answer' must be a string or null, got {answer!r}")
        if not isinstance(ok, bool):
            raise ValueError(f"{where}: 'correct' must be true or false, got {ok!r}")
        row = {"id": qid, "sample": counts.get(qid, 0), "extracted": answer, "correct": ok}
        if weighted:
            conf = record["confidence"]
            if isinstance(conf, bool) or not isinstance(conf, (int, float)) or not math.isfinite(conf):
                raise ValueError(f"{where}: 'confidence' must be a finite number, got {conf!r}")
            row["confidence"] = float(conf)
        counts[qid] = counts.get(qid, 0) + 1
        records.append(row)
    if not records:
        raise ValueError(f"{path}: no responses")
    pool = pd.DataFrame.from_records(records)
    (row,) = selection_rows(pool, [rule], [n], weight_column="confidence" if weighted else None,
                            exact_limit=exact_limit, n_monte_carlo=n_monte_carlo, seed=seed)
    return {
        "rule": rule,
        "n": row["n"],
        "n_questions": row["n_questions"],
        "accuracy": row["accuracy"],
        "ci_low": row["ci_low"],
        "ci_high": row["ci_high"],
        "exact": row["exact"],
        "stderr": row["stderr_mc"],
    }


def efficiency_file(input_csv: str | Path, output_csv: str | Path, seed_rounding: bool = False) -> Any:
    """`infscale efficiency`: read a CSV of methods, write its efficiency table to `output_csv` and a Markdown
    twin beside it (`.md`).

    Both files are written atomically. Errors name the input file.
    """
    import pandas as pd

    from infscale.io import atomic_open
    from infscale.reports.efficiency_table import efficiency_table, to_markdown

    input_csv, output_csv = Path(input_csv), Path(output_csv)
    table = pd.read_csv(input_csv)
    try:
        result = efficiency_table(table, seed_rounding=seed_rounding)
    except ValueError as err:
        raise ValueError(f"{input_csv}: {err}") from None
    with atomic_open(output_csv) as handle:
        result.to_csv(handle, index=False)
    with atomic_open(output_csv.with_suffix(".md")) as handle:
        handle.write(to_markdown(result))
    return result


def analyse_file(input_path: str | Path, output_path: str | Path) -> Any:
    """`infscale cot-scaling`: read the per-model CSV, write it back with the analysis columns."""
    import pandas as pd

    from infscale.io import atomic_open
    from infscale.reports.cot_scaling import analyse

    path = Path(input_path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    out = analyse(pd.read_csv(path), source=str(path))
    with atomic_open(output_path) as handle:
        out.to_csv(handle, index=False)
    return out


# --- commands -----------------------------------------------------------------------------------------


def _grade(args: argparse.Namespace) -> int:
    summary = grade_file(args.input, args.output, mode=args.mode)
    print(json.dumps(summary))
    return 0


def _vote(args: argparse.Namespace) -> int:
    result = vote_file(args.input, n=args.n, rule=args.rule, exact_limit=args.exact_limit,
                       n_monte_carlo=args.monte_carlo, seed=args.seed)
    print(json.dumps(result))
    return 0


def _efficiency(args: argparse.Namespace) -> int:
    efficiency_file(args.input, args.output, seed_rounding=args.seed_rounding)
    return 0


def _check_config(args: argparse.Namespace) -> int:
    from infscale.config import check_config_file

    check_config_file(args.config, args.schema)
    print(f"{args.config}: ok")
    return 0


def _cot_scaling(args: argparse.Namespace) -> int:
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
    check.add_argument("--schema", default=str(schema.SCHEMA), help="config schema (default: the workflow's)")
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
