"""The outbox worker: claim due deliveries, push each, record the attempt, repeat.

Crash-safe by construction: a claim is a lease in the database, so a worker that dies
mid-push leaves rows that another worker takes over when the lease runs out; a worker on the
same host sees that the claimant's process is gone and releases its claims at once, at start
and every few seconds (delivery/owners.py).

One delivery is never pushed twice at once: an attempt is cut off at the push timeout
(plus a second), the lease outlasts it by a wide margin (2 x timeout + 10 s), and a worker
never starts a delivery it is still pushing, even if it claims it again. What remains is
the at-least-once window: a push the receiver took but whose answer never reached us (a
kill between push and bookkeeping, an answer slower than the push timeout) is sent again.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Histogram

from simgate.delivery.owners import dead_on_this_host, worker_name
from simgate.delivery.retry import RetryPolicy
from simgate.domain.messages import Attempt, DueDelivery, PushReply, PushRequest, Verdict
from simgate.domain.types import Timestamp
from simgate.storage.ports import Store, StoreUnavailable, UnitOfWork

log = logging.getLogger("simgate.delivery")

SWEEP_SECONDS = 5.0
"""How often a running worker looks for claims left by dead workers on its host."""
FAILED_CLAIM_PAUSE = 1.0
"""After a failed claim (database down, disk full): one log line a second, not four."""
CUTOFF_SLACK = 1.0
"""An attempt is abandoned this long after the sender's own timeout should have ended it."""
MAX_RECORD_BATCH = 256
"""Finished attempts written in one unit of work at most."""
UNRECORDED_FACTOR = 4
"""No new claim while this many times `concurrency` pushes wait for their answer to be written:
a push that is not written yet is sent again after a crash."""


def lease_for(timeout: float) -> float:
    """A claim outlives the longest attempt (timeout + slack) and its bookkeeping, widely."""
    return 2 * timeout + 10.0


class PushAdapter(Protocol):
    """A marketplace's push format (marketplaces/<name>/push.py)."""

    def request(self, item: DueDelivery) -> PushRequest: ...

    def verdict(self, reply: PushReply) -> tuple[Verdict, str | None]: ...


class Sender(Protocol):
    timeout: float

    async def send(self, request: PushRequest) -> PushReply: ...


@dataclass(frozen=True, slots=True)
class Finished:
    """An attempt made, waiting to be written."""

    item: DueDelivery
    attempt: Attempt
    state: str
    next_at: Timestamp
    reason: str | None
    deadline: float
    """time.monotonic() past which the claim may have run out: a failing write gives up."""


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        adapters: Mapping[str, PushAdapter],
        sender: Sender,
        policy: RetryPolicy,
        clock: Callable[[], Timestamp],
        *,
        name: str | None = None,
        concurrency: int = 64,
        per_marketplace: int = 32,
        poll_interval: float = 0.25,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.store, self.adapters, self.sender = store, adapters, sender
        self.policy, self.clock = policy, clock
        self.name = name or worker_name()
        self.concurrency = concurrency
        self.per_marketplace = per_marketplace
        """Pushes in flight to one marketplace at most: one that hangs (each attempt waiting
        out the push timeout) holds only its own slots, never the others'."""
        self._busy: collections.Counter[str] = collections.Counter()
        self.poll_interval = poll_interval
        self.lease = lease_for(sender.timeout)
        self._pushing: set[int] = set()
        """Deliveries with an attempt under way here: never started a second time meanwhile."""
        self._next_sweep = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_done = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        """Pushes under way (the HTTP attempt): at most `concurrency`."""
        self._unrecorded: list[Finished] = []
        """Attempts made whose outcome waits for the next batch write (`_record_loop`)."""
        self._record_wake = asyncio.Event()
        self._recorder: asyncio.Task[None] | None = None
        self._batch_writing = False
        self._insisting: set[asyncio.Task[None]] = set()
        """Outcomes whose batch write failed, each written on its own (`_record`)."""
        self.attempts = Counter(
            "simgate_push_attempts", "PUSH_SMS attempts by result",
            ["marketplace", "result"], registry=registry,
        )  # fmt: skip
        self.latency = Histogram(
            "simgate_push_seconds", "PUSH_SMS round trip", ["marketplace"], registry=registry
        )

    def wake(self) -> None:
        """Called after intake commits, so a new SMS is pushed at once instead of next poll."""
        self._wake.set()

    async def run(self) -> None:
        log.info("delivery worker %s started", self.name)
        if self._recorder is None:
            self._recorder = asyncio.create_task(self._record_loop())
        try:
            await self._loop()
        finally:
            self._loop_done.set()

    async def _release_dead(self) -> None:
        """Release the claims of workers that died on this host, so their pushes resume now."""
        if time.monotonic() < self._next_sweep:
            return
        try:
            claimants = await self.store.read(lambda uow: uow.outbox.claimants())
            dead = dead_on_this_host(claimants, self.name)
            released = 0
            if dead:
                released = await self.store.transact(lambda uow: sum(uow.outbox.release(n) for n in dead))
                log.warning("released the claims of %s: the process is gone", ", ".join(dead))
        except StoreUnavailable as error:  # the database may be restarting: soon again
            log.warning("looking for dead workers' claims failed (%s); retrying", error)
            self._next_sweep = time.monotonic() + 1.0
            return
        except Exception:
            log.exception("looking for dead workers' claims failed; retrying")
            self._next_sweep = time.monotonic() + 1.0
            return
        self._next_sweep = time.monotonic() + SWEEP_SECONDS
        if released:
            log.info("%s deliveries of dead workers resume now", released)

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            await self._release_dead()
            room = self.concurrency - len(self._inflight)
            if len(self._pushing) >= UNRECORDED_FACTOR * self.concurrency:
                room = 0  # the writes lag: wait for them (each one written wakes this loop)
            batch: list[DueDelivery] = []
            pause = self.poll_interval
            if self.store.write_error is not None:
                # A push whose answer cannot be recorded would be pushed again later: wait
                # until writes work (the store notices by itself) before starting any.
                room, pause = 0, max(pause, FAILED_CLAIM_PAUSE)
            full = {market for market, busy in self._busy.items() if busy >= self.per_marketplace}
            if room > 0:
                # No marketplace can get more than its free slots, whichever rows come back.
                free = [self.per_marketplace - self._busy[m] for m in self.adapters if m not in full]
                room = min(room, max(0, min(free, default=0)))
            if room > 0:
                try:
                    batch = await self.store.transact(self._claim(room, full))
                except StoreUnavailable as error:  # restarting, or a full disk: keep going
                    log.warning("claiming deliveries failed (%s); retrying", error)
                    pause = max(pause, FAILED_CLAIM_PAUSE)
                except Exception:  # keep the worker alive whatever happens
                    log.exception("claiming deliveries failed; retrying")
                    pause = max(pause, FAILED_CLAIM_PAUSE)
            if self._stopping:
                break  # claimed while stop() began: stop() releases these, unsent
            for item in batch:
                if item.id in self._pushing:
                    continue  # our own lease ran out mid-attempt and we claimed it again
                self._pushing.add(item.id)
                self._busy[item.marketplace] += 1  # now: the next claim must see this slot taken
                task = asyncio.create_task(self._deliver(item))
                self._inflight.add(task)
                task.add_done_callback(self._finished)
            if len(batch) < room or room <= 0:  # room 0: full, or writes failing
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), pause)

    def _claim(self, room: int, full: set[str]) -> Callable[..., list[DueDelivery]]:
        now = self.clock()
        return lambda uow: uow.outbox.claim_due(self.name, now, self.lease, room, full)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._wake.set()

    async def _deliver(self, item: DueDelivery) -> None:
        """One push; its outcome is written by the next batch (`_record_loop`), and until it
        is the delivery stays in `_pushing`: never started again here meanwhile."""
        finished: Finished | None = None
        try:
            finished = await self._attempt(item)
        finally:
            self._busy[item.marketplace] -= 1
            if finished is None:
                self._pushing.discard(item.id)
            else:
                self._unrecorded.append(finished)
                self._record_wake.set()

    async def _attempt(self, item: DueDelivery) -> Finished | None:
        if self._stopping:
            return None  # claimed, but halted before this push began: stop() releases the claim
        adapter = self.adapters.get(item.marketplace)
        if adapter is None:
            log.error("delivery %s: no push adapter for %s", item.id, item.marketplace)
            return None
        started = self.clock()
        reply = await self._send(adapter.request(item))
        verdict, code = adapter.verdict(reply)
        now = self.clock()
        state, gave_up = self.policy.after(verdict, item, now)
        attempt = Attempt(
            started_at=started, latency_ms=reply.latency_ms, http_status=reply.status,
            response=reply.body[:500].decode("utf-8", "replace") or None, error=reply.error,
            verdict=verdict,
        )  # fmt: skip
        reason = code or gave_up or reply.error
        next_at = self.policy.next_attempt(now)
        if reply.status is None and reply.error and reply.error.startswith("timeout"):
            # The receiver may still be working on the copy we gave up on: leave it at
            # least another timeout before sending the next one.
            next_at = max(next_at, now + self.sender.timeout)
        self.attempts.labels(item.marketplace, state if state != "pending" else "retry").inc()
        self.latency.labels(item.marketplace).observe(reply.latency_ms / 1000)
        # A push that did not land is a WARNING (it costs money if it lasts), once, with the
        # reason once: the HTTP status, or "no answer" when the error is the reason. One that
        # landed is DEBUG: its attempt is in the database (the console shows it), and a line
        # per SMS cost ~10 % of the worker's CPU (docs/benchmarks.md, issue 14).
        failed = state != "delivered"
        log.log(
            logging.WARNING if failed else logging.DEBUG,
            "push delivery=%s operation=%s attempt=%s status=%s outcome=%s%s",
            item.id, item.operation_id, item.attempts + 1,
            "no answer" if reply.status is None else reply.status, state,
            f" ({reason})" if reason and failed else "",
        )  # fmt: skip
        return Finished(item, attempt, state, next_at, reason, time.monotonic() + self.lease)

    async def _send(self, request: PushRequest) -> PushReply:
        """The sender bounds its attempt itself; this bound holds even if it does not, so an
        attempt can never outlive its lease."""
        started = time.perf_counter()
        try:
            async with asyncio.timeout(self.sender.timeout + CUTOFF_SLACK):
                return await self.sender.send(request)
        except TimeoutError:
            elapsed = round((time.perf_counter() - started) * 1000, 3)
            return PushReply(None, b"", elapsed, f"timeout after {self.sender.timeout:g}s (cut off)")

    async def _record_loop(self) -> None:
        """Write finished attempts in batches: one unit of work for all that finished while
        the previous batch was being written, instead of one unit (and, on PostgreSQL, one
        round trip) per push. A batch that fails is written again one outcome at a time, each
        insisting on its own (`_record`), so one bad row never holds back the others."""
        while True:
            if not self._unrecorded:
                self._record_wake.clear()
                await self._record_wake.wait()
                continue
            batch = self._unrecorded[:MAX_RECORD_BATCH]
            del self._unrecorded[:MAX_RECORD_BATCH]
            self._batch_writing = True
            try:
                await self.store.transact(self._writing(batch))
            except Exception:
                for done in batch:
                    task = asyncio.create_task(self._record(done))
                    self._insisting.add(task)
                    task.add_done_callback(self._insisting.discard)
            else:
                self._recorded(batch)
            finally:
                self._batch_writing = False

    def _writing(self, batch: list[Finished]) -> Callable[[UnitOfWork], None]:
        def write(uow: UnitOfWork) -> None:
            for done in batch:
                self._write(uow, done)

        return write

    def _write(self, uow: UnitOfWork, done: Finished) -> None:
        uow.outbox.record(done.item.id, self.name, done.attempt, done.state, done.next_at, done.reason)

    def _recorded(self, batch: list[Finished]) -> None:
        for done in batch:
            self._pushing.discard(done.item.id)
        self._wake.set()

    async def _record(self, done: Finished) -> None:
        # The push already happened: until this write lands, a crash (or the lease running
        # out) sends it again. So insist for as long as the lease lasts, and at least once a
        # second: the write goes through within a second of the disk or database coming back.
        pauses = iter((0.05, 0.2, 0.5))
        item = done.item
        try:
            while True:
                try:
                    await self.store.transact(lambda uow: self._write(uow, done))
                    return
                except Exception as error:
                    if time.monotonic() >= done.deadline and self.store.write_error is None:
                        # Writes work for others but not for this one: a bug, not an outage.
                        # While the database refuses every write, nobody can claim it either,
                        # so insisting past the lease costs nothing and saves a duplicate.
                        log.error("recording delivery %s failed for the whole lease; giving up", item.id)
                        return
                    if isinstance(error, StoreUnavailable):
                        log.warning("recording delivery %s failed (%s); retrying", item.id, error)
                    else:
                        log.exception("recording delivery %s failed; retrying", item.id)
                    await asyncio.sleep(next(pauses, 1.0))
        finally:
            self._recorded([done])

    async def _flush_records(self, grace: float) -> None:
        """Until every finished attempt is written (or `grace` runs out), then no recorder."""
        deadline = time.monotonic() + grace
        while self._unrecorded or self._insisting or self._batch_writing:
            if time.monotonic() >= deadline:
                break
            self._record_wake.set()
            await asyncio.sleep(0.01)
        for task in (*self._insisting, *((self._recorder,) if self._recorder else ())):
            task.cancel()
        await asyncio.gather(
            *self._insisting, *((self._recorder,) if self._recorder else ()), return_exceptions=True
        )
        self._recorder = None

    def halt(self) -> None:
        """Stop claiming now; safe to call from a signal handler. stop() finishes the job."""
        self._stopping = True
        self._wake.set()

    async def stop(self, grace: float = 10.0) -> None:
        """Stop claiming; let in-flight pushes finish (up to `grace`), release the rest."""
        self.halt()
        # The loop may be inside a claim: wait for it, or rows claimed after the release
        # below would be pushed here and, released, by another worker too.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._loop_done.wait(), grace)
        if self._inflight:
            _, pending = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        # Every answer received is written before the claims go: a released row whose push
        # landed but was not recorded would be pushed again by the next worker.
        await self._flush_records(grace)
        released = await self.store.transact(lambda uow: uow.outbox.release(self.name))
        log.info("delivery worker %s stopped (released %s claims)", self.name, released)
