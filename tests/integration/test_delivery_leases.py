"""One delivery is never pushed twice at once, and a crashed worker's claims come back fast
(issue 12.4, 12.5)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import CollectorRegistry

from simgate.delivery.owners import host_identity
from simgate.delivery.retry import RetryPolicy
from simgate.delivery.worker import DeliveryWorker
from simgate.domain.messages import DeliveryState, IncomingMessage, PushReply, PushRequest
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.marketplaces.onlinesim.push import OnlinesimPush
from simgate.services.intake import accept_sms
from simgate.services.operations import issue_number
from simgate.storage.memory import MemoryStore
from simgate.storage.ports import Store, UnitOfWork
from tests.factories import make_order, make_spec

T = TypeVar("T")


class HeldSender:
    """A receiver that holds every push until released: an attempt that outlives its lease."""

    timeout = 0.2

    def __init__(self) -> None:
        self.requests: list[PushRequest] = []
        self.release = asyncio.Event()

    async def send(self, request: PushRequest) -> PushReply:
        self.requests.append(request)
        await self.release.wait()
        return PushReply(200, b'{"status":"SUCCESS"}', 1.0)


def finished_pid() -> int:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    return gone.pid


def seed(store: Store, count: int) -> None:
    now = time.time()
    specs = [make_spec() for _ in range(count)]

    def work(uow: UnitOfWork) -> None:
        for spec in specs:
            uow.numbers.upsert(spec, now - 10)
        for _ in specs:
            assert issue_number(uow, MARKETPLACE, make_order(), now - 5) is not None
        for spec in specs:
            accept_sms(uow, IncomingMessage(spec.phone, "VK", f"text of {spec.phone}"), now)

    store.run(work)


def worker(store: Store, sender: HeldSender, name: str | None = None) -> DeliveryWorker:
    return DeliveryWorker(
        store, {MARKETPLACE: OnlinesimPush("http://receiver.invalid", "k")}, sender,
        RetryPolicy(delay=0.1), time.time, name=name, registry=CollectorRegistry(), poll_interval=0.02,
    )  # fmt: skip


async def test_a_worker_never_starts_a_delivery_it_is_still_pushing() -> None:
    store = MemoryStore()
    seed(store, 1)
    sender = HeldSender()
    pusher = worker(store, sender)
    pusher.lease = 0.05  # runs out many times while the push is held (and the cutoff disabled)
    run = asyncio.create_task(pusher.run())
    sender.timeout = 10.0  # the cutoff would end the attempt; the point is an attempt that lasts
    await asyncio.sleep(0.6)
    assert len(sender.requests) == 1, "a second attempt started while the first was in flight"
    sender.release.set()
    await asyncio.sleep(0.2)
    await pusher.stop(grace=2)
    await asyncio.wait_for(run, 5)
    assert len(sender.requests) == 1


async def test_an_attempt_is_cut_off_at_the_timeout_even_if_the_sender_hangs() -> None:
    store = MemoryStore()
    seed(store, 1)
    sender = HeldSender()
    pusher = worker(store, sender)
    run = asyncio.create_task(pusher.run())
    deadline = time.monotonic() + 10
    while not store.run(lambda uow: uow.outbox.attempts(1)):
        assert time.monotonic() < deadline, "the hung attempt was never cut off"
        await asyncio.sleep(0.05)
    (attempt,) = store.run(lambda uow: uow.outbox.attempts(1))
    assert attempt.error is not None
    assert attempt.error.startswith("timeout")
    # Not sooner than a timeout after: the receiver may still be working on the first copy.
    delivery = store.run(lambda uow: uow.outbox.get(1))
    assert delivery is not None
    ended = attempt.started_at + attempt.latency_ms / 1000
    assert delivery.next_attempt_at >= ended + sender.timeout - 0.05
    await pusher.stop(grace=0.5)
    await asyncio.wait_for(run, 5)


async def test_a_starting_worker_releases_the_claims_of_a_dead_worker_on_its_host_at_once() -> None:
    store = MemoryStore()
    seed(store, 3)
    dead = f"{host_identity()}:{finished_pid()}:dead"
    elsewhere = "another-host/4026531836:12345:beef"
    lease = 3600.0  # only the pid check can free these before the test ends
    store.run(lambda uow: uow.outbox.claim_due(dead, time.time(), lease, 2))
    store.run(lambda uow: uow.outbox.claim_due(elsewhere, time.time(), lease, 1))
    assert store.run(lambda uow: uow.outbox.claimants()) == sorted([dead, elsewhere])

    sender = HeldSender()
    sender.release.set()
    pusher = worker(store, sender)
    run = asyncio.create_task(pusher.run())
    deadline = time.monotonic() + 10
    while len(sender.requests) < 2:
        assert time.monotonic() < deadline, "the dead worker's deliveries did not resume"
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    await pusher.stop(grace=2)
    await asyncio.wait_for(run, 5)
    texts = Counter(r.body for r in sender.requests)
    assert len(texts) == 2, "only the dead worker's two deliveries; the other host keeps its lease"
    assert store.run(lambda uow: uow.outbox.claimants()) == [elsewhere]


async def test_no_push_starts_while_the_store_cannot_record_its_answer() -> None:
    """A push made while writes fail could not be recorded, and would be sent again later."""
    store = MemoryStore()
    seed(store, 2)
    store.write_error = "database or disk is full"
    sender = HeldSender()
    sender.release.set()
    pusher = worker(store, sender)
    run = asyncio.create_task(pusher.run())
    await asyncio.sleep(0.5)
    assert sender.requests == []
    store.write_error = None  # space returns
    deadline = time.monotonic() + 10
    while len(sender.requests) < 2:
        assert time.monotonic() < deadline, "pushes did not start once writes worked again"
        await asyncio.sleep(0.02)
    await pusher.stop(grace=2)
    await asyncio.wait_for(run, 5)
    assert len(sender.requests) == 2


class CountingStore(MemoryStore):
    """Counts units of work handed to the store from the event loop."""

    def __init__(self) -> None:
        super().__init__()
        self.units = 0

    async def transact(self, work: Callable[[UnitOfWork], T]) -> T:
        self.units += 1
        return await super().transact(work)


async def test_answers_that_come_together_are_written_in_one_unit_not_one_per_push() -> None:
    store = CountingStore()
    seed(store, 20)
    sender = HeldSender()
    sender.timeout = 10.0
    pusher = worker(store, sender)
    run = asyncio.create_task(pusher.run())
    deadline = time.monotonic() + 10
    while len(sender.requests) < 20:
        assert time.monotonic() < deadline, "the 20 pushes did not all start"
        await asyncio.sleep(0.01)
    before = store.units
    sender.release.set()  # all 20 answers arrive at once
    while store.run_report(lambda reports: reports.outbox()).pending:
        assert time.monotonic() < deadline, "the answers were not written"
        await asyncio.sleep(0.01)
    written = store.units - before
    await pusher.stop(grace=2)
    await asyncio.wait_for(run, 5)
    assert written <= 2, f"{written} units for 20 answers"
    delivered = store.run(lambda uow: [uow.outbox.get(i) for i in range(1, 21)])
    assert all(d is not None and d.state == DeliveryState.DELIVERED for d in delivered)
    assert len(sender.requests) == 20


async def test_stop_writes_every_answer_received_before_it_releases_the_claims() -> None:
    """A released row whose push landed but was not written would be pushed again."""
    store = MemoryStore()
    seed(store, 5)
    sender = HeldSender()
    sender.timeout = 10.0
    pusher = worker(store, sender)
    run = asyncio.create_task(pusher.run())
    deadline = time.monotonic() + 10
    while len(sender.requests) < 5:
        assert time.monotonic() < deadline, "the pushes did not start"
        await asyncio.sleep(0.01)
    sender.release.set()
    await pusher.stop(grace=2)  # at once: the answers are in, maybe not yet written
    await asyncio.wait_for(run, 5)
    states = store.run(lambda uow: [uow.outbox.get(i) for i in range(1, 6)])
    assert all(d is not None and d.state == DeliveryState.DELIVERED for d in states)


class TwoReceivers:
    """`hung` holds every push (a marketplace that answers nothing); the other answers at once."""

    timeout = 10.0

    def __init__(self, hung: str) -> None:
        self.hung = hung
        self.requests: list[PushRequest] = []
        self.release = asyncio.Event()

    async def send(self, request: PushRequest) -> PushReply:
        self.requests.append(request)
        if request.url.startswith(self.hung):
            await self.release.wait()
        return PushReply(200, b'{"status":"SUCCESS"}', 1.0)


async def test_a_marketplace_that_hangs_holds_only_its_own_push_slots() -> None:
    store = MemoryStore()
    now = time.time()

    def work(uow: UnitOfWork) -> None:
        for market in ("slow", "fast", "fast", "fast"):  # slow first: its rows come due first
            for _ in range(2 if market == "slow" else 1):
                spec = make_spec()
                uow.numbers.upsert(spec, now - 10)
                number = uow.numbers.get_by_phone(spec.phone)
                assert number is not None
                operation = uow.operations.open(market, make_order(), number, now - 5)
                uow.numbers.mark_busy(number.id, operation.id, now - 5)
                accept_sms(uow, IncomingMessage(spec.phone, "VK", f"{market} {spec.phone}"), now)

    store.run(work)
    sender = TwoReceivers("http://slow.invalid")
    adapters = {m: OnlinesimPush(f"http://{m}.invalid", "k") for m in ("slow", "fast")}
    pusher = DeliveryWorker(
        store, adapters, sender, RetryPolicy(delay=0.1), time.time, registry=CollectorRegistry(),
        poll_interval=0.02, concurrency=3, per_marketplace=1,
    )  # fmt: skip
    run = asyncio.create_task(pusher.run())
    deadline = time.monotonic() + 10

    def fast_states() -> list[DeliveryState]:
        every = store.run(lambda uow: [uow.outbox.get(i) for i in range(1, 6)])
        return [d.state for d in every if d is not None and d.marketplace == "fast"]

    while fast_states() != [DeliveryState.DELIVERED] * 3:
        assert time.monotonic() < deadline, "the fast marketplace's pushes waited on the hung one"
        await asyncio.sleep(0.02)
    slow = [r for r in sender.requests if r.url.startswith("http://slow.invalid")]
    assert len(slow) == 1, "the hung marketplace took more than its one slot"
    sender.release.set()
    await pusher.stop(grace=2)
    await asyncio.wait_for(run, 5)
