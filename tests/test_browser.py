"""The HTML report checked in a real browser (issue 17): headless Chromium renders `snakemake --report`'s
output; its first page must show the headline table and figures. Needs the system Chromium
(`make browser-setup`)."""

from __future__ import annotations

import shutil

import pytest

from conftest import REPO, copy_workflow
from infscale.reports.browser_check import BROWSERS, BrowserCheckError, check, colourful_share

needs_chromium = pytest.mark.skipif(not any(shutil.which(b) for b in BROWSERS),
                                    reason="no Chromium on PATH: run `make browser-setup`")


@pytest.mark.slow
@needs_chromium
def test_report_front_page_renders_in_chromium(tiny_run, tmp_path):
    workflow = copy_workflow(tiny_run, tmp_path / "copy")
    workflow.run("--report", "results/report.html", timeout=300)
    # the screenshot is kept as an artifact (artifacts/ is gitignored)
    rendered = check(workflow.path("results/report.html"), REPO / "artifacts" / "test_report.png",
                     keep_dom=REPO / "artifacts" / "test_report.dom.html")
    assert rendered.tables >= 1 and rendered.front_images == 2
    # both figures decoded and drawn at a readable width, the headline table on the first screen
    assert all(natural > 0 and width >= 400 for natural, width, _h, _top in rendered.layout["images"])
    assert rendered.layout["tables"][0][2] < 1000
    assert "Headline results" in rendered.dom


@needs_chromium
def test_browser_check_rejects_a_page_without_headline(tmp_path):
    page = tmp_path / "blank.html"
    page.write_text("<!doctype html><html><body><p>nothing here</p></body></html>")
    with pytest.raises(BrowserCheckError, match="front page .* is not in the rendered page"):
        check(page, tmp_path / "shot.png")
    assert colourful_share(tmp_path / "shot.png") < 0.01
