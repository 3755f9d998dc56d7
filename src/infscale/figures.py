"""Figure files: pyplot on the headless backend (figures are files, never windows), and `save_figure`, which
writes a PNG and its PDF twin atomically. Every figure of the pipeline is saved here."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # headless: figures are files, never windows
import matplotlib.pyplot as plt  # noqa: E402


def save_figure(fig: plt.Figure, png_path: str | Path, fixed_size: bool = False) -> None:
    """Save as PNG and as a PDF twin beside it (written to temp names, then renamed). `fixed_size` keeps the
    figure's own size (a paper's column width) instead of cropping it to its contents."""
    png_path = Path(png_path)
    png_path.parent.mkdir(parents=True, exist_ok=True)
    for path in (png_path, png_path.with_suffix(".pdf")):
        tmp = path.with_name(f".{path.stem}.tmp{path.suffix}")
        fig.savefig(tmp, dpi=200 if fixed_size else 150, bbox_inches=None if fixed_size else "tight")
        tmp.replace(path)
    plt.close(fig)
