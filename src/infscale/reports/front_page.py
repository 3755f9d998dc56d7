"""The first page of `snakemake --report`: the headline tables and figures with captions that say what each
number is and how it was counted. Written as an HTML fragment (figures inlined as data URIs, so the report stays
one self-contained file) that `workflow/report/workflow.rst` includes."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from infscale.io import atomic_open
from infscale.reports.headline_tables import cot_display, display_formats, headline_display, labelling_display
from infscale.reports.tables import read_table

STYLE = """<style>
.prose:has(#infscale-front) {max-width: 62rem}
/* Snakemake's report centres the workflow page in a scroll box: a page taller than the screen lost its top */
.overflow-auto:has(#infscale-front) {align-items: flex-start; justify-content: flex-start}
#infscale-front {overflow-x: hidden}
#infscale-front .scroll {overflow-x: auto; max-width: 100%}
#infscale-front table {border-collapse: collapse; font-size: 12px; margin: 4px 0 2px 0}
#infscale-front th, #infscale-front td {border: 1px solid #ccc; padding: 2px 6px; text-align: right}
#infscale-front th {background: #f3f4f6}
#infscale-front .mono {font-family: monospace}
#infscale-front td.text, #infscale-front th.text {text-align: left}
#infscale-front tr.first td {font-weight: bold; background: #fef9c3}
#infscale-front .caption {font-size: 12px; color: #374151; max-width: 60em; margin: 2px 0 14px 0}
#infscale-front img {max-width: 100%; width: 900px; display: block; border: 1px solid #eee}
#infscale-front .answer {font-size: 14px; background: #eef2ff; padding: 6px 10px; max-width: 60em}
</style>"""

FLOPS_NOTE = ("FLOPs are analytic forward-pass FLOPs of every token the run processed: each question's prompt once "
              "(its KV cache is shared by its samples), every generated and thought token, and the PRM or labeller "
              "tokens a rule's weights needed; seed 000's count (parameters × visible generated tokens, a search "
              "charged its width × max-tokens budget) is in efficiency.csv, beside ours. Time is measured wall time of "
              "generation + scoring (model loading excluded) on the device named in the tables.")
SCALE_NOTE = ("FLOPs (T) and Time (s) are per question: the run's totals for the row's N responses per question, "
              "divided by the number of questions, as in the seed 000 table. Acc/TFLOP = accuracy (%) / TFLOPs per "
              "question, Acc/Second = accuracy (%) / seconds per question, Efficiency Score = Acc/TFLOP × Acc/Second × "
              "100; rank 1 is the most efficient method of its dataset/model.")
CI_NOTE = ("Accuracy CIs are 95% percentile-bootstrap intervals over questions ({n_boot} resamples; exact or "
           "Monte-Carlo expectations over N-subsets of each question's responses inside). Costs are measured, not "
           "sampled, so the CIs of Acc/TFLOP, Acc/Second and the Efficiency Score are the accuracy CI carried "
           "through the fixed costs.")


def _table_html(shown: pd.DataFrame, highlight_first: bool = False) -> str:
    if shown.empty:
        return "<p>(no rows)</p>"
    formats = dict(zip(shown.columns, display_formats(list(shown.columns))))
    text = {c for c in shown.columns if shown[c].dtype == object}
    head = "".join(f'<th class="{"text" if c in text else ""}">{html.escape(str(c))}</th>' for c in shown.columns)
    body = []
    for index, (_, row) in enumerate(shown.iterrows()):
        cells = []
        for column, value in row.items():
            if pd.isna(value) if not isinstance(value, str) else False:
                shown_value = ""
            elif column in text or isinstance(value, str):
                shown_value = str(value)
            else:
                shown_value = format(value, formats[column]) if isinstance(value, float) else str(value)
            cells.append(f'<td class="{"text" if column in text else ""}">{html.escape(shown_value)}</td>')
        first = ' class="first"' if highlight_first and _is_first(shown, index) else ""
        body.append(f"<tr{first}>{''.join(cells)}</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _is_first(shown: pd.DataFrame, index: int) -> bool:
    return "Rank" in shown.columns and shown["Rank"].iloc[index] == 1


def _image_html(png_path: str | Path, alt: str) -> str:
    data = base64.b64encode(Path(png_path).read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}"/>'


def headline_answer(headline: pd.DataFrame) -> str:
    """One sentence per dataset/model: which method ranked first, at what accuracy and cost, how sure."""
    sentences = []
    for (dataset, model), group in headline.groupby(["dataset", "model"], sort=False):
        best = group.sort_values("rank", kind="stable").iloc[0]
        others = len(group) - 1
        sentences.append(
            f"<b>{html.escape(dataset)} / {html.escape(model)}</b>: rank 1 of {others + 1} is "
            f"<b>{html.escape(best['method'])}</b> ({html.escape(best['selection'])}) with "
            f"{best['accuracy']:.1f}% accuracy (95% CI {best['ci_low']:.1f}–{best['ci_high']:.1f}) at "
            f"{best['tflops_per_question']:.3g} TFLOPs and {best['seconds_per_question']:.3g} s per question "
            f"(Efficiency Score {best['efficiency']:.4g}).")
    return "<br/>".join(sentences)


def front_page(headline_csv: str | Path, curves_png: str | Path, ranking_png: str | Path,
               output: str | Path, n_boot: int,
               labelling_csv: str | Path | None = None, cot_csv: str | Path | None = None) -> str:
    headline = read_table(headline_csv)
    shown = headline_display(headline)
    split = shown.columns.get_loc("Rank") + 1
    main, details = shown.iloc[:, :split], pd.concat([shown[["Method", "Rank"]], shown.iloc[:, split:]], axis=1)
    parts = [STYLE, '<div id="infscale-front">', "<h2>Headline results</h2>",
             f'<p class="answer">{headline_answer(headline)}</p>',
             "<h3>Table 1. Each method at its headline selection (seed 000 layout)</h3>",
             _table_html(main, highlight_first=True),
             "<p><b>Table 1b.</b> The same rows: 95% confidence intervals, tokens and the oracle</p>",
             _table_html(details, highlight_first=True),
             f'<p class="caption">One row per method at its headline selection (<span class="mono">report.headline: '
             f'{{method: rule@N}}</span>; default: sampling → majority over its whole pool, tree search → '
             f'weighted majority by its PRM\'s last-step score). {SCALE_NOTE} {FLOPS_NOTE} '
             f'{CI_NOTE.format(n_boot=n_boot)} Oracle pass@N (a question counts when any of the N responses is '
             f'right) needs the reference answer: an upper bound, not ranked. Every rule and N: '
             f'<span class="mono">results/tables/accuracy.csv</span> and <span class="mono">efficiency.csv</span> (Tables, below).</p>',
             "<h3>Figure 1. Accuracy against compute and time per question</h3>",
             _image_html(curves_png, "headline accuracy against TFLOPs and seconds per question"),
             '<p class="caption">Each method\'s headline rule at N = 1 … its headline N (≤ 6 methods per panel, '
             'best ranked), shaded 95% CI; the large dot is the table row, the open triangle the oracle pass@N at '
             'the same cost, the black step line and rings the compute- (time-) optimal frontier over the '
             'plotted points. One colour per method in every figure. Log axes where the costs span a decade. '
             'Every rule: the "all rules" figures accuracy_vs_tflops / accuracy_vs_seconds (Figures, below).</p>',
             "<h3>Figure 2. Efficiency ranking</h3>",
             _image_html(ranking_png, "efficiency ranking of the headline rows"),
             '<p class="caption">Efficiency Score of the headline rows (top 10 per dataset/model, rank 1 on top), '
             'error bars from the accuracy CI. The ranking of every rule is efficiency_ranking (Figures).</p>']
    table_number = 2
    if labelling_csv:
        labelling = read_table(labelling_csv, text_columns=("labeller", "mode"))
        parts += [f"<h3>Table {table_number}. Confidence-labelled selection, self vs proxy (seed 001 layout)</h3>",
                  # dataset/model in the run's name, seconds in the CSV: a table that fits the page
                  _table_html(labelling_display(labelling).drop(columns=["Dataset", "Model"]).pipe(
                      lambda t: t[[c for c in t.columns if not c.endswith(": s/q")]])),
                  '<p class="caption">Confidence-weighted rules at each N: labels from the sampling model itself '
                  '(self) or from another model (proxy); unweighted majority at the same N for reference. Cost per '
                  'question is sampling plus that labeller\'s tokens (FLOPs; seconds in headline_labelling.csv). '
                  + CI_NOTE.format(n_boot=n_boot).split(" Costs are")[0] + " Label quality (AUROC, ECE): "
                  "label_quality.csv.</p>"]
        table_number += 1
    if cot_csv:
        cot = read_table(cot_csv, text_columns=("task",))
        parts += [f"<h3>Table {table_number}. Chain-of-thought vs standard prompting (seed 004 layout)</h3>",
                  _table_html(cot_display(cot)),
                  '<p class="caption">Greedy accuracy per model and task with each prompt style (95% bootstrap CI '
                  'over questions) and the paired CoT − standard difference in percentage points (bootstrap CI over '
                  'the same questions; task ALL pools a model\'s tasks); generated tokens and inference FLOPs per '
                  'question; training FLOPs 6 · parameters · training tokens and the train-equivalent FLOPs of the '
                  'CoT gain (docs/seed004.md). From the Seed 004 tables below.</p>']
    parts.append("<p>The sections below (Tables, Figures) hold every rule, N and quality table of the run.</p></div>")
    page = "\n".join(parts)
    with atomic_open(output) as handle:
        handle.write(page)
    return page
