"""SIMGATE_HISTORY_DAYS and its bounds, the pure rules of what history may go, and serve's pruner."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest

from simgate.config import SettingsError, load_settings
from simgate.domain import history
from simgate.domain.history import DAY, TABLES, HistoryPolicy, PrunePlan
from simgate.domain.model import FinishStatus, Operation, OperationKind
from simgate.domain.types import (
    CountryName,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.services.history import HistoryPruner
from simgate.storage.memory import MemoryStore
from tests.contract.test_history_contract import NOW, OLD, POLICY, Farm

AGENTS = {("smshub", 4), ("grizzly", 4), ("herosms", 4)}


def test_history_is_kept_180_days_bounded_by_the_longest_window() -> None:
    policy = load_settings({}).history
    assert policy == HistoryPolicy(180, 60 * DAY, frozenset(AGENTS))
    assert policy.horizon == 180 * DAY
    assert load_settings({"SIMGATE_HISTORY_DAYS": "30"}).history.horizon == 60 * DAY
    longer = {"SIMGATE_HISTORY_DAYS": "30", "SIMGATE_HEROSMS_RESALE_DAYS": "90"}
    assert load_settings(longer).history.horizon == 90 * DAY
    assert load_settings({"SIMGATE_HISTORY_DAYS": "0"}).history.plan(NOW) is None


def test_the_setting_comes_from_toml_too(tmp_path: Path) -> None:
    path = tmp_path / "simgate.toml"
    path.write_text("history_days = 365\n")
    assert load_settings({}, path).history.horizon == 365 * DAY


@pytest.mark.parametrize("value", ["7", "-1", "29.5", "forever", "40000"])
def test_a_bad_value_names_the_setting(value: str) -> None:
    with pytest.raises(SettingsError, match=r"^SIMGATE_HISTORY_DAYS: "):
        load_settings({"SIMGATE_HISTORY_DAYS": value})


def operation(**overrides: object) -> Operation:
    values: dict[str, object] = {
        "id": OperationId(1), "marketplace": "smshub", "kind": OperationKind.ACTIVATION,
        "number_id": NumberId(1), "phone": PhoneNumber("79281234567"), "country": CountryName("russia"),
        "operator": OperatorName("beeline"), "service": ServiceName("telegram"), "offered": None,
        "opened_at": OLD, "finished_at": OLD + 60, "finish_status": int(FinishStatus.CANCELLED),
    }  # fmt: skip
    values.update(overrides)
    return Operation(**values)  # type: ignore[arg-type]


def test_a_counted_cancellation_stays_until_its_exclusion_is_written() -> None:
    plan = PrunePlan(NOW - 180 * DAY, frozenset({("smshub", 4)}))
    cancelled = operation()
    assert not history.operation_goes(cancelled, plan, excluded=False, referenced=False)
    assert history.operation_goes(cancelled, plan, excluded=True, referenced=False)
    assert history.operation_goes(operation(marketplace="onlinesim"), plan, excluded=False, referenced=False)
    assert history.operation_goes(operation(kind=OperationKind.RENT, service=None), plan, excluded=False,
                                  referenced=False)  # fmt: skip
    assert not history.operation_goes(operation(finished_at=None), plan, excluded=True, referenced=False)
    assert not history.operation_goes(operation(marketplace="x"), plan, excluded=True, referenced=True)
    assert not history.operation_goes(operation(finished_at=NOW - DAY), plan, excluded=True, referenced=False)


def test_the_pruner_prunes_in_the_background_and_stops(caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    farm = Farm(store)
    farm.operation("done", OLD, OLD + 60)
    farm.sms("done", "done", OLD + 30, pushes=3)
    pruner = HistoryPruner(store, POLICY, lambda: NOW, every=3600, batch=2, pause=0)

    async def scenario() -> dict[str, int]:
        task = asyncio.create_task(pruner.run())  # waits an hour before its first prune
        removed = await pruner.prune()
        pruner.stop()
        await asyncio.wait_for(task, 10)
        return removed

    with caplog.at_level(logging.INFO, logger="simgate.history"):
        removed = asyncio.run(scenario())
    assert removed == {
        "delivery_attempts": 3,
        "deliveries": 1,
        "messages": 1,
        "operations": 1,
        "alert_notices": 0,
    }
    assert [p.table for p in store.run(lambda uow: uow.history.pruned())] == list(TABLES[:4])
    assert "history: pruned 3 delivery_attempts, 1 deliveries, 1 messages, 1 operations" in caplog.text


def test_a_prune_that_removes_nothing_is_not_logged(caplog: pytest.LogCaptureFixture) -> None:
    pruner = HistoryPruner(MemoryStore(), POLICY, lambda: NOW)
    with caplog.at_level(logging.INFO, logger="simgate.history"):
        assert asyncio.run(pruner.prune()) == dict.fromkeys(TABLES, 0)
    assert caplog.text == ""


@pytest.mark.parametrize(("days", "started"), [("180", True), ("0", False)])
def test_serve_runs_the_pruner_unless_history_is_kept_forever(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, days: str, started: bool
) -> None:
    """The wiring: the app `serve` builds makes a HistoryPruner and runs it with its background
    tasks (none when SIMGATE_HISTORY_DAYS=0), and stops it with the app."""
    import time

    from tests.conftest import LiveServer, test_settings

    made: list[HistoryPruner] = []
    runs: list[str] = []
    real_init, real_run = HistoryPruner.__init__, HistoryPruner.run

    def init(self: HistoryPruner, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    async def run(self: HistoryPruner) -> None:
        runs.append("started")
        await real_run(self)
        runs.append("stopped")

    monkeypatch.setattr(HistoryPruner, "__init__", init)
    monkeypatch.setattr(HistoryPruner, "run", run)
    server = LiveServer(test_settings(sqlite_url, history_days=days)).start()
    try:
        assert len(made) == (1 if started else 0)
        deadline = time.monotonic() + 30
        while started and not runs and time.monotonic() < deadline:
            time.sleep(0.01)  # the task takes its first step on the server's loop
        assert runs == (["started"] if started else [])
    finally:
        server.stop()
    assert runs == (["started", "stopped"] if started else [])
