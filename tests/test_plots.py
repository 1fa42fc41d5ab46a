"""Plots: files are written, deterministic, and pick the right materials; plot_run on a real run dir."""

from __future__ import annotations

import numpy as np
import pytest

from phonbench.exceptions import DataError
from phonbench.learning_curves import learning_curve_table, plot_learning_curve
from phonbench.plots import (
    draw_training_lines,
    finish_training_axes,
    loss_axis_label,
    per_material_errors,
    plot_dos_quartiles,
    plot_error_histograms,
    plot_parity,
    plot_run,
    plot_training_history,
    quartile_examples,
    read_predictions,
)

PNG = b"\x89PNG\r\n\x1a\n"


def _arrays(n=12, d=21, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.random((n, d))
    return y, y + rng.normal(0, 0.1, (n, d)) * np.linspace(0.1, 2, n)[:, None]


def test_per_material_errors_and_quartile_picks():
    y = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 3.0]])
    p = np.array([[2.0, 2.0], [0.0, 4.0], [3.0, 3.0]])
    mask = np.array([[True, True], [True, False], [True, True]])
    np.testing.assert_allclose(per_material_errors(y, p, kind="mse"), [0.5, 8.0, 0.0])
    np.testing.assert_allclose(per_material_errors(y, p, mask, kind="mae"), [0.5, 0.0, 0.0])
    errors = np.arange(100.0)[::-1]  # row i has error 99 - i
    picks = quartile_examples(errors)
    assert [q for q, _ in picks] == [0, 1, 2, 3]
    assert [errors[i] for _, i in picks] == [12.0, 37.0, 62.0, 87.0]
    assert len(quartile_examples(errors, per_quartile=3)) == 12
    assert [i for _, i in quartile_examples(np.array([3.0, 1.0, 2.0]), per_quartile=2)] == [1, 2, 0]
    with pytest.raises(DataError, match="kind"):
        per_material_errors(y, p, kind="rmse")


def test_array_plots_are_png_and_deterministic(tmp_path):
    y, p = _arrays()
    grid = np.linspace(0, 1000, 21)
    first = [
        plot_parity(y, p, tmp_path / "a" / "parity.png", unit="a.u.", title="t"),
        plot_error_histograms({"train": per_material_errors(y[:8], p[:8]), "test": per_material_errors(y[8:], p[8:])},
                              tmp_path / "a" / "hist.png"),
        plot_dos_quartiles(grid, y, p, tmp_path / "a" / "dos.png", ids=[f"m{i}" for i in range(12)], per_quartile=2),
        plot_training_history([{"epoch": e, "train_loss": 1 / (e + 1), "valid_loss": 1.2 / (e + 1)} for e in range(5)],
                              tmp_path / "a" / "hist_curve.png"),
    ]
    second = [
        plot_parity(y, p, tmp_path / "b" / "parity.png", unit="a.u.", title="t"),
        plot_error_histograms({"train": per_material_errors(y[:8], p[:8]), "test": per_material_errors(y[8:], p[8:])},
                              tmp_path / "b" / "hist.png"),
        plot_dos_quartiles(grid, y, p, tmp_path / "b" / "dos.png", ids=[f"m{i}" for i in range(12)], per_quartile=2),
        plot_training_history([{"epoch": e, "train_loss": 1 / (e + 1), "valid_loss": 1.2 / (e + 1)} for e in range(5)],
                              tmp_path / "b" / "hist_curve.png"),
    ]
    for a, b in zip(first, second):
        data = a.read_bytes()
        assert data.startswith(PNG) and len(data) > 2000
        assert data == b.read_bytes(), a.name
    with pytest.raises(DataError, match="empty"):
        plot_training_history([], tmp_path / "x.png")


def ensemble_history(members=2, epochs=4):
    """An ensemble's history as training records it: members one after another, each from epoch 1."""
    return [{"epoch": e, "member": m, "train_loss": 1.0 / e + m, "valid_loss": 1.5 / e + m, "lr": 0.01}
            for m in range(members) for e in range(1, epochs + 1)]


def _axes():
    from matplotlib.figure import Figure

    return Figure().subplots()


def test_training_curves_draw_one_line_per_member_and_key(tmp_path):
    keys = ["train_loss", "valid_loss"]
    colors = {"train_loss": "tab:blue", "valid_loss": "tab:green"}
    ax = _axes()
    assert draw_training_lines(ax, ensemble_history(), keys, colors) == [0, 1]
    lines = ax.get_lines()
    assert len(lines) == 4  # 2 keys x 2 members, no line from member 0's last epoch back to epoch 1
    assert all(np.all(np.diff(line.get_xdata()) > 0) for line in lines)
    assert sorted(list(line.get_xdata()) for line in lines) == [[1, 2, 3, 4]] * 4
    assert {line.get_linestyle() for line in lines} == {"-", "--"}
    finish_training_axes(ax, keys, colors, [0, 1], ["l1"])
    assert ax.get_ylabel() == "train_loss / valid_loss (L1)" and ax.get_yscale() == "log"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == keys + ["member 0", "member 1"]
    assert len(ax.get_lines()) == 4  # legend proxies are not drawn lines

    single = _axes()  # no ``member`` key: one member, no member legend entries
    plain = [{k: v for k, v in row.items() if k != "member"} for row in ensemble_history(1)]
    members = draw_training_lines(single, plain, keys, colors)
    finish_training_axes(single, keys, colors, members)
    assert len(single.get_lines()) == 2 and single.get_ylabel() == "train_loss / valid_loss"
    assert [t.get_text() for t in single.get_legend().get_texts()] == keys
    assert loss_axis_label([], ["mse", "l1", None]) == "loss (L1, MSE)"

    a = plot_training_history(ensemble_history(), tmp_path / "a.png", loss="l1", title="e3nn on x")
    b = plot_training_history(ensemble_history(), tmp_path / "b.png", loss="l1", title="e3nn on x")
    assert a.read_bytes().startswith(PNG) and a.read_bytes() == b.read_bytes()


def test_parity_ignores_padding(tmp_path):
    y, p = _arrays(4, 6)
    mask = np.ones_like(y, dtype=bool)
    mask[:, -1] = False
    p_pad = p.copy()
    p_pad[:, -1] = 1e6  # would blow up the axes if drawn
    a = plot_parity(y, p, tmp_path / "a.png", mask).read_bytes()
    b = plot_parity(y, p_pad, tmp_path / "b.png", mask).read_bytes()
    assert a == b


@pytest.fixture(scope="module")
def run_dirs(tmp_path_factory):
    from phonbench.runner import run

    out = tmp_path_factory.mktemp("runs")
    spectrum = run("dummy", "synthetic", seed=1, out=out, tracking=False,
                   dataset_options={"task": "spectrum", "size": 40})
    modes = run("dummy", "synthetic", seed=1, out=out, tracking=False, dataset_options={"size": 40})
    return spectrum.run_dirs[0], modes.run_dirs[0]


def test_plot_run_spectrum_and_modes(run_dirs):
    spectrum_dir, modes_dir = run_dirs
    preds = read_predictions(spectrum_dir)
    assert set(preds) == {"train", "valid", "test"} and preds["test"]["mask"] is None
    assert preds["test"]["y_true"].shape[1] == 51
    paths = plot_run(spectrum_dir)
    assert sorted(p.name for p in paths) == ["dos_quartiles.png", "errors_histogram.png", "parity_test.png"]
    assert all(p.parent == spectrum_dir / "plots" and p.read_bytes().startswith(PNG) for p in paths)
    modes_preds = read_predictions(modes_dir)
    assert modes_preds["test"]["mask"].dtype == bool and not modes_preds["test"]["mask"].all()
    assert sorted(p.name for p in plot_run(modes_dir)) == ["errors_histogram.png", "parity_test.png"]


def _record(fraction, n_train, mae, seed):
    return {"run_id": f"r{fraction}-{seed}", "extra": {"train_fraction": fraction},
            "dataset": {"sizes": {"train": n_train, "valid": 10, "test": 20}},
            "metrics": {"test": {"mae": mae, "mse": mae**2}, "valid": {"mae": mae}}}


def test_learning_curve_table_and_plot(tmp_path, run_dirs):
    records = [_record(1.0, 100, 1.0, 0), _record(0.25, 25, 3.0, 0), _record(0.25, 25, 5.0, 1),
               _record(0.5, 50, 2.0, 0)]
    table = learning_curve_table(records)
    assert table["fraction"].tolist() == [0.25, 0.5, 1.0]
    assert table["n_train"].tolist() == [25, 50, 100] and table["n_runs"].tolist() == [2, 1, 1]
    assert table["mae"].tolist() == [4.0, 2.0, 1.0]
    assert table["mae_std"].tolist() == pytest.approx([np.sqrt(2.0), 0.0, 0.0])
    assert table["mse"].tolist() == [17.0, 4.0, 1.0]
    assert list(learning_curve_table(records, split="valid").columns) == ["fraction", "n_train", "n_runs", "mae", "mae_std"]
    path = plot_learning_curve(table, tmp_path / "lc.png", "mae", unit="cm^-1")
    assert path.read_bytes().startswith(PNG)
    with pytest.raises(DataError, match="r2"):
        plot_learning_curve(table, tmp_path / "lc.png", "r2")
    # run directories are accepted too; without train_fraction the fraction is relative to the largest run
    real = learning_curve_table([run_dirs[0]])
    assert real["fraction"].tolist() == [1.0] and real["n_train"].tolist() == [32]
