"""A simulated marketplace that buys from the partner and checks it: Onlinesim (spec 5-8), or
SMSHUB and its kin over the agent protocol (spec smshub-agent).

It does what the marketplace does: polls GET_SERVICES (and Onlinesim's rent variant), orders
activations (and rents) for a mix of countries, operators and services it learned from those
answers, receives PUSH_SMS on loopback, and finishes each operation the way clients end them:
sold shortly after the code arrives, cancelled when none comes, now and then refunded, rents
ended with their total. FINISH is resent when the answer is slow or lost, and sometimes on
purpose, because the real marketplace does both. Time is accelerated by `speed`: every
simulated delay is divided by it; the answer deadlines are not.

This module is the buyer. It keeps its records in a `Ledger` (ledger.py), calls the partner
through a client (client.py), receives pushes in a `PushReceiver` (pushes.py) and leaves the
judging to `PartnerChecks` (checks.py). Everything runs on loopback and every loop is
bounded in time and in count.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Iterable, Sequence
from typing import Any

from simgate.simulator.checks import PartnerChecks
from simgate.simulator.client import client_for
from simgate.simulator.demand import Demand
from simgate.simulator.farm import SimCard
from simgate.simulator.findings import Report
from simgate.simulator.finishing import Finisher
from simgate.simulator.ledger import Kind, Ledger, MarketOp, OperationEvent, OperationListener, Push, Snapshot
from simgate.simulator.market_config import MarketplaceConfig
from simgate.simulator.pushes import PushReceiver

log = logging.getLogger("simgate.simulator.marketplace")


def market_checks(config: MarketplaceConfig) -> list[str]:
    """The checks one marketplace makes on its own, in the order its report lists them."""
    agent = config.protocol == "agent"
    return [
        "counts_not_over_reported", "counts_within_farm", *(() if agent else ("any_is_total",)),
        "numbers_offered_again", "no_number_issued_twice", "activation_ids_unique",
        "exclusions_honoured", "issued_matches_order", "no_reissue_after_sale",
        "answers_well_formed", "finish_answered_success", "answers_within_deadline", "answers_fast",
        "pushes_well_formed", "no_duplicate_push", *(("sms_id_stable",) if agent else ()),
        "no_push_for_closed_or_unknown", *(("pings_well_formed",) if config.ping_path else ()),
    ]  # fmt: skip


class MarketplaceSimulator:
    """Use as `async with MarketplaceSimulator(config) as market:`; then `run`, `close_all`, `finalize`."""

    def __init__(
        self,
        config: MarketplaceConfig,
        *,
        farm: Sequence[SimCard] | None = None,
        listeners: Iterable[OperationListener] = (),
        report: Report | None = None,
    ) -> None:
        if config.speed <= 0:
            raise ValueError("speed must be > 0")
        self.config = config
        self.rng = random.Random(config.seed)
        self.report = report or Report(
            title="marketplace", speed=config.speed, currency=config.currency_letters
        )
        self.report.speed = config.speed
        self.listeners = list(listeners)
        self.farm: dict[str, SimCard] | None = (
            {card.phone: card for card in farm} if farm is not None else None
        )
        self.ledger = Ledger()
        self.checks = PartnerChecks(
            self.report, self.ledger, self.farm, crossed_grace=config.crossed_grace,
            protocol=config.protocol, names=config.names, marketplace=config.marketplace,
        )  # fmt: skip
        self.client = client_for(config, self.rng, self.report)
        self.receiver = PushReceiver(config, self.ledger, self.report, self.rng)
        self.finisher = Finisher(config, self.client, self.ledger, self.report, self.rng, self._emit)
        self._remaining: dict[str, dict[tuple[str, str, str], int]] = {}
        """What the latest GET_SERVICES still offers, less what we ordered since."""
        self.demand = Demand(config, self.rng)
        self._rent_plan: dict[int, float] = {}
        self._life: set[asyncio.Task[None]] = set()
        self._ordering = False
        self._closing = asyncio.Event()
        self._orders = 0
        self._started = time.monotonic()
        self.report.prepare(market_checks(config))
        for name in ("counts_within_farm", "numbers_offered_again", "issued_matches_order"):
            self.report.check(name).active = self.farm is not None

    # ----------------------------------------------------------------- lifecycle

    async def __aenter__(self) -> MarketplaceSimulator:
        await self.client.open()
        await self.receiver.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._ordering = False
        self._closing.set()
        for task in list(self._life):
            task.cancel()
        await asyncio.gather(*self._life, return_exceptions=True)
        await self.receiver.stop()
        await self.client.close()

    @property
    def name(self) -> str:
        return self.config.marketplace

    @property
    def push_url(self) -> str:
        """What simgate needs as SIMGATE_ONLINESIM_PUSH_URL (or SIMGATE_SMSHUB_PUSH_URL...)."""
        return self.receiver.url

    @property
    def push_event(self) -> asyncio.Event:
        """Set on every push received (for whoever waits for pushes to settle)."""
        return self.receiver.event

    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _sim(self, seconds: float) -> float:
        return max(0.0, seconds / self.config.speed)

    def _uniform(self, bounds: tuple[float, float]) -> float:
        return self._sim(self.rng.uniform(*bounds))

    @property
    def open_count(self) -> int:
        return len(self._life)

    # ------------------------------------------------------------------ running

    async def run(self, duration: float | None, stop: asyncio.Event | None = None) -> None:
        """Poll and order until `duration` real seconds pass or `stop` is set."""
        self._started = time.monotonic()
        self._ordering = True
        cfg, calls = self.config, self.config.calls
        await self.poll(calls.services)
        loops = [
            asyncio.create_task(self._poll_loop(calls.services, cfg.poll_interval)),
            asyncio.create_task(self._arrivals(cfg.activation_rate, "activation")),
        ]
        if calls.services_rent is not None:
            await self.poll(calls.services_rent)
            loops += [
                asyncio.create_task(self._poll_loop(calls.services_rent, cfg.rent_poll_interval)),
                asyncio.create_task(self._arrivals(cfg.rent_rate, "rent")),
            ]
        waiter = asyncio.create_task((stop or asyncio.Event()).wait())
        try:
            await asyncio.wait([waiter], timeout=duration)
        finally:
            self._ordering = False
            for task in (waiter, *loops):
                task.cancel()
            await asyncio.gather(waiter, *loops, return_exceptions=True)

    def stop_ordering(self) -> None:
        self._ordering = False

    async def close_all(self, grace: float = 30.0) -> None:
        """End every open operation now (clients leave at the end of the run) and wait."""
        self._ordering = False
        self._closing.set()
        if self._life:
            _, pending = await asyncio.wait(set(self._life), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _poll_loop(self, endpoint: str, interval: float) -> None:
        while self._ordering:
            await asyncio.sleep(max(0.05, self._sim(interval)))
            if self._ordering:
                await self.poll(endpoint)

    async def _arrivals(self, rate: float, kind: Kind) -> None:
        if rate <= 0:
            return
        while self._ordering and self._orders < self.config.max_operations:
            await asyncio.sleep(self.rng.expovariate(rate * self.config.speed))
            if not self._ordering:
                return
            if len(self._life) >= self.config.max_open:
                self.report.counts["order.capped"] += 1
                continue
            self._orders += 1
            self._spawn(self._operation(kind))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._life.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._life.discard(task)
        # One broken operation must not end the run, but it must not pass unnoticed either.
        if not task.cancelled() and task.exception() is not None:
            log.error("simulated operation failed", exc_info=task.exception())
            self.report.counts["simulator.errors"] += 1

    # ------------------------------------------------------------------ GET_SERVICES

    async def poll(self, endpoint: str) -> Snapshot | None:
        payload = {"action": "GET_SERVICES", "key": self.config.key}
        started = time.monotonic()
        consumed = Counter(self.ledger.consumed)
        result = await self.client.call(endpoint, payload)
        answered = time.monotonic()
        self.report.counts["services.polls"] += 1
        counts = self.checks.services_answer(endpoint, result)
        if counts is None:
            return None
        snapshot = Snapshot(started, answered, counts, consumed)
        self.ledger.snapshots[endpoint] = snapshot
        if endpoint == self.config.calls.services:
            self.ledger.record_poll(snapshot)
        self._remaining[endpoint] = dict(counts)
        if self.config.protocol == "onlinesim":
            self.checks.any_is_total(endpoint, counts)
        if self.farm is not None:
            self.checks.within_farm(snapshot, rent=endpoint == self.config.calls.services_rent)
        return snapshot

    # ------------------------------------------------------------------ ordering

    async def _operation(self, kind: Kind) -> None:
        calls = self.config.calls
        services_endpoint = calls.services_rent if kind == "rent" else calls.services
        choice = self.demand.choose(self._remaining.get(services_endpoint or ""), kind)
        if choice is None:
            self.report.counts["order.skipped"] += 1
            return
        country, operator, service = choice
        rent = kind == "rent"
        endpoint = (calls.number_rent if rent else None) or calls.number
        snapshot = self.ledger.snapshots.get(services_endpoint or "")
        offered = (
            round(self.rng.uniform(30, 150), 2) if rent else self.demand.price(country, service)
        )  # a rent's `sum` is the daily price here; its FINISH carries the total
        exceptions = self.demand.exceptions(country)
        payload: dict[str, Any] = {
            "action": "GET_NUMBER",
            "country": country,
            "operator": operator,
            "service": service,
            "sum": offered,
            "key": self.config.key,
        }
        if self.config.protocol == "agent":
            payload["currency"] = self.config.currency  # `sum` with its currency (spec 5.2)
        if exceptions is not None:
            payload["exceptionPhoneSet"] = exceptions
        requested = time.monotonic()
        ledger = self.ledger
        ledger.inflight[country] += 1
        record = ledger.record_order(country, requested)
        self.report.counts["order.sent"] += 1
        try:
            result = await self.client.call(endpoint, payload)
        finally:
            ledger.inflight[country] -= 1
            record.answered_at = time.monotonic()
        word = result.word
        if result.error is None and result.status == 200 and word == "NO_NUMBERS":
            self.report.counts["order.no_numbers"] += 1
            self.checks.no_numbers(country, operator, service, snapshot, exceptions)
            self.checks.shape(True, "")
            return
        ledger.consumed[country] += 1  # success, error or timeout: a number may be gone
        if result.error is not None or result.status != 200 or word != "SUCCESS" or result.body is None:
            ledger.unknown_outcomes += 1
            if result.error != "timeout":
                self.checks.shape(
                    False, f"{endpoint}: HTTP {result.status} {result.error or str(result.body)[:120]}"
                )
            return
        number, activation_id = result.body.get("number"), result.body.get("activationId")
        good = type(number) is int and type(activation_id) is int and activation_id >= 1
        self.checks.shape(
            good, f"{endpoint}: number={number!r} activationId={activation_id!r} (JSON integers expected)"
        )
        if not good:
            ledger.unknown_outcomes += 1
            if not (isinstance(number, int | str) and isinstance(activation_id, int | str)):
                return
        phone, op_id = str(number), int(str(activation_id))
        op = MarketOp(
            id=op_id, kind=kind, country=country, operator=operator,
            service=None if rent else service, phone=phone,
            offered_kopecks=round(offered * 100), requested_at=requested, issued_at=time.monotonic(),
            canonical=None if rent else self.config.names.service(service),
        )  # fmt: skip
        if not self._register(op, exceptions):
            return
        await (self._rent_life(op) if rent else self._activation_life(op))

    def _register(self, op: MarketOp, exceptions: list[int | str] | None) -> bool:
        """Judge and record an issued number; False if it cannot be tracked."""
        if not self.checks.issued(op, exceptions):
            return False
        self.ledger.record_issue(op)
        self.demand.learn(op.country, op.phone)
        self.report.counts[f"{op.kind}.opened"] += 1
        self.report.counts[f"{op.kind}.open"] += 1
        rent_seconds = None
        if op.kind == "rent":
            rent_seconds = self._uniform(self.config.rent_duration)
            op.rent_total_kopecks = round(self.rng.uniform(100, 2000) * 100)
            self._rent_plan[op.id] = rent_seconds
        self._emit(OperationEvent("opened", op.id, op.phone, op.kind, op.canonical, rent_seconds))
        return True

    def _emit(self, event: OperationEvent) -> None:
        for listener in self.listeners:
            try:
                listener.operation_event(event)
            except Exception:
                log.exception("operation listener failed")

    # ------------------------------------------------------------------ operation lives

    async def _wait(self, event: asyncio.Event, seconds: float) -> bool:
        """Wait for `event` up to `seconds`, or until close_all; True if the event is set."""
        if event.is_set():
            return True
        waits = [asyncio.create_task(event.wait()), asyncio.create_task(self._closing.wait())]
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return event.is_set()

    async def _activation_life(self, op: MarketOp) -> None:
        patience = min(self._uniform(self.config.patience), self._sim(15 * 60.0))
        if await self._wait(op.code_event, patience):
            await self._wait(asyncio.Event(), self._uniform(self.config.read_delay))
            roll = self.rng.random()
            if roll < self.config.p_not_taken:
                status = 1
            elif roll < self.config.p_not_taken + self.config.p_refund:
                status = 5
            else:
                status = 3
        else:
            status = 4
        with_sum = status == 3 and self.rng.random() >= self.config.p_omit_finish_sum
        await self.finisher.finish(op, status, op.offered_kopecks if with_sum else None)

    async def _rent_life(self, op: MarketOp) -> None:
        planned = self._rent_plan.pop(op.id, self._uniform(self.config.rent_duration))
        if not await self._wait(op.code_event, self._sim(self.config.rent_guard)):
            # The 20-minute guard: no SMS, Onlinesim cancels and refunds the client (spec 6.2).
            await self.finisher.finish(op, 4, 0)
            return
        await self._wait(asyncio.Event(), max(0.0, op.issued_at + planned - time.monotonic()))
        await self.finisher.finish(op, 3, op.rent_total_kopecks)

    # ------------------------------------------------------------------ the verdict

    async def final_poll(self) -> None:
        """After close_all: every number not sold for a service is offered for it again."""
        self.report.check("numbers_offered_again")
        snapshot = await self.poll(self.config.calls.services)
        self.checks.offered_again(snapshot, (service for service, _ in self.config.services))

    def finalize(self, crossed: Callable[[Push, MarketOp], bool | None] | None = None) -> Report:
        """Judge pushes that came after our FINISH; `crossed` (from the SIM bank's ledger)
        says whether the SMS reached the partner before the FINISH did (None: unknown)."""
        self.checks.pushes_after_finish(crossed)
        self.report.real_seconds = self.elapsed()
        return self.report
