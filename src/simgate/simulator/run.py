"""The marketplaces and the SIM bank together, and the checks only they together can make.

One simulated SIM bank sends the farm's SMS; one or several simulated marketplaces buy from
the same farm through simgate. At the end the bank's records are reconciled with what each
marketplace received (reconcile.py), and with several marketplaces their ledgers are held
side by side (across.py): one SIM, one buyer at a time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from simgate.simulator.across import (
    RESALE_GUARDED,
    STALE_AFTER,
    Routed,
    Seller,
    judge_across,
    offered_again_across,
)
from simgate.simulator.checks import CANCEL_BUDGET
from simgate.simulator.farm import SimCard
from simgate.simulator.findings import CATALOGUE, Report
from simgate.simulator.ledger import MarketOp, Push, Snapshot
from simgate.simulator.market_config import MarketplaceConfig
from simgate.simulator.marketplace import MarketplaceSimulator, market_checks
from simgate.simulator.reconcile import reconcile
from simgate.simulator.simbank import SimBank, SimBankConfig

FARM_CHECKS = ("sms_pushed_exactly_once", "sms_routed_to_open_operation", "sms_text_intact", "intake_answers")
ACROSS_CHECKS = (
    "no_sim_held_by_two_marketplaces", "counts_within_free_sims", "pushes_to_the_right_marketplace",
    "no_push_after_success_anywhere", "no_resale_on_another_marketplace", "numbers_offered_again",
)  # fmt: skip
FINAL_ROUNDS = 5
"""Final GET_SERVICES rounds at most, with several marketplaces: a SIM changing lanes is
counted by neither marketplace until its old one has been answered once more."""
FINAL_GAP = 1.5
"""Real seconds between final rounds: above the server's clock-skew allowance (1 s) that a
leaving SIM waits out before it joins its new lane."""


@dataclass(frozen=True)
class Progress:
    """What the live view shows, read from every side every refresh."""

    elapsed: float
    speed: float
    counts: dict[str, int]
    """The SIM bank's counts (and, with one marketplace, the marketplace's too)."""
    markets: dict[str, dict[str, int]]
    """Each marketplace's counts, by name."""
    pending_pushes: int
    earnings_rub: float
    earnings: dict[str, float]
    """Per currency (HeroSMS pays in USD)."""
    latencies: dict[str, dict[str, float]]
    failures: dict[str, int]
    ending: bool


class Simulation:
    """`async with Simulation(markets, bank, cards) as sim:` start simgate with each
    marketplace's `sim.push_urls[name]` as its push URL, then `report = await sim.run(...)`.

    With one marketplace its checks and the bank's share one report; with several, each
    marketplace reports in a section and the run's own report adds the checks across them.
    """

    def __init__(
        self,
        markets: MarketplaceConfig | Sequence[MarketplaceConfig],
        bank: SimBankConfig,
        cards: Sequence[SimCard],
        *,
        settle: float = 10.0,
        close_timeout: float = 30.0,
        stale_after: float = STALE_AFTER,
    ) -> None:
        configs = [markets] if isinstance(markets, MarketplaceConfig) else list(markets)
        names = [config.marketplace for config in configs]
        if not configs or len(set(names)) != len(names):
            raise ValueError(f"one simulated buyer per marketplace, at least one: {names}")
        several = len(configs) > 1
        self.report = Report(
            title="simulated farm", speed=configs[0].speed, currency=configs[0].currency_letters
        )
        wanted = {*FARM_CHECKS, *(ACROSS_CHECKS if several else market_checks(configs[0]))}
        if several and RESALE_GUARDED in names:
            wanted.add("resale_window_kept")
        self.report.prepare([name for name in CATALOGUE if name in wanted])
        self.bank = SimBank(bank, cards, report=self.report, is_idle=self._idle)
        self.markets = [
            MarketplaceSimulator(
                config, farm=cards, listeners=[self.bank], report=self._report_for(config, several)
            )
            for config in configs
        ]
        if several:
            self.report.sections = [market.report for market in self.markets]
            for market in self.markets:
                # Lanes: each free SIM is offered by one marketplace, so none offers them all;
                # the check is made across them (_offered_again_across).
                alone = market.report.check("numbers_offered_again")
                alone.active = False
                alone.note("checked across all marketplaces together, above")
        self.cards = list(cards)
        self.settle = settle
        self.close_timeout = close_timeout
        self.stale_after = stale_after
        self.ending = False
        self._started = time.monotonic()

    def _report_for(self, config: MarketplaceConfig, several: bool) -> Report:
        if not several:
            return self.report
        return Report(title=config.marketplace, speed=config.speed, currency=config.currency_letters)

    async def __aenter__(self) -> Simulation:
        for market in self.markets:
            await market.__aenter__()
        await self.bank.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bank.__aexit__(*exc)
        for market in self.markets:
            await market.__aexit__(*exc)

    @property
    def market(self) -> MarketplaceSimulator:
        """The first marketplace (the only one in a single-marketplace run)."""
        return self.markets[0]

    @property
    def push_url(self) -> str:
        return self.market.push_url

    @property
    def push_urls(self) -> dict[str, str]:
        """Marketplace -> what simgate needs as its push URL."""
        return {market.name: market.push_url for market in self.markets}

    def _idle(self, phone: str) -> bool:
        """No operation on the number, and none ended a moment ago (its SMS may be late)."""
        for market in self.markets:
            if phone in market.ledger.held:
                return False
            past = market.ledger.history.get(phone)
            last = past[-1] if past else None
            if last is not None and (last.closed_at is None or time.monotonic() - last.closed_at <= 1.0):
                return False
        return True

    async def run(self, duration: float | None, stop: asyncio.Event | None = None) -> Report:
        """Run for `duration` real seconds (or until `stop`), end every operation, judge."""
        self._started = time.monotonic()
        stop = stop or asyncio.Event()
        background = asyncio.create_task(self.bank.run(None, stop=stop))
        try:
            await asyncio.gather(*(market.run(duration, stop) for market in self.markets))
        finally:
            self.ending = True
            await self.bank.stop()
            background.cancel()
            await asyncio.gather(background, return_exceptions=True)
        await self._wait_for_pushes()
        await asyncio.gather(*(market.close_all(self.close_timeout) for market in self.markets))
        several = len(self.markets) > 1
        if several:
            await self._offered_again_across()
        for market in self.markets:
            if not several:
                await market.final_poll()
            market.finalize(crossed=self._crossed)
        reconcile(self.markets, self.bank, self.report)
        if several:
            judge_across(
                self._sellers(),
                self.cards,
                self._routed(),
                self.report,
                stale_after=self.stale_after,
                speed=self.report.speed,
            )
        self.report.real_seconds = time.monotonic() - self._started
        for section in self.report.sections:
            section.real_seconds = self.report.real_seconds
        return self.report

    def _sellers(self) -> list[Seller]:
        return [
            Seller(m.name, m.ledger, m.config.names, CANCEL_BUDGET if m.config.protocol == "agent" else None)
            for m in self.markets
        ]

    async def _offered_again_across(self) -> None:
        """After every operation ended: what all marketplaces advertise covers every number
        not gone for a service, on the best of a few final rounds (across.py)."""
        check = self.report.check("numbers_offered_again")
        if any(m.ledger.held or m.ledger.unknown_outcomes for m in self.markets):
            check.note("skipped: some operations' state is unknown")
            return
        rounds: list[list[Snapshot]] = []
        judged, problems = 0, ["no final answer"]
        for attempt in range(FINAL_ROUNDS):
            if attempt:
                await asyncio.sleep(FINAL_GAP)
            polled = [await m.poll(m.config.calls.services) for m in self.markets]
            snapshots = [snapshot for snapshot in polled if snapshot is not None]
            if len(snapshots) != len(polled):
                continue
            rounds.append(snapshots)
            judged, problems = offered_again_across(self._sellers(), self.cards, rounds)
            if not problems:
                break
        if not rounds:
            check.note("skipped: a marketplace got no final answer")
            return
        for _ in range(judged - len(problems)):
            check.ok()
        for problem in problems:
            check.fail(problem)

    def _routed(self) -> list[Routed]:
        return [
            Routed(record.phone, text, operation_id)
            for (operation_id, text), records in self.bank.routed.items()
            for record in records[:1]
        ]

    def pending_pushes(self) -> int:
        """SMS the server routed to an operation that no marketplace has received yet."""
        finals = [market.ledger.final_answers for market in self.markets]
        return sum(1 for key in self.bank.routed if not any(key in final for final in finals))

    async def _wait_for_pushes(self) -> None:
        deadline = time.monotonic() + self.settle
        events = [market.push_event for market in self.markets]
        while self.pending_pushes() and (left := deadline - time.monotonic()) > 0:
            for event in events:
                event.clear()
            waits = [asyncio.create_task(event.wait()) for event in events]
            with suppress(TimeoutError):
                await asyncio.wait(waits, timeout=min(left, 0.1), return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()

    def _crossed(self, push: Push, op: MarketOp) -> bool | None:
        """Did the SMS reach the partner before our FINISH was confirmed?"""
        records = self.bank.routed.get((op.id, push.text))
        if not records:
            return None
        confirmed = op.closed_at if op.closed_at is not None else push.at
        return any(record.sent_at <= confirmed for record in records)

    def progress(self) -> Progress:
        report = self.report
        parts = [report, *report.sections]
        latencies = {call: report.latencies.summary(call) for call in report.latencies.calls()}
        for section in report.sections:
            for call in section.latencies.calls():
                latencies[f"{section.title} {call}"] = section.latencies.summary(call)
        failures = {
            (name if part is report else f"{part.title}: {name}"): check.failures
            for part in parts
            for name, check in part.checks.items()
            if check.failures
        }
        return Progress(
            elapsed=time.monotonic() - self._started,
            speed=report.speed,
            counts=dict(report.counts),
            markets={market.name: dict(market.report.counts) for market in self.markets},
            pending_pushes=self.pending_pushes(),
            earnings_rub=report.earnings_rub,
            earnings=report.earnings,
            latencies=latencies,
            failures=failures,
            ending=self.ending,
        )


def summary(progress: Progress) -> dict[str, Any]:
    """A flat dict of the live figures (for logs when the terminal is not interactive)."""
    counts = progress.counts
    markets = progress.markets.values()
    return {
        "t": round(progress.elapsed, 1),
        "ops": sum(c.get("activation.opened", 0) + c.get("rent.opened", 0) for c in markets),
        "open": sum(c.get("activation.open", 0) + c.get("rent.open", 0) for c in markets),
        "sms": counts.get("sms.sent", 0),
        "pushed": sum(c.get("push.success", 0) for c in markets),
        "pending": progress.pending_pushes,
        "rub": round(progress.earnings_rub, 2),
        "failures": sum(progress.failures.values()),
        **(
            {name: c.get("activation.opened", 0) for name, c in progress.markets.items()}
            if len(progress.markets) > 1
            else {}
        ),
    }
