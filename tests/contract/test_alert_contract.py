"""The alert repository: memory, SQLite and PostgreSQL hold to one contract."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from simgate.domain.alerts import CLAIM_LEASE_SECONDS
from simgate.storage.ports import Store, UnitOfWork


def test_an_alert_opens_once_and_can_reopen_after_it_resolved(store: Store) -> None:
    assert store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "t", 10.0))
    assert not store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "t", 11.0))
    assert store.run(lambda uow: uow.alerts.open_alerts()) == {"gateway_silent:goip": "gateway_silent"}
    assert store.run(lambda uow: uow.alerts.resolve("gateway_silent:goip", 12.0))
    assert not store.run(lambda uow: uow.alerts.resolve("gateway_silent:goip", 13.0))
    assert store.run(lambda uow: uow.alerts.open_alerts()) == {}
    assert store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "t", 14.0))
    assert store.run(lambda uow: uow.alerts.open_alerts()) == {"gateway_silent:goip": "gateway_silent"}


def test_notices_wait_until_sent_and_stop_after_max_attempts(store: Store) -> None:
    first = store.run(lambda uow: uow.alerts.add_notice("k", "r", "firing", "webhook", "down", 5.0))
    second = store.run(lambda uow: uow.alerts.add_notice("k", "r", "firing", "telegram", "down", 5.0))
    assert [n.id for n in store.run(lambda uow: uow.alerts.unsent(10, 3))] == [first, second]

    def attempt(notice_id: int, attempts: int, now: float, error: str | None) -> bool:
        if not store.run(lambda uow: uow.alerts.claim(notice_id, attempts, now)):
            return False
        store.run(lambda uow: uow.alerts.record_send(notice_id, now, error))
        return True

    assert attempt(first, 0, 6.0, None)
    assert attempt(second, 0, 6.0, "HTTP 502")
    assert not attempt(first, 1, 7.0, "late failure")  # sent stays sent
    [waiting] = store.run(lambda uow: uow.alerts.unsent(10, 3))
    assert (waiting.id, waiting.attempts, waiting.last_error, waiting.channel) == (
        second, 1, "HTTP 502", "telegram",
    )  # fmt: skip
    assert attempt(second, 1, 8.0, "HTTP 502")
    assert attempt(second, 2, 9.0, "HTTP 502")
    assert store.run(lambda uow: uow.alerts.unsent(10, 3)) == []
    recent = store.run(lambda uow: uow.alerts.recent(10))
    assert [(n.id, n.sent_at, n.event, n.text) for n in recent] == [
        (second, None, "firing", "down"),
        (first, 6.0, "firing", "down"),
    ]


def test_marketplace_calls_only_move_forward(store: Store) -> None:
    store.run(lambda uow: uow.alerts.note_calls({"onlinesim": 100.0, "smshub": 50.0}))
    store.run(lambda uow: uow.alerts.note_calls({"onlinesim": 90.0, "grizzly sms": 70.0}))
    assert store.run(lambda uow: uow.alerts.last_calls()) == {
        "onlinesim": 100.0, "smshub": 50.0, "grizzly sms": 70.0,
    }  # fmt: skip


def test_a_failed_unit_of_work_leaves_no_alert_behind(store: Store) -> None:
    def fire_then_fail(uow: UnitOfWork) -> None:
        uow.alerts.fire("k", "r", "t", 1.0)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        store.run(fire_then_fail)
    assert store.run(lambda uow: uow.alerts.open_alerts()) == {}


def test_of_two_instances_about_to_send_a_notice_one_claims_it(store: Store) -> None:
    notice = store.run(lambda uow: uow.alerts.add_notice("k", "r", "firing", "webhook", "down", 5.0))
    [seen_by_a] = store.run(lambda uow: uow.alerts.unsent(10, 3))
    [seen_by_b] = store.run(lambda uow: uow.alerts.unsent(10, 3))
    assert store.run(lambda uow: uow.alerts.claim(notice, seen_by_a.attempts, 6.0))
    assert not store.run(lambda uow: uow.alerts.claim(notice, seen_by_b.attempts, 6.0))


def test_a_notice_claimed_and_not_yet_recorded_is_nobody_elses(store: Store) -> None:
    """Instance B reads the notice after A claimed it, before A recorded its send: B must not
    send it too. A send that failed, or one whose sender died (the lease ran out), may be
    claimed again."""
    notice = store.run(lambda uow: uow.alerts.add_notice("k", "r", "firing", "webhook", "down", 5.0))
    assert store.run(lambda uow: uow.alerts.claim(notice, 0, 6.0))  # A sends...
    [seen_by_b] = store.run(lambda uow: uow.alerts.unsent(10, 9))
    assert seen_by_b.claimed_at == 6.0
    assert not store.run(lambda uow: uow.alerts.claim(notice, seen_by_b.attempts, 7.0))
    store.run(lambda uow: uow.alerts.record_send(notice, 8.0, "HTTP 502"))  # ...and fails
    [again] = store.run(lambda uow: uow.alerts.unsent(10, 9))
    assert again.claimed_at is None
    assert store.run(lambda uow: uow.alerts.claim(notice, again.attempts, 9.0))  # A dies mid-send
    late = 9.0 + CLAIM_LEASE_SECONDS
    assert not store.run(lambda uow: uow.alerts.claim(notice, 2, late - 1))
    assert store.run(lambda uow: uow.alerts.claim(notice, 2, late))


def test_open_alerts_are_listed_newest_first_with_their_text_and_since(store: Store) -> None:
    store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "GoIP silent", 10.0))
    store.run(lambda uow: uow.alerts.fire("push_pending", "push_pending", "3 pushes waiting", 20.0))
    store.run(lambda uow: uow.alerts.fire("sim_failing:+79001", "sim_failing", "SIM failing", 15.0))
    store.run(lambda uow: uow.alerts.resolve("sim_failing:+79001", 16.0))
    page = store.run_report(lambda r: r.firing(1))
    assert page.total == 2
    assert [(a.key, a.rule, a.text, a.since) for a in page.items] == [
        ("push_pending", "push_pending", "3 pushes waiting", 20.0)
    ]
    assert [a.key for a in store.run_report(lambda r: r.firing(10)).items] == [
        "push_pending",
        "gateway_silent:goip",
    ]


def test_an_alert_open_before_a_channel_existed_is_announced_on_it_once(store: Store) -> None:
    store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "GoIP silent", 10.0))
    store.run(
        lambda uow: uow.alerts.add_notice(
            "gateway_silent:goip", "gateway_silent", "firing", "webhook", "t", 10.0
        )
    )
    # The webhook had it when it fired; telegram was added later and gets it once.
    assert store.run(lambda uow: uow.alerts.announce_open("webhook", 20.0)) == []
    [late] = store.run(lambda uow: uow.alerts.announce_open("telegram", 20.0))
    assert (late.key, late.text, late.since) == ("gateway_silent:goip", "GoIP silent", 10.0)
    assert store.run(lambda uow: uow.alerts.announce_open("telegram", 21.0)) == []
    [notice] = [n for n in store.run(lambda uow: uow.alerts.unsent(10, 3)) if n.channel == "telegram"]
    assert (notice.key, notice.event, notice.text) == ("gateway_silent:goip", "firing", "GoIP silent")
    # Resolved and fired again: the old notice was for the old incident, so a new one is due.
    store.run(lambda uow: uow.alerts.resolve("gateway_silent:goip", 30.0))
    assert store.run(lambda uow: uow.alerts.announce_open("telegram", 31.0)) == []
    store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "GoIP silent", 40.0))
    assert [a.since for a in store.run(lambda uow: uow.alerts.announce_open("telegram", 41.0))] == [40.0]


def test_of_two_instances_announcing_at_once_one_queues_the_notice(store: Store) -> None:
    """The second waits on the alert's row the first locked, then sees its notice."""
    store.run(lambda uow: uow.alerts.fire("gateway_silent:goip", "gateway_silent", "GoIP silent", 10.0))
    entered, release = threading.Event(), threading.Event()

    def first(uow: UnitOfWork) -> int:
        queued = len(uow.alerts.announce_open("telegram", 20.0))
        entered.set()
        release.wait(10)  # a guard against a hung test, never a timing
        return queued

    with ThreadPoolExecutor(2) as pool:
        held = pool.submit(store.run, first)
        assert entered.wait(10)
        second = pool.submit(store.run, lambda uow: len(uow.alerts.announce_open("telegram", 20.5)))
        time.sleep(0.3)  # lets the second reach the row lock (PostgreSQL); correct code passes either way
        release.set()
        assert held.result() + second.result() == 1
    assert len([n for n in store.run(lambda uow: uow.alerts.unsent(10, 3)) if n.channel == "telegram"]) == 1
