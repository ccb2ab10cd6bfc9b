"""What the SIM bank sent, held against what the marketplaces received.

Alone, a marketplace sees pushes and the bank sees intake answers. Together they can say
whether every SMS that reached an open operation was pushed exactly once, with its text
intact, and whether the server routed each SMS to the operation that was open at the time.

Timing is judged conservatively from the two sides' own clocks: an operation was surely
open on the server if it was issued before the SMS was sent and not finished before the
intake answered; it may have been open if the two intervals overlap at all.
"""

from __future__ import annotations

from collections.abc import Sequence

from simgate.simulator.findings import Report
from simgate.simulator.ledger import MarketOp, Push
from simgate.simulator.marketplace import MarketplaceSimulator
from simgate.simulator.simbank import SimBank, SmsRecord


class _Books:
    """The marketplaces' ledgers read as one (activation ids are the server's, unique)."""

    def __init__(self, markets: Sequence[MarketplaceSimulator]) -> None:
        self.history: dict[str, list[MarketOp]] = {}
        self.ops: dict[int, list[MarketOp]] = {}
        self.deliveries: dict[tuple[int, str], list[Push]] = {}
        for market in markets:
            ledger = market.ledger
            for phone, ops in ledger.history.items():
                self.history.setdefault(phone, []).extend(ops)
            for op in ledger.ops.values():
                self.ops.setdefault(op.id, []).append(op)
            for push in ledger.pushes:
                if push.op_id is not None and push.answer != "RETRY":
                    self.deliveries.setdefault((push.op_id, push.text), []).append(push)
        for ops in self.history.values():
            ops.sort(key=lambda op: op.issued_at)

    def op(self, operation_id: int, phone: str) -> MarketOp | None:
        return next((op for op in self.ops.get(operation_id, ()) if op.phone == phone), None)


def reconcile(markets: Sequence[MarketplaceSimulator], bank: SimBank, report: Report) -> None:
    routed = report.check("sms_routed_to_open_operation")
    exactly = report.check("sms_pushed_exactly_once")
    intact = report.check("sms_text_intact")
    books = _Books(markets)
    grace = max(market.config.crossed_grace for market in markets)
    for record in bank.records:
        if record.resend_of is not None or not record.stored or record.answered_at is None:
            continue
        ops = books.history.get(record.phone, [])
        surely = [op for op in ops if _surely_open(op, record)]
        maybe = [op for op in ops if _maybe_open(op, record)]
        if record.operation_id is None:
            if surely:
                routed.fail(f"SMS {record.serial} to {record.phone} unrouted while {surely[0].id} was open")
            else:
                routed.ok()
            continue
        op = books.op(record.operation_id, record.phone)
        if op is None:
            routed.fail(
                f"SMS {record.serial} to {record.phone} routed to {record.operation_id}, "
                "not an operation on that number"
            )
            continue
        if op not in maybe or (surely and surely[0] is not op):
            routed.fail(f"SMS {record.serial} to {record.phone} routed to {op.id}, which was not open then")
        else:
            routed.ok()
        count = len(books.deliveries.get((op.id, record.text), []))
        finished = op.finish_sent_at
        due = op in surely and (finished is None or finished - record.answered_at > grace)
        if count > 1:
            exactly.fail(f"SMS {record.serial} for {op.id} pushed {count} times: {record.text[:40]!r}")
        elif count == 0 and due:
            exactly.fail(f"SMS {record.serial} for {op.id} accepted but never pushed: {record.text[:40]!r}")
        else:
            exactly.ok()
    # The text check asks only "was this text sent to this number?": an intake answer lost to a
    # slow machine leaves the bank without the route, which the routing checks above judge.
    sent = {(record.phone, record.text) for record in bank.records}
    for market in markets:
        for push in market.ledger.pushes:
            if push.op_id is None or push.answer == "RETRY":
                continue
            if (push.op_id, push.text) in bank.routed or (push.phone, push.text) in sent:
                intact.ok()
                continue
            near = _closest(bank.records, push)
            if near is not None:
                intact.fail(f"push for {push.op_id}: sent {near.text[:50]!r}, pushed {push.text[:50]!r}")
            else:
                intact.fail(
                    f"push for {push.op_id} of an SMS the bank never routed there: {push.text[:50]!r}"
                )


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
