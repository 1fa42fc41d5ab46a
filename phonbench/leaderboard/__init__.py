"""Leaderboards: verified run records → ranked tables (Markdown/CSV/JSON) → static HTML site.

Entry points: :func:`build_leaderboard` (``phonbench leaderboard build``) and :func:`publish_site`
(``phonbench leaderboard publish``). Modules: :mod:`.collect` (reading and validating records),
:mod:`.stats` (tie tests, tiers), :mod:`.tables` (grouping, ranking), :mod:`.render` (Markdown/CSV/JSON),
:mod:`.figures` (matplotlib PNG + SVG), :mod:`.site` (HTML), :mod:`.build` (orchestration).
"""

from __future__ import annotations

from phonbench.leaderboard.build import BuildReport, broken_links, build_leaderboard, publish_site

__all__ = ["BuildReport", "broken_links", "build_leaderboard", "publish_site"]
