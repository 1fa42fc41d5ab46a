"""Example phonbench plugin (see docs/plugins.md in the phonbench repository)."""

__version__ = "0.1.0"
