"""accept_sms and the outbox ports, held to one contract over every store (memory, SQLite)."""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from typing import Any, cast

import pytest

from simgate.domain.messages import (
    Attempt,
    Delivery,
    DeliveryState,
    DueDelivery,
    IncomingMessage,
    Message,
    Verdict,
)
from simgate.domain.model import Number, Operation, OperationKind
from simgate.domain.read_model import MessageQuery
from simgate.domain.types import OperationId, PhoneNumber
from simgate.services.intake import Accepted, InvalidMessage, UnknownNumber, accept_sms
from simgate.services.operations import finish_operation, issue_number
from simgate.services.outbox import RetryRefused, retry_delivery
from simgate.storage.ports import OutboxRepository, Store, UnitOfWork
from simgate.storage.sql_outbox import SqlOutbox
from tests.factories import make_order, make_spec

T0 = 1_800_000_000.0
LEASE = 30.0


# --- helpers ---------------------------------------------------------------------------


def add_number(store: Store, **overrides: Any) -> Number:
    spec = make_spec(**overrides)

    def work(uow: UnitOfWork) -> Number:
        uow.numbers.upsert(spec, T0 - 1000)
        number = uow.numbers.get_by_phone(spec.phone)
        assert number is not None
        return number

    return store.run(work)


def open_operation(store: Store, number: Number, kind: OperationKind = OperationKind.ACTIVATION) -> Operation:
    """Open an operation on exactly this number (issue_number would pick any free one)."""
    order = make_order(kind=kind, country=number.country)

    def work(uow: UnitOfWork) -> Operation:
        operation = uow.operations.open("onlinesim", order, number, T0 - 10)
        uow.numbers.mark_busy(number.id, operation.id, T0 - 10)
        return operation

    return store.run(work)


def sms(number: Number, text: str = "VK: 33708", **overrides: Any) -> IncomingMessage:
    values: dict[str, Any] = {
        "phone": number.phone,
        "sender": "VK",
        "text": text,
        "source": "http",
        "message_key": None,
        "received_at": None,
    }
    values.update(overrides)
    return IncomingMessage(**values)


def accept(store: Store, incoming: IncomingMessage, now: float = T0) -> Accepted:
    return store.run(lambda uow: accept_sms(uow, incoming, now))


def messages(store: Store, where: MessageQuery | None = None) -> list[tuple[Message, Delivery | None]]:
    return store.run(lambda uow: uow.messages.search(where or MessageQuery(limit=10_000)))


def delivery_of(store: Store, message_id: int) -> Delivery | None:
    found = [d for m, d in messages(store) if m.id == message_id]
    assert len(found) == 1
    return found[0]


def get(store: Store, delivery_id: int) -> Delivery:
    delivery = store.run(lambda uow: uow.outbox.get(delivery_id))
    assert delivery is not None
    return delivery


def claim(
    store: Store,
    worker: str,
    now: float,
    limit: int = 100,
    lease: float = LEASE,
    skip: frozenset[str] = frozenset(),
) -> list[DueDelivery]:
    return store.run(lambda uow: uow.outbox.claim_due(worker, now, lease, limit, skip))


def pending(store: Store, now: float) -> tuple[int, float | None]:
    """(pending deliveries, age of the oldest), as the console and /metrics read them."""
    summary = store.run_report(lambda r: r.outbox())
    return summary.pending, summary.oldest_age(now)


def claimed_ids(store: Store, worker: str, now: float, limit: int = 100) -> list[int]:
    return [d.id for d in claim(store, worker, now, limit)]


def attempt(verdict: Verdict, at: float, status: int | None = 200, **overrides: Any) -> Attempt:
    values: dict[str, Any] = {
        "started_at": at,
        "latency_ms": 4.25,
        "http_status": status,
        "response": '{"status":"SUCCESS"}' if status == 200 else None,
        "error": None,
        "verdict": verdict,
    }
    values.update(overrides)
    return Attempt(**values)


def record(
    store: Store,
    delivery_id: int,
    state: str,
    at: float,
    *,
    worker: str = "w1",
    next_at: float | None = None,
    reason: str | None = None,
    verdict: Verdict | None = None,
    status: int | None = 200,
) -> None:
    verdict = verdict or {
        "delivered": Verdict.DELIVERED,
        "rejected": Verdict.REJECTED,
    }.get(state, Verdict.RETRY)
    item = attempt(verdict, at, status)
    store.run(
        lambda uow: uow.outbox.record(
            delivery_id, worker, item, state, at + 10 if next_at is None else next_at, reason
        )
    )


@dataclass
class Queued:
    number: Number
    operation: Operation
    message: Message
    delivery_id: int


def queue_one(store: Store, text: str = "VK: 33708", now: float = T0, **number: Any) -> Queued:
    n = add_number(store, **number)
    operation = open_operation(store, n)
    accepted = accept(store, sms(n, text), now)
    delivery = delivery_of(store, accepted.message.id)
    assert delivery is not None
    return Queued(n, operation, accepted.message, delivery.id)


# --- accept_sms ------------------------------------------------------------------------


def test_an_sms_is_stored_routed_and_queued(store: Store) -> None:
    number = add_number(store)
    operation = open_operation(store, number)
    accepted = accept(store, sms(number, "Код 4821 😀", message_key="port7-1", received_at=T0 - 5))

    assert not accepted.duplicate
    message = accepted.message
    assert message.operation_id == operation.id
    assert message.number_id == number.id
    assert message.text == "Код 4821 😀"
    assert message.sender == "VK"
    assert message.stored_at == T0
    assert message.received_at == T0 - 5
    assert store.run(lambda uow: uow.messages.get(message.id)) == message
    assert store.run(lambda uow: uow.messages.find("http", "port7-1")) == message

    delivery = delivery_of(store, message.id)
    assert delivery is not None
    assert delivery.state is DeliveryState.PENDING
    assert delivery.operation_id == operation.id
    assert delivery.marketplace == "onlinesim"
    assert delivery.attempts == 0
    assert delivery.next_attempt_at == T0
    assert delivery.created_at == T0
    assert delivery.finished_at is None
    assert delivery.reason is None

    (due,) = claim(store, "w1", T0)
    assert due.id == delivery.id
    assert due.message_id == message.id
    assert due.operation_id == operation.id
    assert due.kind is OperationKind.ACTIVATION
    assert due.phone == number.phone
    assert due.text == "Код 4821 😀"
    assert due.sender == "VK"
    assert due.attempts == 0
    assert due.operation_finished_at is None


class FailingOutbox:
    def __init__(self, inner: OutboxRepository) -> None:
        self.inner = inner

    def enqueue(self, *args: Any) -> int:
        raise RuntimeError("disk full")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class PatchedUow:
    """The store's own unit of work, with an outbox that fails to enqueue."""

    def __init__(self, inner: UnitOfWork) -> None:
        self.inner = inner
        self.outbox = FailingOutbox(inner.outbox)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def test_the_message_and_its_delivery_commit_together_or_not_at_all(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)

    def work(uow: UnitOfWork) -> Accepted:
        return accept_sms(cast(UnitOfWork, PatchedUow(uow)), sms(number, message_key="k1"), T0)

    with pytest.raises(RuntimeError, match="disk full"):
        store.run(work)
    assert messages(store) == []
    assert store.run(lambda uow: uow.messages.find("http", "k1")) is None
    # The hardware resends and this time it goes through, once.
    assert not accept(store, sms(number, message_key="k1")).duplicate
    assert len(messages(store)) == 1


def test_an_sms_for_an_unknown_phone_is_refused_and_nothing_is_stored(store: Store) -> None:
    add_number(store)
    with pytest.raises(UnknownNumber):
        accept(store, IncomingMessage(PhoneNumber("79990000001"), "VK", "hi", message_key="x"))
    assert messages(store) == []
    assert pending(store, T0) == (0, None)


@pytest.mark.parametrize(
    "change",
    [{"text": ""}, {"sender": " "}, {"text": "x" * 40_001}, {"message_key": "k" * 201}],
)
def test_an_invalid_sms_is_refused_and_nothing_is_stored(store: Store, change: dict[str, Any]) -> None:
    number = add_number(store)
    open_operation(store, number)
    with pytest.raises(InvalidMessage):
        accept(store, sms(number, **change))
    assert messages(store) == []


def test_a_resent_message_id_returns_the_first_message_and_queues_nothing(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)
    first = accept(store, sms(number, "code 1", message_key="port7-000123"))
    again = accept(store, sms(number, "code 1", message_key="port7-000123"), T0 + 5)
    changed = accept(store, sms(number, "code 2", message_key="port7-000123"), T0 + 6)

    assert not first.duplicate
    assert again.duplicate
    assert changed.duplicate
    assert again.message == first.message == changed.message
    rows = messages(store)
    assert len(rows) == 1
    assert pending(store, T0 + 10)[0] == 1


def test_the_same_message_id_from_another_source_is_another_sms(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)
    a = accept(store, sms(number, message_key="1", source="goip1"))
    b = accept(store, sms(number, message_key="1", source="goip2"))
    assert not a.duplicate
    assert not b.duplicate
    assert a.message.id != b.message.id
    assert pending(store, T0)[0] == 2


def test_a_timestamped_resend_without_an_id_is_recognised(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)
    first = accept(store, sms(number, received_at=T0 - 3))
    again = accept(store, sms(number, received_at=T0 - 3), T0 + 1)
    assert again.duplicate
    assert again.message.id == first.message.id
    assert not accept(store, sms(number, received_at=T0 - 2)).duplicate


def test_an_sms_without_an_open_operation_is_kept_unrouted_and_not_queued(store: Store) -> None:
    number = add_number(store)
    accepted = accept(store, sms(number, message_key="u1"))
    assert accepted.message.operation_id is None
    assert delivery_of(store, accepted.message.id) is None
    assert claim(store, "w1", T0 + 3600) == []
    unrouted = messages(store, MessageQuery(routed=False))
    assert [m.id for m, _ in unrouted] == [accepted.message.id]


def test_an_sms_after_finish_is_unrouted(store: Store) -> None:
    number = add_number(store)
    operation = open_operation(store, number)
    store.run(lambda uow: finish_operation(uow, "onlinesim", operation.id, 3, None, T0 - 1))
    accepted = accept(store, sms(number))
    assert accepted.message.operation_id is None
    assert claim(store, "w1", T0 + 1) == []


def test_an_sms_older_than_its_operation_goes_to_nobody(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)  # opened at T0 - 10
    accepted = accept(store, sms(number, received_at=T0 - 10 - 61))
    assert accepted.message.operation_id is None
    assert claim(store, "w1", T0 + 1) == []


def test_an_sms_from_a_device_with_a_wrong_clock_goes_to_the_open_operation(store: Store) -> None:
    number = add_number(store)
    operation = open_operation(store, number)  # opened at T0 - 10
    a_day_behind = sms(number, received_at=T0 - 24 * 3600)
    accepted = accept(store, a_day_behind)  # stored at T0, by our clock after the opening
    assert accepted.message.operation_id == operation.id
    assert accepted.message.received_at == T0 - 24 * 3600  # kept as the device said
    assert [d.message_id for d in claim(store, "w1", T0 + 1)] == [accepted.message.id]


def test_the_skew_bound_is_the_callers_setting(store: Store) -> None:
    number = add_number(store)
    open_operation(store, number)  # opened at T0 - 10
    held_back = sms(number, received_at=T0 - 10 - 120)  # 2 minutes before the opening
    accepted = store.run(lambda uow: accept_sms(uow, held_back, T0, max_skew=60))
    assert accepted.message.operation_id is not None  # 130 s off: not believed, our time counts
    other = add_number(store)
    open_operation(store, other)
    believed = sms(other, received_at=T0 - 10 - 120)
    assert store.run(lambda uow: accept_sms(uow, believed, T0)).message.operation_id is None


def test_several_sms_in_one_rent_are_several_deliveries(store: Store) -> None:
    number = add_number(store)
    rent = open_operation(store, number, OperationKind.RENT)
    ids = [accept(store, sms(number, f"code {i}", sender=f"S{i}"), T0 + i).message.id for i in range(3)]
    due = claim(store, "w1", T0 + 10)
    assert [d.message_id for d in due] == ids
    assert {d.operation_id for d in due} == {rent.id}
    assert {d.kind for d in due} == {OperationKind.RENT}
    assert len({d.id for d in due}) == 3
    assert [d.text for d in due] == ["code 0", "code 1", "code 2"]


def test_issue_number_then_sms_routes_to_the_issued_operation(store: Store) -> None:
    number = add_number(store)
    operation = store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), T0 - 5))
    assert operation is not None
    assert operation.number_id == number.id
    accepted = accept(store, sms(number))
    assert accepted.message.operation_id == operation.id


# --- claim_due -------------------------------------------------------------------------


def test_only_due_deliveries_are_claimed(store: Store) -> None:
    a = queue_one(store, now=T0)
    b = queue_one(store, now=T0 + 5)
    assert claimed_ids(store, "w1", T0 - 1) == []
    assert claimed_ids(store, "w1", T0) == [a.delivery_id]
    assert claimed_ids(store, "w2", T0 + 5) == [b.delivery_id]


def test_a_retry_waits_for_its_next_attempt_time(store: Store) -> None:
    q = queue_one(store)
    assert claimed_ids(store, "w1", T0) == [q.delivery_id]
    record(store, q.delivery_id, "pending", T0 + 1, next_at=T0 + 11)
    assert claimed_ids(store, "w2", T0 + 10.9) == []
    assert claimed_ids(store, "w2", T0 + 11) == [q.delivery_id]


def test_a_claimed_delivery_is_not_claimed_again_until_its_lease_runs_out(store: Store) -> None:
    q = queue_one(store)
    assert claimed_ids(store, "w1", T0) == [q.delivery_id]
    assert claimed_ids(store, "w2", T0) == []
    assert claimed_ids(store, "w1", T0 + LEASE / 2) == []
    assert claimed_ids(store, "w2", T0 + LEASE - 0.01) == []
    assert claimed_ids(store, "w2", T0 + LEASE + 0.01) == [q.delivery_id]
    # ... and the new lease protects it from the first worker in turn.
    assert claimed_ids(store, "w1", T0 + LEASE + 1) == []
    assert claimed_ids(store, "w1", T0 + 2 * LEASE + 0.02) == [q.delivery_id]


def test_a_claim_takes_at_most_limit_rows(store: Store) -> None:
    # PostgreSQL once re-ran `IN (SELECT ... LIMIT ? FOR UPDATE SKIP LOCKED)` per row, so one
    # worker took every due row.
    for i in range(5):
        queue_one(store, now=T0 + i)
    assert len(claim(store, "w1", T0 + 10, limit=2)) == 2
    assert len(claim(store, "w2", T0 + 10, limit=1)) == 1
    assert len(claim(store, "w3", T0 + 10, limit=5)) == 2


def test_claims_respect_the_limit_and_the_order(store: Store) -> None:
    queued = [queue_one(store, now=T0 + i) for i in range(5)]
    ids = [q.delivery_id for q in queued]
    # The first goes back to the queue with a later attempt time: it now comes last.
    assert claimed_ids(store, "w0", T0, limit=1) == ids[:1]
    record(store, ids[0], "pending", T0 + 1, worker="w0", next_at=T0 + 7)
    assert claimed_ids(store, "w1", T0 + 10, limit=2) == ids[1:3]
    assert claimed_ids(store, "w2", T0 + 10, limit=2) == ids[3:5]
    assert claimed_ids(store, "w3", T0 + 10, limit=2) == ids[:1]
    assert claimed_ids(store, "w4", T0 + 10, limit=2) == []


def test_concurrent_batch_claims_never_hand_one_delivery_to_two_workers(store: Store) -> None:
    """Workers claiming batches at once (threads; pooled connections on PostgreSQL) split
    the due rows between them: each row is claimed exactly once."""
    queued = [queue_one(store, now=T0 + i) for i in range(24)]
    taken: dict[str, list[int]] = {}
    start = threading.Barrier(4)

    def worker(name: str) -> None:
        start.wait()
        mine = taken.setdefault(name, [])
        while batch := claimed_ids(store, name, T0 + 100, limit=3):
            mine.extend(batch)

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    every = [delivery_id for batch in taken.values() for delivery_id in batch]
    assert sorted(every) == sorted(q.delivery_id for q in queued)


def test_a_claim_skips_the_marketplaces_it_is_told_are_full(store: Store) -> None:
    queued = [queue_one(store, now=T0 + i) for i in range(2)]
    assert claim(store, "w1", T0 + 10, skip=frozenset({"onlinesim"})) == []
    taken = claim(store, "w1", T0 + 10, skip=frozenset({"smshub"}))
    assert [d.id for d in taken] == [q.delivery_id for q in queued]


def test_outcomes_recorded_together_in_one_unit_each_land(store: Store) -> None:
    """The worker writes a batch of finished pushes in one unit of work (delivery/worker.py)."""
    queued = [queue_one(store, now=T0 + i) for i in range(3)]
    claim(store, "w1", T0 + 10)
    done = attempt(Verdict.DELIVERED, T0 + 11)
    retry = attempt(Verdict.RETRY, T0 + 11, status=500)

    def write(uow: UnitOfWork) -> None:
        uow.outbox.record(queued[0].delivery_id, "w1", done, "delivered", T0 + 21, None)
        uow.outbox.record(queued[1].delivery_id, "w1", retry, "pending", T0 + 21, None)
        uow.outbox.record(queued[2].delivery_id, "w1", done, "delivered", T0 + 21, None)

    store.run(write)
    states = [get(store, q.delivery_id).state for q in queued]
    assert states == [DeliveryState.DELIVERED, DeliveryState.PENDING, DeliveryState.DELIVERED]
    assert claimed_ids(store, "w2", T0 + 30) == [queued[1].delivery_id]


def test_a_finished_operation_is_visible_to_the_worker(store: Store) -> None:
    q = queue_one(store)
    store.run(lambda uow: finish_operation(uow, "onlinesim", q.operation.id, 4, None, T0 + 3))
    (due,) = claim(store, "w1", T0 + 4)
    assert due.operation_finished_at == T0 + 3


def test_only_pending_deliveries_are_claimed(store: Store) -> None:
    done, rejected, gone = (queue_one(store) for _ in range(3))
    claim(store, "w1", T0)
    record(store, done.delivery_id, "delivered", T0)
    record(store, rejected.delivery_id, "rejected", T0, status=404, reason="NO_OPERATION")
    record(store, gone.delivery_id, "given_up", T0, status=500, reason="operation finished")
    assert claim(store, "w2", T0 + 10 * LEASE) == []


# --- record ----------------------------------------------------------------------------


def test_an_acknowledged_push_is_delivered_for_good(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "delivered", T0 + 1)
    delivered = get(store, q.delivery_id)
    assert delivered.state is DeliveryState.DELIVERED
    assert delivered.attempts == 1
    assert delivered.finished_at == T0 + 1
    assert delivered.reason is None
    assert delivery_of(store, q.message.id) == delivered


@pytest.mark.parametrize("state", ["pending", "rejected", "given_up", "delivered"])
def test_nothing_moves_a_delivered_row(store: Store, state: str) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "delivered", T0 + 1)
    before = get(store, q.delivery_id)
    # A second worker whose lease ran out reports its own late result.
    record(store, q.delivery_id, state, T0 + 2, worker="w2", status=500, reason="late")
    assert get(store, q.delivery_id) == before
    assert claim(store, "w3", T0 + 10 * LEASE) == []


def test_a_final_rejection_keeps_its_reason(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "rejected", T0 + 1, status=404, reason="NO_OPERATION")
    rejected = get(store, q.delivery_id)
    assert rejected.state is DeliveryState.REJECTED
    assert rejected.reason == "NO_OPERATION"
    assert rejected.finished_at == T0 + 1
    assert rejected.attempts == 1


def test_giving_up_keeps_its_reason(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "given_up", T0 + 1, status=500, reason="operation finished")
    gone = get(store, q.delivery_id)
    assert gone.state is DeliveryState.GIVEN_UP
    assert gone.reason == "operation finished"
    assert gone.finished_at == T0 + 1


def test_a_retry_stays_pending_counts_the_attempt_and_drops_the_claim(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "pending", T0 + 1, next_at=T0 + 2, status=500)
    retried = get(store, q.delivery_id)
    assert retried.state is DeliveryState.PENDING
    assert retried.attempts == 1
    assert retried.next_attempt_at == T0 + 2
    assert retried.finished_at is None
    # Another worker takes it as soon as it is due: the first worker's lease is gone.
    assert claimed_ids(store, "w2", T0 + 2) == [q.delivery_id]
    (due,) = claim(store, "w3", T0 + 2 + LEASE + 1)
    assert due.attempts == 1


def test_every_attempt_is_logged_in_order(store: Store) -> None:
    q = queue_one(store)
    tries = [
        attempt(Verdict.RETRY, T0, 500, response="oops", latency_ms=3.5),
        attempt(Verdict.RETRY, T0 + 10, None, response=None, error="timeout after 10s", latency_ms=10_000),
        attempt(Verdict.DELIVERED, T0 + 20, 200, response='{"status":"SUCCESS"}', latency_ms=1.0),
    ]
    states = ["pending", "pending", "delivered"]
    for item, state in zip(tries, states, strict=True):
        claim(store, "w1", item.started_at)
        store.run(
            lambda uow, i=item, s=state: uow.outbox.record(  # type: ignore[misc]
                q.delivery_id, "w1", i, s, i.started_at + 10, None
            )
        )
    logged = store.run(lambda uow: uow.outbox.attempts(q.delivery_id))
    assert [(a.started_at, a.http_status, a.response, a.error, a.verdict) for a in logged] == [
        (a.started_at, a.http_status, a.response, a.error, a.verdict) for a in tries
    ]
    assert [a.latency_ms for a in logged] == pytest.approx([a.latency_ms for a in tries])
    assert get(store, q.delivery_id).attempts == 3
    assert store.run(lambda uow: uow.outbox.attempts(10_000)) == []


# --- release ---------------------------------------------------------------------------


def test_release_drops_only_that_workers_claims(store: Store) -> None:
    queued = [queue_one(store) for _ in range(3)]
    ids = [q.delivery_id for q in queued]
    assert claimed_ids(store, "w1", T0, limit=2) == ids[:2]
    assert claimed_ids(store, "w2", T0, limit=2) == ids[2:]
    assert store.run(lambda uow: uow.outbox.release("w1")) == 2
    assert store.run(lambda uow: uow.outbox.release("w1")) == 0
    assert claimed_ids(store, "w3", T0 + 1) == ids[:2]
    assert store.run(lambda uow: uow.outbox.release("nobody")) == 0


def test_release_leaves_finished_rows_alone(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "delivered", T0)
    before = get(store, q.delivery_id)
    store.run(lambda uow: uow.outbox.release("w1"))
    assert get(store, q.delivery_id) == before


def test_claimants_are_the_workers_holding_pending_deliveries(store: Store) -> None:
    queued = [queue_one(store) for _ in range(3)]
    assert store.run(lambda uow: uow.outbox.claimants()) == []
    claimed_ids(store, "w1", T0, limit=1)
    claimed_ids(store, "w2", T0, limit=1)
    claimed_ids(store, "w3", T0, limit=1)
    record(store, queued[2].delivery_id, "delivered", T0)  # w3's claim ended with its push
    assert store.run(lambda uow: uow.outbox.claimants()) == ["w1", "w2"]
    store.run(lambda uow: uow.outbox.release("w1"))
    assert store.run(lambda uow: uow.outbox.claimants()) == ["w2"]


# --- retry (the operator's decision) ---------------------------------------------------


@pytest.mark.parametrize("final", ["rejected", "given_up"])
def test_a_failed_delivery_can_be_queued_again(store: Store, final: str) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, final, T0 + 1, status=404, reason="NO_OPERATION")
    store.run(lambda uow: retry_delivery(uow, q.delivery_id, T0 + 100))
    again = get(store, q.delivery_id)
    assert again.state is DeliveryState.PENDING
    assert again.next_attempt_at == T0 + 100
    assert again.finished_at is None
    assert claimed_ids(store, "w2", T0 + 100) == [q.delivery_id]


def test_an_acknowledged_delivery_is_never_queued_again(store: Store) -> None:
    q = queue_one(store)
    claim(store, "w1", T0)
    record(store, q.delivery_id, "delivered", T0 + 1)
    before = get(store, q.delivery_id)
    with pytest.raises(RetryRefused, match="delivered"):
        store.run(lambda uow: retry_delivery(uow, q.delivery_id, T0 + 100))
    # The port itself refuses too, whoever calls it.
    store.run(lambda uow: uow.outbox.retry(q.delivery_id, T0 + 100))
    assert get(store, q.delivery_id) == before
    assert claim(store, "w2", T0 + 100) == []


def test_a_pending_or_unknown_delivery_cannot_be_retried(store: Store) -> None:
    q = queue_one(store)
    with pytest.raises(RetryRefused, match="pending"):
        store.run(lambda uow: retry_delivery(uow, q.delivery_id, T0 + 1))
    with pytest.raises(RetryRefused, match="no push"):
        store.run(lambda uow: retry_delivery(uow, 999_999, T0 + 1))
    store.run(lambda uow: uow.outbox.retry(q.delivery_id, T0 + 500))
    assert get(store, q.delivery_id).next_attempt_at == T0


# --- the pending summary the console and /metrics read --------------------------------


def test_the_outbox_summary_counts_pending_and_ages_the_oldest(store: Store) -> None:
    assert pending(store, T0) == (0, None)
    a = queue_one(store, now=T0)
    queue_one(store, now=T0 + 4)
    count, age = pending(store, T0 + 10)
    assert count == 2
    assert age == pytest.approx(10.0)
    claim(store, "w1", T0 + 10)  # claimed is still pending
    assert pending(store, T0 + 10)[0] == 2
    record(store, a.delivery_id, "delivered", T0 + 11)
    count, age = pending(store, T0 + 14)
    assert count == 1
    assert age == pytest.approx(10.0)


# --- searching messages ---------------------------------------------------------------------


def test_messages_can_be_filtered_by_routing_and_push_state(store: Store) -> None:
    pending = queue_one(store, "pending")
    delivered = queue_one(store, "delivered")
    rejected = queue_one(store, "rejected")
    gone = queue_one(store, "given up")
    unrouted = accept(store, sms(add_number(store), "unrouted")).message
    claim(store, "w1", T0)
    record(store, delivered.delivery_id, "delivered", T0)
    record(store, rejected.delivery_id, "rejected", T0, status=404, reason="NO_OPERATION")
    record(store, gone.delivery_id, "given_up", T0, status=500, reason="operation finished")

    def ids(**where: Any) -> list[int]:
        return [m.id for m, _ in messages(store, MessageQuery(**where))]

    everything = [unrouted.id, gone.message.id, rejected.message.id, delivered.message.id, pending.message.id]
    assert ids() == everything  # newest first
    assert ids(routed=False) == [unrouted.id]
    assert ids(delivery_state="pending") == [pending.message.id]
    assert ids(delivery_state="delivered") == [delivered.message.id]
    assert ids(delivery_state="failed") == [gone.message.id, rejected.message.id]
    assert ids(delivery_state="rejected") == [rejected.message.id]
    assert ids(delivery_state="given_up") == [gone.message.id]
    assert ids(operation_id=rejected.operation.id) == [rejected.message.id]
    assert ids(operation_id=OperationId(987_654)) == []
    assert ids(limit=2) == everything[:2]
    assert ids(limit=2, offset=2) == everything[2:4]

    rows = dict((m.id, d) for m, d in messages(store))
    assert rows[unrouted.id] is None
    failed = rows[rejected.message.id]
    assert failed is not None
    assert (failed.state, failed.reason) == (DeliveryState.REJECTED, "NO_OPERATION")


def test_messages_of_one_operation(store: Store) -> None:
    number = add_number(store)
    rent = open_operation(store, number, OperationKind.RENT)
    for i in range(3):
        accept(store, sms(number, f"code {i}"), T0 + i)
    queue_one(store, "elsewhere")
    rows = messages(store, MessageQuery(operation_id=rent.id))
    assert [m.text for m, _ in rows] == ["code 2", "code 1", "code 0"]
    assert all(d is not None and d.operation_id == rent.id for _, d in rows)


def test_a_sqlite_claim_walks_the_due_index_instead_of_sorting_every_pending_row(sqlite_url: str) -> None:
    """With thousands of pushes waiting, a claim that sorted them all cost ~2 ms of CPU each,
    so the worker fell further behind the longer the queue grew (issue 14)."""
    db = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"))
    statements: list[str] = []
    db.set_trace_callback(statements.append)
    SqlOutbox(db).claim_due("w1", T0, LEASE, 5)
    claim_sql = next(s for s in statements if s.startswith("WITH due"))
    plan = " ".join(row[3] for row in db.execute("EXPLAIN QUERY PLAN " + claim_sql))
    db.close()
    assert "ix_deliveries_due" in plan
    assert "TEMP B-TREE" not in plan
