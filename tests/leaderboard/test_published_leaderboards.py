"""The committed leaderboards/ are exactly what the builder makes from the committed records."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PUBLISHED = REPO / "leaderboards"
RECORDS = PUBLISHED / "records"


def _generated_files(root: Path) -> dict[str, Path]:
    return {str(p.relative_to(root)): p for p in root.rglob("*")
            if p.is_file() and "records" not in p.relative_to(root).parts and p.name != "reported.toml"}


@pytest.mark.skipif(not RECORDS.is_dir(), reason="no published records in leaderboards/records")
def test_published_leaderboards_rebuild_identically(tmp_path):
    from phonbench.leaderboard import build_leaderboard

    report = build_leaderboard(RECORDS, None, tmp_path, strict=True, reported=PUBLISHED / "reported.toml")
    assert report.rejected == [] and report.n_runs > 0
    fresh, committed = _generated_files(tmp_path), _generated_files(PUBLISHED)
    assert sorted(fresh) == sorted(committed), "generated file set differs: rebuild with phonbench leaderboard build"
    for name, path in fresh.items():
        if name.endswith(".png"):
            continue  # PNG bytes depend on the matplotlib/FreeType build; names are compared above
        fresh_bytes, committed_bytes = path.read_bytes(), committed[name].read_bytes()
        if name == ".leaderboard-manifest":  # the records source line names the folder built from
            fresh_bytes, committed_bytes = (_without_source(b) for b in (fresh_bytes, committed_bytes))
        if name.endswith(".gz"):  # gzip bytes depend on the zlib build; the content must be equal
            import gzip

            fresh_bytes, committed_bytes = gzip.decompress(fresh_bytes), gzip.decompress(committed_bytes)
        assert fresh_bytes == committed_bytes, f"{name} differs from a fresh build"


def _without_source(data: bytes) -> bytes:
    return b"\n".join(ln for ln in data.split(b"\n") if not ln.startswith(b"# source "))
