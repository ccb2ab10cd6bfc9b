"""The overview's open alerts: the stored ones, and first the database's write failure."""

from __future__ import annotations

from simgate.dashboard.schemas import alerts_out
from simgate.domain.alerts import OpenAlert
from simgate.domain.read_model import Page

SILENT = OpenAlert("gateway_silent:goip", "gateway_silent", "Gateway goip silent for 16 min", 100.0)
STORED = Page([SILENT], 3)


def test_stored_alerts_are_shown_with_the_total() -> None:
    shown, total = alerts_out(STORED, None, 200.0)
    assert [(a.key, a.text, a.since) for a in shown] == [
        ("gateway_silent:goip", "Gateway goip silent for 16 min", 100.0)
    ]
    assert total == 3


def test_a_failing_database_comes_first_though_it_cannot_be_stored() -> None:
    shown, total = alerts_out(STORED, "SQLite: database or disk is full", 200.0)
    assert shown[0].rule == "database_writes"
    assert "database or disk is full" in shown[0].text
    assert shown[0].since is None
    assert total == 4
