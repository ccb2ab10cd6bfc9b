"""What a simulated marketplace knows about its partner: the ledger.

The numbers it was issued and when, when it sent each FINISH and when the answer came, the
pushes it received and how it answered them, its GET_SERVICES answers. The buyer writes it;
the checks and the push receiver read it; a run over several marketplaces holds their
ledgers side by side to judge what no single marketplace can see (one SIM sold twice).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Protocol

import msgspec

Kind = Literal["activation", "rent"]
Counts = dict[tuple[str, str, str], int]
"""A GET_SERVICES answer: (country, operator, service-or-'rent') -> count."""


def country_totals(counts: Counts) -> dict[tuple[str, str], int]:
    """(country, service) -> how many the answer offers in all: `any` where it is given
    (Onlinesim: the total over operators), else the sum over the named operators (the agent
    protocol names operators or says `any`, never both)."""
    named: Counter[tuple[str, str]] = Counter()
    given: dict[tuple[str, str], int] = {}
    for (country, operator, service), count in counts.items():
        if operator == "any":
            given[(country, service)] = count
        else:
            named[(country, service)] += max(count, 0)
    return {**named, **given}


class OperationEvent(msgspec.Struct, frozen=True):
    """What the SIM bank learns about an operation (in process, or POSTed to its control port)."""

    event: Literal["opened", "closed"]
    id: int
    phone: str
    kind: str
    service: str | None = None
    rent_seconds: float | None = None
    """Real seconds the rent is planned to last (SMS should come before it ends)."""


class OperationListener(Protocol):
    def operation_event(self, event: OperationEvent) -> None: ...


@dataclass
class Push:
    at: float
    rent_path: bool
    op_id: int | None
    sms_id: object
    phone: str
    sender: str
    text: str
    answer: str
    """What we answered: a final word (SUCCESS, ...) or RETRY (refused so it comes again)."""


@dataclass
class MarketOp:
    id: int
    kind: Kind
    country: str
    operator: str
    service: str | None
    """As the marketplace names it (None for a rent)."""
    phone: str
    offered_kopecks: int
    requested_at: float
    issued_at: float
    canonical: str | None = None
    """simgate's name of `service`: what the SIM bank writes SMS for."""
    rent_total_kopecks: int = 0
    finish_sent_at: float | None = None
    closed_at: float | None = None
    status: int | None = None
    confirmed: bool = False
    """The partner answered SUCCESS to our FINISH (so its outcome surely took effect)."""
    code_at: float | None = None
    code_event: asyncio.Event = field(default_factory=asyncio.Event)
    pushes: int = 0

    @property
    def held(self) -> bool:
        """Issued and not yet finished by us: the partner must treat the number as busy."""
        return self.finish_sent_at is None


@dataclass
class Snapshot:
    """One GET_SERVICES answer: counts keyed (country, operator, service-or-'rent')."""

    started: float
    answered: float
    counts: Counts
    consumed_at_start: Counter[str]


@dataclass(slots=True)
class OrderRecord:
    """One GET_NUMBER as sent: its stock may be gone from the moment it is sent."""

    country: str
    requested_at: float
    answered_at: float | None = None


MAX_RECORDS = 50_000
"""Polls and orders kept for the checks across marketplaces (a long demo keeps its last)."""


@dataclass
class Ledger:
    """The marketplace's own records, in its own names."""

    ops: dict[int, MarketOp] = field(default_factory=dict)
    held: dict[str, MarketOp] = field(default_factory=dict)
    """Phone -> the operation we hold on it (issued, no FINISH sent yet)."""
    history: dict[str, list[MarketOp]] = field(default_factory=dict)
    pushes: list[Push] = field(default_factory=list)
    final_answers: dict[tuple[object, str], str] = field(default_factory=dict)
    """(operation id, or phone when unknown; text) -> the first final answer to that push."""
    sold: dict[tuple[str, str], float] = field(default_factory=dict)
    """(phone, service in the marketplace's name) -> when a FINISH that removes the number
    from that service everywhere was confirmed: a sale (3), or on the agent protocol a
    refusal (1)."""
    cancels: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    """Agent protocol: when each status-4 FINISH of (phone, service) was confirmed."""
    acknowledged: set[object] = field(default_factory=set)
    """Agent protocol: the smsIds we answered SUCCESS (never to be pushed again)."""
    sms_ids: dict[object, tuple[object, str]] = field(default_factory=dict)
    """Agent protocol: smsId -> the SMS it first came with (operation or phone, text)."""
    first_sms_id: dict[tuple[object, str], object] = field(default_factory=dict)
    """Agent protocol: (operation or phone, text) -> the smsId it first came with."""
    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    """The latest GET_SERVICES answer per endpoint."""
    polls: list[Snapshot] = field(default_factory=list)
    """Every activation GET_SERVICES answer, oldest first (up to MAX_RECORDS)."""
    orders: list[OrderRecord] = field(default_factory=list)
    """Every GET_NUMBER sent, oldest first (up to MAX_RECORDS)."""
    consumed: Counter[str] = field(default_factory=Counter)
    """GET_NUMBER calls per country that may have taken a number (success, error, timeout)."""
    inflight: Counter[str] = field(default_factory=Counter)
    unknown_outcomes: int = 0
    """Orders whose answer we could not read: the partner's state is not fully known."""

    def record_poll(self, snapshot: Snapshot) -> None:
        if len(self.polls) < MAX_RECORDS:
            self.polls.append(snapshot)

    def record_order(self, country: str, at: float) -> OrderRecord:
        record = OrderRecord(country, at)
        if len(self.orders) < MAX_RECORDS:
            self.orders.append(record)
        return record

    def record_issue(self, op: MarketOp) -> None:
        self.ops[op.id] = op
        self.held[op.phone] = op
        self.history.setdefault(op.phone, []).append(op)

    def record_finish_sent(self, op: MarketOp, at: float) -> None:
        op.finish_sent_at = at
        if self.held.get(op.phone) is op:
            del self.held[op.phone]

    def last_on(self, phone: str) -> MarketOp | None:
        """The operation on `phone` we hold, else the last one we had."""
        held = self.held.get(phone)
        if held is not None:
            return held
        past = self.history.get(phone)
        return past[-1] if past else None

    def gone(self, phone: str, service: str, before: float, *, budget: int | None = None) -> bool:
        """Was `phone` out of `service` here by `before`: sold or refused, or (agent) cancelled
        `budget` times (status 4: "3 more times, that is only 4 times in total")."""
        when = self.sold.get((phone, service))
        if when is not None and when <= before:
            return True
        if budget is None:
            return False
        return sum(1 for at in self.cancels.get((phone, service), ()) if at <= before) >= budget
