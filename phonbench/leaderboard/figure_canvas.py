"""Canvas of the leaderboard figures: a grid of panels rendered to deterministic PNG *and* SVG bytes.

Both files come from the same :class:`~matplotlib.figure.Figure` (Agg canvas, no pyplot state) under
matplotlib's default style plus :data:`RC` (DejaVu Sans, bundled with matplotlib), at a fixed size
and dpi. No metadata that could vary is embedded: the PNG is saved with ``metadata={"Software":
None}``, the SVG with ``metadata={"Date": None, "Creator": None}`` and the ``svg.hashsalt`` rc (so
its element ids are fixed). Same inputs, same bytes. The SVG lies next to the PNG
(:func:`svg_path`); the site links every figure to it, the Markdown boards add an "(SVG)" link.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any, Callable

DPI = 100
PANEL = (3.4, 3.0)  # inches per panel
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "svg.hashsalt": "phonbench",
    "svg.fonttype": "path",
}
PNG_METADATA = {"Software": None}
SVG_METADATA = {"Date": None, "Creator": None}


@dataclass(frozen=True)
class Rendered:
    """One figure in both formats: ``png`` (shown inline) and ``svg`` (full size, vector)."""

    png: bytes
    svg: bytes


def svg_path(png_path: str) -> str:
    """Where the SVG of the figure at ``png_path`` lies: the same path with ``.svg`` for ``.png``."""
    return png_path.removesuffix(".png") + ".svg"


def unit_text(unit: str | None, squared: bool = False) -> str:
    """A unit as typeset on axes and titles (:func:`phonbench.leaderboard.render.pretty_unit`:
    ``cm⁻¹``, ``a.u.²``, ``THz²``); ``squared`` gives the unit of a squared error."""
    from phonbench.leaderboard.render import pretty_unit

    if not unit:
        return ""
    return pretty_unit(f"({unit})^2" if squared else unit)


def render(n_panels: int, draw: Callable[[Any, int], None], ncols: int = 3, panel: tuple = PANEL,
           title: str = "", title_lines: int = 1, wspace: float = 0.4, right_in: float = 0.15) -> Rendered:
    """Lay ``n_panels`` axes out in a grid, call ``draw(ax, i)`` for each, and return both files
    (``wspace``: room between columns as a fraction of the panel width; ``right_in``: inches right
    of the last column, e.g. for colour-bar labels)."""
    import matplotlib
    import matplotlib.style
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ncols = max(1, min(ncols, n_panels))
    nrows = math.ceil(n_panels / ncols)
    with matplotlib.style.context("default"), matplotlib.rc_context(RC):
        # inches above the first row for the figure title and multi-line panel titles
        top_in = (0.25 if title else 0.0) + 0.28 * title_lines
        height = panel[1] * nrows + top_in
        fig = Figure(figsize=(panel[0] * ncols, height), dpi=DPI)
        FigureCanvasAgg(fig)
        # fixed margins instead of constrained layout: much faster and just as deterministic
        fig.subplots_adjust(left=0.8 / (panel[0] * ncols), right=1 - right_in / (panel[0] * ncols),
                            bottom=0.55 / height, top=1 - top_in / height, wspace=wspace,
                            hspace=0.55 + 0.15 * (title_lines - 1))
        axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
        for i, ax in enumerate(axes):
            if i < n_panels:
                draw(ax, i)
            else:
                ax.set_visible(False)
        if title:
            fig.suptitle(title, y=1 - 0.06 / height, va="top")
        png, svg = io.BytesIO(), io.BytesIO()
        fig.savefig(png, format="png", dpi=DPI, metadata=PNG_METADATA)
        fig.savefig(svg, format="svg", dpi=DPI, metadata=SVG_METADATA)
    return Rendered(png.getvalue(), svg.getvalue())
