"""The error a bad setting raises: its own leaf, so a driver that checks its [hardware.*]
table raises it without importing config.py (and, through it, the marketplace registry)."""

from __future__ import annotations


class SettingsError(ValueError):
    pass
