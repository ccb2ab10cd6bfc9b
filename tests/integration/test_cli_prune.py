"""`simgate prune [--dry-run]` and the history lines of `simgate status`, through the console script."""

from __future__ import annotations

import json
import time
from pathlib import Path

from simgate.commands.history import WORDS
from simgate.domain.history import DAY, TABLES
from simgate.domain.messages import Attempt, DeliveryState, IncomingMessage, Verdict
from simgate.domain.types import Kopecks, ServiceName
from simgate.services.inventory import import_numbers
from simgate.services.lanes import register_marketplaces
from simgate.services.operations import issue_number
from simgate.storage import schema
from simgate.storage.ports import UnitOfWork
from simgate.storage.sqlite import SQLiteStore
from tests.factories import make_order, make_spec
from tests.integration.test_cli import one_line_reason, run

ENV = {"SIMGATE_ONLINESIM_KEY": "k", "SIMGATE_ONLINESIM_PUSH_URL": "http://x"}


def farm(folder: Path) -> None:
    """Two activations a year ago, each with one SMS pushed twice; one open today."""
    url = f"sqlite:///{folder / 'simgate.db'}"
    schema.upgrade(url)
    store = SQLiteStore.from_url(url)
    now, old = time.time(), time.time() - 365 * DAY
    try:
        store.run(lambda uow: register_marketplaces(uow, ["onlinesim"], old))
        store.run(lambda uow: import_numbers(uow, [make_spec() for _ in range(3)], old))
        for service in ("telegram", "vkcom"):
            order = make_order(service=ServiceName(service))
            op = store.run(lambda uow, order=order: issue_number(uow, "onlinesim", order, old))
            assert op is not None

            def pushed(uow: UnitOfWork, op_id: int = op.id, number_id: int = op.number_id) -> None:
                message = uow.messages.add(
                    IncomingMessage(op.phone, "VK", "code 1", "http", None, None), number_id, op_id, old + 5
                )
                assert message is not None
                delivery = uow.outbox.enqueue(message.id, op_id, "onlinesim", old + 5)
                for i, (state, verdict) in enumerate(
                    [(DeliveryState.PENDING, Verdict.RETRY), (DeliveryState.DELIVERED, Verdict.DELIVERED)]
                ):
                    attempt = Attempt(old + 6 + i, 10.0, 200, "ok", None, verdict)
                    uow.outbox.record(delivery, "w", attempt, state, old + 20, None)
                uow.operations.finish(op_id, 3, Kopecks(1250), old + 60)
                uow.numbers.release(number_id, op_id, op.kind)

            store.run(pushed)
        assert store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), now)) is not None
    finally:
        store.close()


def test_prune_shows_what_goes_removes_it_and_status_tells(tmp_path: Path) -> None:
    farm(tmp_path)
    dry = run(tmp_path, "prune", "--dry-run", env=ENV)
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert lines[0].startswith("history kept 180 days, since ")
    assert lines[1:] == [
        "would remove          4 push attempts",
        "would remove          2 pushes",
        "would remove          2 SMS",
        "would remove          2 operations",
        "would remove          0 alert notices",
    ]
    before = json.loads(run(tmp_path, "status", "--json", env=ENV).stdout)["history"]
    assert (before["kept_days"], before["last_pruned_at"], before["pruned_in_all"]) == (180, None, {})

    done = run(tmp_path, "prune", "--json", env=ENV)
    assert done.returncode == 0, done.stderr
    removed = json.loads(done.stdout)
    assert removed["dry_run"] is False
    assert removed["removed"] == {
        "delivery_attempts": 4, "deliveries": 2, "messages": 2, "operations": 2, "alert_notices": 0
    }  # fmt: skip

    status = run(tmp_path, "status", "--json", env=ENV)
    report = json.loads(status.stdout)
    assert report["numbers"]["busy"] == 1  # the open activation stays
    history = report["history"]
    assert history["last_pruned"] == {"delivery_attempts": 4, "deliveries": 2, "messages": 2, "operations": 2}
    assert history["pruned_in_all"] == history["last_pruned"]
    text = run(tmp_path, "status", env=ENV).stdout
    line = next(line for line in text.splitlines() if line.startswith("history"))
    assert "kept 180 days, since " in line
    assert line.endswith(": 4 push attempts, 2 pushes, 2 SMS, 2 operations")
    # The kept counts still equal a recount; the sales' exclusions are untouched.
    assert run(tmp_path, "check", env=ENV).returncode == 0
    again = json.loads(run(tmp_path, "prune", "--json", env=ENV).stdout)["removed"]
    assert set(again.values()) == {0}


def test_history_kept_forever_prunes_nothing_and_a_bad_setting_is_named(tmp_path: Path) -> None:
    farm(tmp_path)
    forever = run(tmp_path, "prune", env={**ENV, "SIMGATE_HISTORY_DAYS": "0"})
    assert forever.returncode == 0, forever.stderr
    assert forever.stdout.splitlines()[:2] == [
        "history kept forever (SIMGATE_HISTORY_DAYS=0)",
        "removed          0 push attempts",
    ]
    bad = run(tmp_path, "prune", env={**ENV, "SIMGATE_HISTORY_DAYS": "7"})
    assert one_line_reason(bad) == (
        "simgate: SIMGATE_HISTORY_DAYS: must be 0 (keep history forever) or at least 30 days"
    )
    short = run(tmp_path, "prune", "--dry-run", env={**ENV, "SIMGATE_HISTORY_DAYS": "30"})
    assert short.stdout.startswith("history kept 60 days (the longest resale window), since ")


def test_every_pruned_table_has_words_for_the_owner() -> None:
    assert list(WORDS) == list(TABLES)
