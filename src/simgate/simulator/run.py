"""The marketplace and the SIM bank together, and the checks only the pair can make.

Alone, the marketplace sees pushes and the bank sees intake answers. Together they can say
whether every SMS that reached an open operation was pushed exactly once, with its text
intact, and whether the server routed each SMS to the operation that was open at the time.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from simgate.simulator.farm import SimCard
from simgate.simulator.ledger import MarketOp, Push
from simgate.simulator.market_config import MarketplaceConfig
from simgate.simulator.marketplace import MarketplaceSimulator
from simgate.simulator.report import Report
from simgate.simulator.simbank import SimBank, SimBankConfig, SmsRecord


@dataclass(frozen=True)
class Progress:
    """What the live view shows, read from both sides every refresh."""

    elapsed: float
    speed: float
    counts: dict[str, int]
    pending_pushes: int
    earnings_rub: float
    latencies: dict[str, dict[str, float]]
    failures: dict[str, int]
    ending: bool


class Simulation:
    """`async with Simulation(market, bank, cards) as sim:` start simgate with
    `sim.push_url` as SIMGATE_ONLINESIM_PUSH_URL, then `report = await sim.run(...)`."""

    def __init__(
        self,
        market: MarketplaceConfig,
        bank: SimBankConfig,
        cards: Sequence[SimCard],
        *,
        settle: float = 10.0,
        close_timeout: float = 30.0,
    ) -> None:
        self.report = Report(title="simulated farm", speed=market.speed)
        self.report.prepare()
        self.bank = SimBank(bank, cards, report=self.report, is_idle=self._idle)
        self.market = MarketplaceSimulator(market, farm=cards, listeners=[self.bank], report=self.report)
        self.settle = settle
        self.close_timeout = close_timeout
        self.ending = False
        self._started = time.monotonic()

    async def __aenter__(self) -> Simulation:
        await self.market.__aenter__()
        await self.bank.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bank.__aexit__(*exc)
        await self.market.__aexit__(*exc)

    @property
    def push_url(self) -> str:
        return self.market.push_url

    def _idle(self, phone: str) -> bool:
        """No operation on the number, and none ended a moment ago (its SMS may be late)."""
        if phone in self.market.ledger.held:
            return False
        past = self.market.ledger.history.get(phone)
        last = past[-1] if past else None
        if last is None:
            return True
        return last.closed_at is not None and time.monotonic() - last.closed_at > 1.0

    async def run(self, duration: float | None, stop: asyncio.Event | None = None) -> Report:
        """Run for `duration` real seconds (or until `stop`), end every operation, judge."""
        self._started = time.monotonic()
        stop = stop or asyncio.Event()
        background = asyncio.create_task(self.bank.run(None, stop=stop))
        try:
            await self.market.run(duration, stop)
        finally:
            self.ending = True
            await self.bank.stop()
            background.cancel()
            await asyncio.gather(background, return_exceptions=True)
        await self._wait_for_pushes()
        await self.market.close_all(self.close_timeout)
        await self.market.final_poll()
        self.market.finalize(crossed=self._crossed)
        reconcile(self.market, self.bank, self.report)
        self.report.real_seconds = time.monotonic() - self._started
        return self.report

    def pending_pushes(self) -> int:
        """SMS the server routed to an operation that the marketplace has not received yet."""
        final = self.market.ledger.final_answers
        return sum(1 for key in self.bank.routed if key not in final)

    async def _wait_for_pushes(self) -> None:
        deadline = time.monotonic() + self.settle
        arrived = self.market.push_event
        while self.pending_pushes() and (left := deadline - time.monotonic()) > 0:
            arrived.clear()
            with suppress(TimeoutError):
                await asyncio.wait_for(arrived.wait(), min(left, 0.1))

    def _crossed(self, push: Push, op: MarketOp) -> bool | None:
        """Did the SMS reach the partner before our FINISH was confirmed?"""
        records = self.bank.routed.get((op.id, push.text))
        if not records:
            return None
        confirmed = op.closed_at if op.closed_at is not None else push.at
        return any(record.sent_at <= confirmed for record in records)

    def progress(self) -> Progress:
        report = self.report
        latencies = {call: report.latencies.summary(call) for call in report.latencies.calls()}
        failures = {name: c.failures for name, c in report.checks.items() if c.failures}
        return Progress(
            elapsed=time.monotonic() - self._started,
            speed=report.speed,
            counts=dict(report.counts),
            pending_pushes=self.pending_pushes(),
            earnings_rub=report.earnings_rub,
            latencies=latencies,
            failures=failures,
            ending=self.ending,
        )


def reconcile(market: MarketplaceSimulator, bank: SimBank, report: Report) -> None:
    """Hold what the bank delivered against what the marketplace received.

    Timing is judged conservatively from the two sides' own clocks: an operation was surely
    open on the server if it was issued before the SMS was sent and not finished before the
    intake answered; it may have been open if the two intervals overlap at all.
    """
    routed = report.check("sms_routed_to_open_operation")
    exactly = report.check("sms_pushed_exactly_once")
    intact = report.check("sms_text_intact")
    deliveries: dict[tuple[int, str], list[Push]] = {}
    for push in market.ledger.pushes:
        if push.op_id is not None and push.answer != "RETRY":
            deliveries.setdefault((push.op_id, push.text), []).append(push)
    grace = market.config.crossed_grace
    for record in bank.records:
        if record.resend_of is not None or not record.stored or record.answered_at is None:
            continue
        ops = market.ledger.history.get(record.phone, [])
        surely = [op for op in ops if _surely_open(op, record)]
        maybe = [op for op in ops if _maybe_open(op, record)]
        if record.operation_id is None:
            if surely:
                routed.fail(f"SMS {record.serial} to {record.phone} unrouted while {surely[0].id} was open")
            else:
                routed.ok()
            continue
        op = market.ledger.ops.get(record.operation_id)
        if op is None or op.phone != record.phone:
            routed.fail(
                f"SMS {record.serial} to {record.phone} routed to {record.operation_id}, "
                "not an operation on that number"
            )
            continue
        if op not in maybe or (surely and surely[0] is not op):
            routed.fail(f"SMS {record.serial} to {record.phone} routed to {op.id}, which was not open then")
        else:
            routed.ok()
        count = len(deliveries.get((op.id, record.text), []))
        finished = op.finish_sent_at
        due = op in surely and (finished is None or finished - record.answered_at > grace)
        if count > 1:
            exactly.fail(f"SMS {record.serial} for {op.id} pushed {count} times: {record.text[:40]!r}")
        elif count == 0 and due:
            exactly.fail(f"SMS {record.serial} for {op.id} accepted but never pushed: {record.text[:40]!r}")
        else:
            exactly.ok()
    for push in market.ledger.pushes:
        if push.op_id is None or push.answer == "RETRY":
            continue
        if (push.op_id, push.text) in bank.routed:
            intact.ok()
            continue
        near = _closest(bank.records, push)
        if near is not None:
            intact.fail(f"push for {push.op_id}: sent {near.text[:50]!r}, pushed {push.text[:50]!r}")
        else:
            intact.fail(f"push for {push.op_id} of an SMS the bank never routed there: {push.text[:50]!r}")


def _surely_open(op: MarketOp, record: SmsRecord) -> bool:
    assert record.answered_at is not None
    return op.issued_at <= record.sent_at and (
        op.finish_sent_at is None or op.finish_sent_at >= record.answered_at
    )


def _maybe_open(op: MarketOp, record: SmsRecord) -> bool:
    assert record.answered_at is not None
    return op.requested_at <= record.answered_at and (op.closed_at is None or op.closed_at >= record.sent_at)


def _closest(records: Sequence[SmsRecord], push: Push) -> SmsRecord | None:
    """The SMS to the same number whose text shares the longest prefix with the push."""
    best: SmsRecord | None = None
    best_score = 0
    for record in records:
        if record.phone != push.phone:
            continue
        score = 0
        for a, b in zip(record.text, push.text, strict=False):
            if a != b:
                break
            score += 1
        if score > best_score:
            best, best_score = record, score
    return best if best_score >= 3 else None


def summary(progress: Progress) -> dict[str, Any]:
    """A flat dict of the live figures (for logs when the terminal is not interactive)."""
    counts = progress.counts
    return {
        "t": round(progress.elapsed, 1),
        "ops": counts.get("activation.opened", 0) + counts.get("rent.opened", 0),
        "open": counts.get("activation.open", 0) + counts.get("rent.open", 0),
        "sms": counts.get("sms.sent", 0),
        "pushed": counts.get("push.success", 0),
        "pending": progress.pending_pushes,
        "rub": round(progress.earnings_rub, 2),
        "failures": sum(progress.failures.values()),
    }
