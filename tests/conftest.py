"""Shared fixtures: tiny crystals, tiny datasets, isolated caches and the shared-data path."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(autouse=True, scope="session")
def _isolated_environment(tmp_path_factory):
    """Feature cache in a temp dir, no progress bars, no torch.compile warm-ups, no MLflow server from the
    environment."""
    old = dict(os.environ)
    os.environ["PHONBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("cache"))
    os.environ["PHONBENCH_NO_PROGRESS"] = "1"
    os.environ.setdefault("PHONBENCH_NUM_THREADS", "1")  # tiny fits stall with 2 threads on a busy 2-core box
    os.environ["PHONBENCH_NO_COMPILE"] = "1"  # compile="auto" stays eager; compiled training has its own test
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ.pop("PHONBENCH_DISABLE_PLUGINS", None)
    yield
    os.environ.clear()
    os.environ.update(old)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` beside the repository; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


from phonbench.testing import tiny_crystals as make_crystals  # noqa: E402  (re-exported for tests)
from phonbench.testing import tiny_data as make_data  # noqa: E402


def install_fake_distribution(root: Path, dist: str, version: str, module: str, body: str,
                              entries: dict[str, dict[str, str]]) -> None:
    """Write ``<module>.py`` and a ``<dist>-<version>.dist-info`` with entry points under ``root``.

    Args:
        entries: ``{group: {name: "module:attr"}}``.
    """
    import textwrap

    (root / f"{module}.py").write_text(textwrap.dedent(body))
    info = root / f"{dist.replace('-', '_')}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
    text = ""
    for group, names in entries.items():
        text += f"[{group}]\n" + "".join(f"{k} = {v}\n" for k, v in names.items())
    (info / "entry_points.txt").write_text(text)


@pytest.fixture
def crystals():
    return make_crystals()


@pytest.fixture(params=["spectrum", "modes", "scalar"])
def tiny_data(request):
    """A tiny dataset of each task kind."""
    return make_data(request.param)
