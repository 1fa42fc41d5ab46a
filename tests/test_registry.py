"""Registry behaviour: entry points through fake distributions, lazy import, duplicates, errors."""

from __future__ import annotations

import sys
import warnings

import pytest
from conftest import install_fake_distribution

from phonbench.exceptions import RegistryError
from phonbench.registry import DATASETS, METRICS, MODELS, Registry, normalize_name

GROUP = "phonbench.test_plugins"


def _fake_distribution(root, dist: str, version: str, module: str, body: str, entries: dict[str, str]) -> None:
    install_fake_distribution(root, dist, version, module, body, {GROUP: entries})


@pytest.fixture
def plugin_path(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in ("good_plugin", "broken_plugin", "other_plugin"):
        sys.modules.pop(name, None)


def test_entry_point_plugin_is_found_lazily_and_names_its_distribution(plugin_path):
    _fake_distribution(plugin_path, "good-plugin", "1.2.3", "good_plugin", "VALUE = 42\n", {"my_thing": "good_plugin:VALUE"})
    reg = Registry("thing", GROUP)
    assert reg.names() == ["my_thing"]
    assert "good_plugin" not in sys.modules  # discovered, not imported
    assert reg.get("My-Thing") == 42
    assert "good_plugin" in sys.modules
    prov = reg.provider("my_thing")
    assert (prov.distribution, prov.version, prov.target) == ("good-plugin", "1.2.3", "good_plugin:VALUE")


def test_broken_plugin_warns_and_the_rest_works(plugin_path):
    _fake_distribution(plugin_path, "good-plugin", "1.0", "good_plugin", "VALUE = 1\n", {"ok": "good_plugin:VALUE"})
    _fake_distribution(plugin_path, "broken-plugin", "0.1", "broken_plugin", "raise ImportError('boom')\n",
                       {"bad": "broken_plugin:X"})
    reg = Registry("thing", GROUP)
    with pytest.warns(RuntimeWarning, match="broken-plugin"):
        items = reg.items()
    assert items == [("ok", 1)]
    with pytest.raises(RegistryError, match="broken-plugin.*failed to import"):
        reg.get("bad")


def test_duplicate_names_across_distributions_name_both(plugin_path):
    _fake_distribution(plugin_path, "good-plugin", "1.0", "good_plugin", "A = 1\n", {"same": "good_plugin:A"})
    _fake_distribution(plugin_path, "other-plugin", "2.0", "other_plugin", "B = 2\n", {"same": "other_plugin:B"})
    reg = Registry("thing", GROUP)
    with pytest.raises(RegistryError) as err:
        reg.names()
    assert "good-plugin" in str(err.value) and "other-plugin" in str(err.value)


def test_disable_env_hides_a_distribution(plugin_path, monkeypatch):
    _fake_distribution(plugin_path, "good-plugin", "1.0", "good_plugin", "A = 1\n", {"one": "good_plugin:A"})
    _fake_distribution(plugin_path, "other-plugin", "2.0", "other_plugin", "B = 2\n", {"two": "other_plugin:B"})
    monkeypatch.setenv("PHONBENCH_DISABLE_PLUGINS", "other-plugin")
    assert Registry("thing", GROUP).names() == ["one"]


def test_unknown_name_lists_valid_names_and_closest_match():
    reg = Registry("model", "phonbench.none")
    reg.register("alpha_model")(object())
    reg.register("beta")(object())
    with pytest.raises(RegistryError) as err:
        reg.get("alpha_modle")
    msg = str(err.value)
    assert "unknown model 'alpha_modle'" in msg and "did you mean 'alpha_model'" in msg and "beta" in msg


def test_register_validates_names_and_rejects_duplicates():
    reg = Registry("metric", "phonbench.none")

    @reg.register("my_metric")
    def f():  # pragma: no cover - never called
        return 0

    assert "MY-METRIC" in reg and reg.get("my-metric") is f
    with pytest.raises(RegistryError, match="duplicate metric name 'my_metric'"):
        reg.register("my_metric")(lambda: 1)
    with pytest.raises(RegistryError, match="snake_case"):
        reg.register("Bad Name!")(lambda: 1)


def test_normalize_name():
    assert normalize_name("Matbench-Phonons") == "matbench_phonons"


def test_builtins_come_through_entry_points():
    assert {"dummy"} <= set(MODELS.names())
    assert {"synthetic"} <= set(DATASETS.names())
    assert {"mae", "mse", "rmse", "r2_aggregated", "r2_per_sample", "mean_frequency_error"} <= set(METRICS.names())
    assert MODELS.provider("dummy").distribution == "phonbench"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert MODELS.get("DUMMY").name == "dummy"
