"""How the simulated marketplace closes an operation (spec 5.3; smshub-agent 5.3).

FINISH is resent when its answer is slow or lost, and now and then repeated on purpose
after it was confirmed, because the real marketplace does both: the partner must answer
SUCCESS every time. A confirmed FINISH also decides the number's future for its service:
a sale (3), or on the agent protocol a refusal (1), takes it out of that service; on the
agent protocol each cancellation (4) spends one of its four offers.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from typing import Any

from simgate.simulator.client import MarketClient
from simgate.simulator.findings import Report
from simgate.simulator.ledger import Ledger, MarketOp, OperationEvent
from simgate.simulator.market_config import MarketplaceConfig


class Finisher:
    def __init__(
        self,
        config: MarketplaceConfig,
        client: MarketClient,
        ledger: Ledger,
        report: Report,
        rng: random.Random,
        emit: Callable[[OperationEvent], None],
    ) -> None:
        self.config = config
        self.client = client
        self.ledger = ledger
        self.report = report
        self.rng = rng
        self.emit = emit
        """Tells the SIM bank the operation closed (no more SMS for it)."""

    async def finish(self, op: MarketOp, status: int, kopecks: int | None) -> None:
        """Close `op` with `status` (and, on Onlinesim, the sum) and record what follows."""
        rent = op.kind == "rent"
        calls = self.config.calls
        endpoint = (calls.finish_rent if rent else None) or calls.finish
        payload: dict[str, Any] = {
            "action": "FINISH_ACTIVATION",
            "activationId": op.id,
            "status": status,
            "key": self.config.key,
        }
        if kopecks is not None and self.config.protocol == "onlinesim":
            payload["sum"] = kopecks / 100  # the agent protocol's FINISH carries no amount
        if rent:
            payload["service"] = "RENT" if self.rng.random() < 0.2 else "rent"
        self.ledger.record_finish_sent(op, time.monotonic())
        self.emit(OperationEvent("closed", op.id, op.phone, op.kind, op.canonical))
        confirmed = await self._send(op, endpoint, payload)
        op.closed_at = time.monotonic()
        op.status = status
        op.confirmed = confirmed
        counts = self.report.counts
        counts[f"{op.kind}.open"] -= 1
        counts[f"{op.kind}.finished.{status}"] += 1
        if status == 3 and confirmed:
            self.report.earnings_kopecks += op.rent_total_kopecks if rent else op.offered_kopecks
        if confirmed and op.service is not None:
            self._withdraw(op, status, op.closed_at)
        if confirmed and self.rng.random() < self.config.p_finish_repeat:
            # Onlinesim resends FINISH; the partner must answer SUCCESS again (spec 5.3).
            counts["finish.repeated"] += 1
            again = await self.client.call(endpoint, payload)
            check = self.report.check("finish_answered_success")
            if again.error is None and again.status == 200 and again.word == "SUCCESS":
                check.ok()
            elif again.error != "timeout":
                detail = again.error or f"HTTP {again.status} {str(again.body)[:100]}"
                check.fail(f"repeated FINISH {op.id}: {detail}")

    def _withdraw(self, op: MarketOp, status: int, at: float) -> None:
        """What a confirmed FINISH takes out of the number's future for that service."""
        assert op.service is not None
        agent = self.config.protocol == "agent"
        if status == 3 or (status == 1 and agent):
            self.ledger.sold[(op.phone, op.service)] = at
        elif status == 4 and agent:
            self.ledger.cancels.setdefault((op.phone, op.service), []).append(at)

    async def _send(self, op: MarketOp, endpoint: str, payload: dict[str, Any]) -> bool:
        """Send FINISH until it is confirmed (resent after a slow, lost or refused answer)."""
        check = self.report.check("finish_answered_success")
        lost = self.rng.random() < self.config.p_finish_lost
        for attempt in range(self.config.max_finish_attempts):
            self.report.counts["finish.sent"] += 1
            cut = lost and attempt == 0
            result = await self.client.call(endpoint, payload, limit=0.002 if cut else None, measure=not cut)
            if cut and result.error == "timeout":
                self.report.counts["finish.resent"] += 1
                continue
            if result.error is None and result.status == 200 and result.word == "SUCCESS":
                check.ok()
                return True
            if result.error == "timeout":
                self.report.counts["finish.resent"] += 1
            else:
                detail = result.error or f"HTTP {result.status} {str(result.body)[:100]}"
                check.fail(f"FINISH {op.id} status {payload['status']}: {detail}")
            await asyncio.sleep(max(0.05, self.config.finish_retry / self.config.speed))
        check.fail(f"FINISH {op.id}: not confirmed after {self.config.max_finish_attempts} attempts")
        return False
