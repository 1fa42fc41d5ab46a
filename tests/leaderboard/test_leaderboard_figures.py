"""Leaderboard figures: parity density panels with scores, log-scale error histograms, the quartile
panel's shared materials and formulas, SVG next to PNG (deterministic), typeset units."""

from __future__ import annotations

import math

import numpy as np
import pytest
from test_leaderboard_collect import MODES, SPEC, records  # noqa: F401 (fixture)

from phonbench.leaderboard.collect import collect_dir
from phonbench.leaderboard.tables import build_boards


@pytest.fixture(scope="module")
def boards(records):
    return {b.slug: b for b in build_boards(collect_dir(records).runs)}


def _table(boards, slug, split):
    return next(t for t in boards[slug].tables if t.split == split)


def _axes():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    return fig.subplots()


def test_parity_panel_is_a_log_hexbin_with_r2_and_mae():
    from phonbench.leaderboard.figures import draw_parity_panel
    from phonbench.metrics import MAE, R2_AGGREGATED

    rng = np.random.default_rng(0)
    y = rng.random(500)
    p = y + rng.normal(0, 0.05, 500)
    ax = _axes()
    draw_parity_panel(ax, y, p, (-0.2, 1.2), "a.u.")
    (text,) = [t.get_text() for t in ax.texts]
    assert text == f"R² = {R2_AGGREGATED(y, p):.3f}\nMAE = {MAE(y, p):.3g} a.u."
    (hexes,) = ax.collections
    counts = hexes.get_array()
    assert counts.min() >= 1 and counts.sum() == 500  # mincnt=1: empty hexagons are not drawn
    assert type(hexes.norm).__name__ == "LogNorm"  # bins="log": log colour scale of counts
    (line,) = ax.get_lines()
    assert list(line.get_xdata()) == list(line.get_ydata()) == [-0.2, 1.2]  # y = x
    assert ax.get_xlabel() == "true (a.u.)" and ax.get_ylabel() == "predicted (a.u.)"
    empty = _axes()
    draw_parity_panel(empty, np.zeros(0), np.zeros(0), (0, 1), "")
    assert [t.get_text() for t in empty.texts] == ["R² = n/a\nMAE = nan"]


def test_parity_scores_are_pooled_over_real_entries(boards):
    from phonbench.leaderboard.figures import _test_entries, parity_scores

    row = next(r for r in _table(boards, MODES, "random").rows if r.model == "lb_noisy")
    y, p = _test_entries(row)
    masks = [run.predictions.part("test")[3] for run in row.runs]
    assert len(y) == sum(int(m.sum()) for m in masks)  # zero-padded modes are not entries
    r2, mae = parity_scores(y, p)
    assert mae == pytest.approx(np.abs(y - p).mean())
    assert r2 == pytest.approx(1 - ((y - p) ** 2).sum() / ((y - y.mean()) ** 2).sum())


def test_log_x_axis_when_errors_span_more_than_two_decades():
    from phonbench.plots import error_bins, spans_decades

    assert not spans_decades(np.array([0.01, 0.5, 0.99]))  # < 2 decades
    assert not spans_decades(np.array([1.0, 100.0]))  # exactly 2: linear
    assert spans_decades(np.array([1.0, 100.1]))
    assert spans_decades(np.array([0.0, 1e-4, 0.3, np.nan, np.inf]))  # zeros and non-finite ignored
    assert not spans_decades(np.array([0.0, 0.0, 5.0])) and not spans_decades(np.zeros(0))
    edges, log = error_bins(np.array([1e-3, 0.02, 4.0]), bins=10)
    assert log and len(edges) == 11 and edges[0] == pytest.approx(1e-3) and edges[-1] == pytest.approx(4.0)
    assert np.allclose(np.diff(np.log10(edges)), np.log10(4000) / 10)  # log-spaced
    edges, log = error_bins(np.array([0.1, 0.2, 0.3]), bins=5)
    assert not log and np.allclose(edges, np.linspace(0, 0.3, 6))  # linear from 0, as before
    assert error_bins(np.zeros(0), bins=4)[0].tolist() == [0, 0.25, 0.5, 0.75, 1.0]


def test_histogram_panel_switches_to_log_scale():
    from phonbench.leaderboard.figures import draw_histogram_panel

    ax = _axes()
    test = np.array([0.0, 1e-4, 1e-3, 0.01, 0.1, 1.0])
    assert draw_histogram_panel(ax, np.array([1e-3, 0.5]), test) is True
    assert ax.get_xscale() == "log" and ax.get_ylabel() == "fraction per bin"
    heights = [patch.get_path().vertices[:, 1].max() for patch in ax.patches]
    assert max(heights) <= 1.0  # fractions (the zero counted in the first bin)
    ax = _axes()
    assert draw_histogram_panel(ax, np.array([0.2, 0.3]), np.array([0.25, 0.4])) is False
    assert ax.get_xscale() == "linear" and ax.get_ylabel() == "density"


def _titles(monkeypatch, fn, *args):
    """Panel titles of a figure, drawn without saving (``render`` replaced by a recorder)."""
    from phonbench.leaderboard import figure_canvas, figures, figures_spectra

    titles = []

    def fake_render(n, draw, **kw):
        for i in range(n):
            ax = _axes()
            draw(ax, i)
            titles.append(ax.get_title())
        return figure_canvas.Rendered(b"", b"")

    monkeypatch.setattr(figures_spectra, "render", fake_render)
    monkeypatch.setattr(figures, "render", fake_render)
    fn(*args)
    return titles


def test_quartile_materials_are_shared_by_every_row_and_follow_the_rule(boards, monkeypatch):
    from phonbench.leaderboard.figures import FIGURES, dos_quartiles, quartile_materials
    from phonbench.leaderboard.figures_spectra import row_examples

    table = _table(boards, SPEC, "random")
    chosen = quartile_materials(table)
    assert len(chosen) == 4
    # the rule: mean per-material MSE over the rows, materials every row tests, quartile medians
    examples = [row_examples(r) for r in table.rows]
    shared = sorted(set.intersection(*(set(ex) for ex in examples)))
    mean = {mid: np.mean([ex[mid][2] for ex in examples]) for mid in shared}
    order = sorted(shared, key=lambda mid: mean[mid])
    expected = [order[math.floor((q + 0.5) / 4 * len(order))] for q in range(4)]
    assert [mid for mid, _ in chosen] == expected
    assert [m for _, m in chosen] == pytest.approx([mean[mid] for mid in expected])
    assert [m for _, m in chosen] == sorted(m for _, m in chosen)  # Q1 = easiest
    # the error on a panel is the row's first run's MSE of that material
    for row, ex in zip(table.rows, examples):
        y, p, e = ex[expected[0]]
        assert e == pytest.approx(((y - p) ** 2).mean())
    titles = _titles(monkeypatch, dos_quartiles, table)
    assert len(titles) == 4 * len(table.rows)
    for q, mid in enumerate(expected):  # the same material heads column q in every row
        column = titles[q::4]
        assert all(t.split("\n")[0] == f"Q{q + 1}: {mid}" for t in column), column
        assert [t.split("\n")[1].split(":")[0] for t in column] == [r.label for r in table.rows]
    caption = FIGURES["dos_quartiles"][0]
    assert "same four test materials for every model" in caption and "averaged over all models" in caption
    assert "12.5/37.5/62.5/87.5th percentiles" in caption


def test_quartile_panel_names_materials_by_formula(boards, monkeypatch):
    from phonbench.leaderboard.figures import dos_quartiles, quartile_materials
    from phonbench.leaderboard.figures_spectra import Formulas, material_label

    table = _table(boards, SPEC, "kfold5")
    ids = [mid for mid, _ in quartile_materials(table)]
    formulas = {ids[0]: "K3Sb", ids[1]: "Si"}
    titles = _titles(monkeypatch, dos_quartiles, table, formulas)
    assert titles[0].startswith(f"Q1: {ids[0]} (K₃Sb)\n") and titles[1].startswith(f"Q2: {ids[1]} (Si)\n")
    assert titles[2].startswith(f"Q3: {ids[2]}\n")  # no formula known: the id alone
    assert material_label("mp-1", None) == "mp-1" and material_label("mp-2", {"mp-2": "Ba2YCu3O7"}) == "mp-2 (Ba₂YCu₃O₇)"
    # the test datasets have no structures, and a dataset that is not installed has no formulas
    warnings = []
    assert Formulas(SPEC, {}, warnings).get("m000") is None
    assert Formulas("no_such_dataset", {}, warnings).get("m000") is None and warnings == []


def test_formulas_load_lazily_from_the_installed_dataset(monkeypatch):
    from phonbench.leaderboard.figures_spectra import Formulas
    from phonbench.registry import DATASETS

    pytest.importorskip("pymatgen")
    from pymatgen.core import Lattice, Structure

    loads = []

    class Fake:
        def __init__(self, **options):
            loads.append(options)

        def load(self):
            from types import SimpleNamespace

            nacl = Structure(Lattice.cubic(5.6), ["Na", "Cl"], [[0, 0, 0], [0.5, 0.5, 0.5]])
            return SimpleNamespace(ids=["mp-22862", "x"], structures=[nacl, None])

    monkeypatch.setattr(DATASETS, "get", lambda name: Fake)
    formulas = Formulas("fake", {"size": 3})
    assert loads == []  # nothing loaded before the first lookup
    assert formulas.get("mp-22862") == "NaCl" and formulas.get("x") is None and formulas.get("y") is None
    assert loads == [{"size": 3}]  # loaded once


def test_units_are_typeset_on_axes(boards, monkeypatch):
    from phonbench.leaderboard.figure_canvas import unit_text

    assert unit_text("cm^-1") == "cm⁻¹" and unit_text("a.u.", squared=True) == "a.u.²"
    assert unit_text("THz", squared=True) == "THz²" and unit_text("cm^-1", squared=True) == "(cm⁻¹)²"
    assert unit_text("") == "" and unit_text(None) == ""
    from phonbench.leaderboard import figure_canvas, figures, figures_spectra

    labels = []

    def fake_render(n, draw, **kw):
        for i in range(n):
            ax = _axes()
            draw(ax, i)
            labels.append((ax.get_xlabel(), ax.get_ylabel()))
        return figure_canvas.Rendered(b"", b"")

    monkeypatch.setattr(figures, "render", fake_render)
    monkeypatch.setattr(figures_spectra, "render", fake_render)
    figures.error_histograms(_table(boards, MODES, "random"))
    assert labels[0][0] == "per-material MAE (THz)"
    labels.clear()
    figures.error_histograms(_table(boards, SPEC, "random"))
    assert labels[0][0].startswith("per-material MSE (a.u.²)")
    labels.clear()
    figures.dos_quartiles(_table(boards, SPEC, "random"))
    assert labels[0] == ("frequency (cm⁻¹)", "dos (a.u.)")


def test_every_figure_renders_deterministic_png_and_svg(boards):
    from phonbench.leaderboard.figure_canvas import svg_path
    from phonbench.leaderboard.figures import table_figures

    table = _table(boards, SPEC, "kfold5")
    warnings = []
    a, b = table_figures(table, warnings), table_figures(table, warnings)
    assert warnings == [] and sorted(a) == ["dos_quartiles", "errors", "parity", "training_curves"]
    for kind, (_, drawn) in a.items():
        assert drawn.png[:8] == b"\x89PNG\r\n\x1a\n" and drawn.svg.startswith(b"<?xml"), kind
        assert drawn.png == b[kind][1].png and drawn.svg == b[kind][1].svg, kind  # byte-identical renders
        assert b"<dc:date>" not in drawn.svg and b"Matplotlib" not in drawn.svg, kind
        assert len(drawn.svg) < 1_000_000, kind
    assert svg_path("figures/x/random-parity.png") == "figures/x/random-parity.svg"
