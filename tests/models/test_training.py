"""Tests of the shared torch training loop (:mod:`phonbench.models.training`) with a toy MLP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from phonbench.datasets.base import PhononData, Task
from phonbench.exceptions import ConfigError, ModelError
from phonbench.models.torch_utils import masked_loss, resolve_device, with_acoustic_zeros
from phonbench.models.training import TorchModel


class ToyMLP(TorchModel):
    """MLP on a per-material feature vector stored in ``data.extras["x"]``."""

    name = "toy_mlp"
    default_params = {**TorchModel.default_params, "hidden": 16, "batch_size": 8, "epochs": 15, "lr": 1e-2}

    def featurize(self, data):
        return [torch.as_tensor(row, dtype=torch.float32) for row in data.extras["x"]]

    def collate(self, items):
        return torch.stack(list(items))

    def infer_config(self, task, items):
        return {"n_in": int(items[0].shape[0])}

    def build_module(self, task, config):
        h = int(self.params["hidden"])
        return torch.nn.Sequential(
            torch.nn.Linear(config["n_in"], h), torch.nn.SiLU(), torch.nn.Linear(h, task.n_outputs)
        )


def _data(n: int, seed: int, kind: str = "scalar", sign: float = 1.0, pad_value: float = 0.0) -> PhononData:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    if kind == "scalar":
        task = Task("scalar", 1, "cm^-1", "w")
        y = sign * (100.0 + 30.0 * x[:, :1] - 10.0 * x[:, 1:2] ** 2)
        mask = None
    else:
        task = Task("modes", 4, "THz", "modes")
        y = sign * (5.0 + np.stack([x[:, 0] * k for k in range(1, 5)], axis=1))
        n_real = rng.integers(1, 5, size=n)
        mask = np.arange(4)[None, :] < n_real[:, None]
        y = np.where(mask, y, pad_value)
    return PhononData([f"m{i}" for i in range(n)], [None] * n, y, task, mask, {"x": x})


def test_masked_loss_ignores_padding():
    pred = torch.tensor([[1.0, 2.0, 5.0], [0.0, 0.0, 0.0]])
    target = torch.tensor([[1.0, 0.0, 1e6], [2.0, -1e6, 0.0]])
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert masked_loss(pred, target, mask, "mse").item() == pytest.approx((0 + 4 + 4) / 3)
    assert masked_loss(pred, target, mask, "l1").item() == pytest.approx((0 + 2 + 2) / 3)
    assert masked_loss(pred[:1, :2], target[:1, :2], None).item() == pytest.approx(2.0)


def test_acoustic_zeros_are_inserted_sorted_and_leave_padding_alone():
    pred = torch.tensor([[5.0, -1.0, 3.0, 7.0, 9.0, 8.0], [2.0, 4.0, 1.0, 6.0, 6.0, 6.0]], requires_grad=True)
    out = with_acoustic_zeros(pred, torch.tensor([2, 1]), zero=0.5)
    # 2 atoms: optical 5, -1, 3 + three zeros, sorted descending (imaginary -1 stays below the zeros)
    assert out[0].tolist() == [5.0, 3.0, 0.5, 0.5, 0.5, -1.0]
    # 1 atom: three acoustic modes only; padding entries 3..5 pass through
    assert out[1].tolist() == [0.5, 0.5, 0.5, 6.0, 6.0, 6.0]
    out.sum().backward()
    assert pred.grad.tolist() == [[1, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]


def test_padding_values_never_change_training():
    a, b = _data(40, 1, "modes", pad_value=0.0), _data(40, 1, "modes", pad_value=1e6)
    pa = ToyMLP({"epochs": 5}, seed=3, device="cpu").fit(a).predict(a)
    pb = ToyMLP({"epochs": 5}, seed=3, device="cpu").fit(b).predict(b)
    np.testing.assert_array_equal(pa, pb)


def test_fit_learns_and_standardises():
    train, valid = _data(120, 0), _data(40, 1)
    model = ToyMLP({"epochs": 40, "lr": 2e-2}, seed=0, device="cpu").fit(train, valid)
    assert model.target_mean_ == pytest.approx(train.targets.mean())
    assert model.target_std_ == pytest.approx(train.targets.std())
    pred = model.predict(valid)
    assert pred.shape == (40, 1)
    dummy_mse = ((valid.targets - train.targets.mean()) ** 2).mean()
    assert ((pred - valid.targets) ** 2).mean() < 0.2 * dummy_mse
    assert model.n_parameters() == 3 * 16 + 16 + 16 + 1


@pytest.mark.parametrize("ema_decay", [0.0, 0.9])
def test_early_stopping_and_best_epoch_restore(ema_decay):
    # valid targets are the negated train targets: training makes the valid loss worse
    train, valid = _data(64, 0), _data(32, 1, sign=-1.0)
    model = ToyMLP({"epochs": 50, "patience": 3, "ema_decay": ema_decay}, seed=0, device="cpu").fit(train, valid)
    best = model.best_epoch_
    assert best is not None and len(model.history) == best + 3 < 50
    losses = [h["valid_loss"] for h in model.history]
    assert losses[best - 1] == min(losses)
    pred = model.predict(valid)
    scaled = ((pred - valid.targets) / model.target_std_) ** 2
    assert scaled.mean() == pytest.approx(losses[best - 1], rel=1e-5)
    assert losses[-1] > losses[best - 1]


def test_callbacks_every_epoch_and_exceptions_propagate():
    seen = []
    model = ToyMLP({"epochs": 4, "patience": 0}, device="cpu")
    model.fit(_data(20, 0), _data(10, 1), [lambda e, m: seen.append((e, m))])
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert set(seen[0][1]) == {"epoch", "train_loss", "valid_loss", "lr", "epoch_time_s"}

    class Pruned(Exception):
        pass

    def prune(epoch, metrics):
        if epoch == 2:
            raise Pruned

    model = ToyMLP({"epochs": 6}, device="cpu")
    with pytest.raises(Pruned):
        model.fit(_data(20, 0), _data(10, 1), [prune])
    assert len(model.history) == 2


def test_exponential_lr_decay_and_time_budget():
    model = ToyMLP({"epochs": 3, "lr": 0.01, "lr_decay": 0.5}, device="cpu").fit(_data(20, 0))
    assert [h["lr"] for h in model.history] == pytest.approx([0.01, 0.005, 0.0025])
    assert "valid_loss" not in model.history[0]
    quick = ToyMLP({"epochs": 1000, "max_time_s": 1e-6}, device="cpu").fit(_data(20, 0))
    assert len(quick.history) == 1
    for schedule in ("cosine", "plateau", "none"):
        m = ToyMLP({"epochs": 2, "lr_schedule": schedule}, device="cpu").fit(_data(20, 0), _data(10, 1))
        assert len(m.history) == 2


def test_weight_average_changes_the_model():
    train, valid = _data(60, 0), _data(20, 1)
    plain = ToyMLP({"epochs": 6}, seed=0, device="cpu").fit(train, valid)
    averaged = ToyMLP({"epochs": 6, "ema_decay": 0.95}, seed=0, device="cpu").fit(train, valid)
    # same optimisation trajectory (identical training losses), different evaluated weights
    assert [h["train_loss"] for h in plain.history] == [h["train_loss"] for h in averaged.history]
    assert [h["valid_loss"] for h in plain.history] != [h["valid_loss"] for h in averaged.history]
    assert not np.array_equal(plain.predict(valid), averaged.predict(valid))


def test_same_seed_same_predictions():
    train, test = _data(50, 0, "modes"), _data(10, 5, "modes")
    p1 = ToyMLP(seed=7, device="cpu").fit(train).predict(test)
    p2 = ToyMLP(seed=7, device="cpu").fit(train).predict(test)
    p3 = ToyMLP(seed=8, device="cpu").fit(train).predict(test)
    np.testing.assert_array_equal(p1, p2)
    assert not np.array_equal(p1, p3)


def test_save_load_round_trip(tmp_path):
    train, test = _data(30, 0, "modes"), _data(10, 5, "modes")
    model = ToyMLP({"epochs": 3}, seed=2, device="cpu").fit(train)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert meta["target_mean"] == pytest.approx(model.target_mean_)
    assert meta["config"] == {"n_in": 3} and len(meta["history"]) == 3
    loaded = ToyMLP.load(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(test), model.predict(test))
    assert loaded.n_parameters() == model.n_parameters()
    with pytest.raises(ModelError):
        ToyMLP.load(tmp_path / "missing")


def test_errors():
    with pytest.raises(ModelError):
        ToyMLP(device="cpu").predict(_data(3, 0))
    with pytest.raises(ModelError):
        ToyMLP(device="cpu").save("/nonexistent/never")
    with pytest.raises(ConfigError):
        ToyMLP({"lr_schedule": "warp"})
    with pytest.raises(ConfigError):
        ToyMLP({"loss": "hinge"})
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    assert resolve_device("auto").type in ("cpu", "cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_without_cuda_is_config_error():
    with pytest.raises(ConfigError, match="CUDA"):
        ToyMLP(device="cuda").fit(_data(10, 0))


def test_cosine_schedule_matches_torch_and_respects_the_time_budget():
    import torch

    from phonbench.models.torch_utils import BudgetCosine

    model = ToyMLP({"epochs": 5, "lr": 0.01, "lr_schedule": "cosine"}, device="cpu").fit(_data(20, 0))
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    reference = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=5)
    expected = []
    for _ in range(5):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    assert [h["lr"] for h in model.history] == pytest.approx(expected)
    # with a 100 s budget and 1,000 epochs, time drives the schedule: half-way in time → half the LR
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.01)
    timed = BudgetCosine(opt, epochs=1000, max_time_s=100.0)
    timed.set_lr(epoch=2, elapsed_s=50.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.005)
    timed.set_lr(epoch=3, elapsed_s=100.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0)


@pytest.mark.slow
def test_compiled_training_matches_eager():
    train, valid = _data(40, 0), _data(10, 1)
    eager = ToyMLP({"epochs": 3}, seed=3, device="cpu").fit(train, valid)
    compiled = ToyMLP({"epochs": 3, "compile": True}, seed=3, device="cpu").fit(train, valid)
    assert [h["train_loss"] for h in compiled.history] == pytest.approx([h["train_loss"] for h in eager.history],
                                                                          rel=1e-4)
    np.testing.assert_allclose(compiled.predict(valid), eager.predict(valid), rtol=1e-4, atol=1e-6)


def test_compiler_failure_is_one_clear_error(monkeypatch):
    import torch

    from phonbench.exceptions import ModelError

    class FakeInductorError(RuntimeError):
        __module__ = "torch._inductor.exc"

    def broken_compile(module, **kwargs):
        def call(*args, **kw):
            raise FakeInductorError("InvalidCxxCompiler: No working C++ compiler found")
        return type("Compiled", (), {"__call__": staticmethod(call), "train": lambda self, m=True: None})()

    monkeypatch.setattr(torch, "compile", broken_compile)
    with pytest.raises(ModelError, match="torch.compile failed .*No working C\\+\\+ compiler.*compile=false"):
        ToyMLP({"epochs": 1, "compile": True}, device="cpu").fit(_data(20, 0))


def test_ensemble_averages_independently_seeded_members(tmp_path):
    train, valid = _data(40, 0), _data(12, 1)
    single = ToyMLP({"epochs": 3}, seed=4, device="cpu").fit(train, valid)
    pair = ToyMLP({"epochs": 3, "ensemble": 2}, seed=4, device="cpu").fit(train, valid)
    other = ToyMLP({"epochs": 3}, seed=1004, device="cpu").fit(train, valid)
    # member 0 is the single model, member 1 the model with seed + 1000; the ensemble is their mean
    np.testing.assert_allclose(pair.predict(valid), (single.predict(valid) + other.predict(valid)) / 2, rtol=1e-5)
    assert [h["member"] for h in pair.history] == [0, 0, 0, 1, 1, 1]
    assert pair.n_parameters() == 2 * single.n_parameters()
    assert isinstance(pair.best_epoch_, list) and len(pair.best_epoch_) == 2
    pair.save(tmp_path / "m")
    np.testing.assert_array_equal(ToyMLP.load(tmp_path / "m", device="cpu").predict(valid), pair.predict(valid))


def test_ensemble_callbacks_count_epochs_across_members_and_share_the_time_budget():
    seen = []
    model = ToyMLP({"epochs": 4, "ensemble": 3}, device="cpu")
    model.fit(_data(20, 0), _data(8, 1), [lambda epoch, rec: seen.append((epoch, rec["member"]))])
    assert seen == [(e + 1, e // 4) for e in range(12)]
    capped = ToyMLP({"epochs": 10_000, "ensemble": 2, "max_time_s": 1e-6}, device="cpu").fit(_data(20, 0))
    assert [h["member"] for h in capped.history] == [0, 1]  # each member ran its one epoch, then stopped
    with pytest.raises(Exception, match="ensemble"):
        ToyMLP({"ensemble": 0}, device="cpu")


def test_importing_the_trainer_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, phonbench.models.training; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_task_defaults_are_validated_when_fit_applies_them():
    class BadScalarDefaults(ToyMLP):
        task_defaults = {"scalar": {"loss": "huber"}}

    model = BadScalarDefaults(device="cpu")  # the class defaults themselves are valid
    with pytest.raises(ConfigError, match="unknown loss 'huber'"):
        model.fit(_data(16, 0))


def test_why_training_stopped_is_kept_per_network():
    train, valid = _data(64, 0), _data(32, 1, sign=-1.0)
    early = ToyMLP({"epochs": 50, "patience": 3}, seed=0, device="cpu").fit(train, valid)
    (stop,) = early.stops
    assert stop["stopped_by"] == "early stopping (patience)" and stop["epochs_run"] == len(early.history)
    assert stop["best_epoch"] == early.best_epoch_
    full = ToyMLP({"epochs": 3, "patience": 0, "ensemble": 2}, device="cpu").fit(_data(20, 0))
    assert [(s["member"], s["epochs_run"], s["stopped_by"]) for s in full.stops] == [
        (0, 3, "epochs reached"), (1, 3, "epochs reached")]
    capped = ToyMLP({"epochs": 1000, "max_time_s": 1e-6}, device="cpu").fit(_data(20, 0))
    assert capped.stops[0]["stopped_by"] == "time budget (max_time_s)"
    assert full.threads_used >= 1
