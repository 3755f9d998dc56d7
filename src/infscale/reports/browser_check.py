"""Check the HTML report in a real browser: headless Chromium (the system package, `make browser-setup`) loads
`results/report.html`, runs its JavaScript, and we assert on what it rendered: the front page's headline table
and figures are in the live page, and the screenshot shows them (not a blank or error page).

    python -m infscale.reports.browser_check results/report.html --screenshot artifacts/report.png
"""

from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
WINDOW = (1400, 2200)          # px: tall enough for the headline table and both figures
MIN_FIGURE_PX = 400            # a figure drawn narrower than this is not readable
JS_BUDGET_MS = 20000           # virtual time the report's JavaScript gets to render


class BrowserCheckError(RuntimeError):
    """The report did not render what a reader needs; the message says what is missing."""


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise FileNotFoundError("no Chromium found (tried " + ", ".join(BROWSERS) + "): run `make browser-setup` "
                            "(apt-get install -y chromium) or put a Chrome/Chromium on PATH")


def _run(browser: str, url: str, extra: list[str], timeout: float) -> subprocess.CompletedProcess:
    command = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
               f"--virtual-time-budget={JS_BUDGET_MS}", *extra, url]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)


# Appended to a copy of the report: once its scripts have rendered the page, record where the front page's
# tables and figures ended up (decoded size, drawn size, distance from the top) for `--dump-dom` to carry out.
PROBE = """<script>
setTimeout(function () {
  var box = function (e) { var r = e.getBoundingClientRect(); return [r.width, r.height, r.top + window.scrollY]; };
  var front = document.getElementById("infscale-front");
  var probe = {front: !!front, images: [], tables: []};
  if (front) {
    front.querySelectorAll("img").forEach(function (i) { probe.images.push([i.naturalWidth].concat(box(i))); });
    front.querySelectorAll("table").forEach(function (t) { probe.tables.push(box(t)); });
  }
  var out = document.createElement("pre"); out.id = "infscale-probe"; out.textContent = JSON.stringify(probe);
  document.body.appendChild(out);
}, 5000);
</script>"""


@dataclass
class RenderedReport:
    dom: str
    screenshot: Path
    tables: int = 0
    front_images: int = 0
    layout: dict = field(default_factory=dict)
    colourful_share: float = 0.0
    problems: list[str] = field(default_factory=list)


def colourful_share(png_path: str | Path) -> float:
    """Share of screenshot pixels that are clearly coloured (figure lines, bars, the highlighted table row),
    not white, grey or black: near 0 for a blank page or a page of text."""
    with Image.open(png_path) as image:
        pixels = np.asarray(image.convert("RGB").resize((350, 550)), dtype=int)
    return float(((pixels.max(axis=2) - pixels.min(axis=2)) > 60).mean())


def render(report_html: str | Path, screenshot: str | Path, timeout: float = 120.0) -> RenderedReport:
    """Load the report in headless Chromium; return the DOM after its scripts ran and a screenshot of the page."""
    report_html = Path(report_html).resolve()
    if not report_html.is_file():
        raise FileNotFoundError(f"{report_html}: no report (build it with `snakemake --report {report_html.name}`)")
    screenshot = Path(screenshot)
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    browser = find_browser()
    url = report_html.as_uri()
    probed = report_html.with_name(f".{report_html.stem}.probe.html")   # beside it: same relative paths
    probed.write_text(report_html.read_text(encoding="utf-8") + PROBE, encoding="utf-8")
    try:
        dumped = _run(browser, probed.as_uri(), ["--dump-dom"], timeout)
    finally:
        probed.unlink(missing_ok=True)
    if dumped.returncode != 0 or not dumped.stdout.strip():
        raise BrowserCheckError(f"{browser} could not render {url} (exit {dumped.returncode}): "
                                f"{dumped.stderr.strip()[-800:]}")
    shot = _run(browser, url, [f"--screenshot={screenshot.resolve()}"], timeout)
    if shot.returncode != 0 or not screenshot.is_file():
        raise BrowserCheckError(f"{browser} took no screenshot of {url} (exit {shot.returncode}): "
                                f"{shot.stderr.strip()[-800:]}")
    return RenderedReport(dom=dumped.stdout, screenshot=screenshot)


def check(report_html: str | Path, screenshot: str | Path, min_colourful: float = 0.002,
          keep_dom: str | Path | None = None) -> RenderedReport:
    """Render the report and assert that its first screen shows the headline table and figures (`keep_dom`:
    also save the rendered DOM there)."""
    rendered = render(report_html, screenshot)
    dom = rendered.dom
    if keep_dom:
        Path(keep_dom).write_text(dom, encoding="utf-8")
    front = dom.find('id="infscale-front"')
    if front < 0:
        rendered.problems.append("the front page (div#infscale-front) is not in the rendered page")
    else:
        section = dom[front:]
        rendered.tables = len(re.findall(r"<table", section))
        rendered.front_images = len(re.findall(r'<img[^>]+src="data:image/png;base64,', section))
        if "Efficiency Score" not in section or rendered.tables < 1:
            rendered.problems.append("no headline table (with an Efficiency Score column) on the front page")
        if rendered.front_images < 2:
            rendered.problems.append(f"{rendered.front_images} inline figure(s) on the front page, expected 2")
        if "rank 1 of" not in section:
            rendered.problems.append("no one-line answer (which method ranked first) on the front page")
    match = re.search(r'<pre id="infscale-probe">(.*?)</pre>', dom, re.S)
    rendered.layout = json.loads(html.unescape(match.group(1))) if match else {}
    if not match:
        rendered.problems.append("the layout probe did not run (the page's scripts did not finish?)")
    for k, (natural, width, height, top) in enumerate(rendered.layout.get("images", [])):
        if natural == 0 or width < MIN_FIGURE_PX or height < MIN_FIGURE_PX / 4:
            rendered.problems.append(f"front-page figure {k + 1} is not drawn at a readable size (decoded width "
                                     f"{natural} px, drawn {width:.0f} × {height:.0f} px)")
    tables = rendered.layout.get("tables", [])
    if match:
        rendered.tables = len(tables)   # the front page's own tables, as drawn
    if tables and tables[0][2] > WINDOW[1]:
        rendered.problems.append(f"the headline table starts {tables[0][2]:.0f} px down, below the first screen")
    rendered.colourful_share = colourful_share(rendered.screenshot)
    if rendered.colourful_share < min_colourful:
        rendered.problems.append(f"the screenshot is {100 * rendered.colourful_share:.2f}% coloured pixels: "
                                 "the figures are not visible on the first screen")
    if rendered.problems:
        raise BrowserCheckError(f"{report_html}: " + "; ".join(rendered.problems)
                                + f" (screenshot: {rendered.screenshot})")
    return rendered


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("report", nargs="?", default="results/report.html")
    parser.add_argument("--screenshot", default="artifacts/report.png")
    args = parser.parse_args(argv)
    try:
        rendered = check(args.report, args.screenshot)
    except (BrowserCheckError, FileNotFoundError) as err:
        print(f"browser check FAILED: {err}", file=sys.stderr)
        return 1
    print(f"browser check passed: front page with {rendered.tables} table(s) and {rendered.front_images} "
          f"figure(s), {100 * rendered.colourful_share:.1f}% coloured pixels; screenshot {rendered.screenshot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
