"""The admin API's JSON shapes: msgspec Structs, rendered from the report records.

The OpenAPI document (/api/openapi.json) is generated from these same Structs, so the
published schema cannot drift from what the endpoints send. Money is in kopecks (RUB
hundredths, integers: floats drift); times are seconds since the epoch, UTC.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from simgate.domain.alerts import DATABASE_WRITES, AlertRules, Observation, OpenAlert, conditions
from simgate.domain.messages import Attempt, Delivery, Message
from simgate.domain.read_model import (
    BLOCKED,
    SOLD,
    DayStats,
    DeliveryReport,
    GroupStats,
    MarketplaceStats,
    MessageReport,
    NumberReport,
    OperationReport,
    OutboxSummary,
    Page,
    StatusCount,
    TimelineEvent,
    success_rate,
)
from simgate.domain.types import Timestamp


class Error(msgspec.Struct):
    error: str


class NumberOut(msgspec.Struct, kw_only=True):
    id: int
    phone: str
    country: str
    operator: str
    port: str
    state: str
    """free, busy, offline or disabled."""
    rentable: bool
    enabled: bool
    """Sold only when both switches below are on."""
    file_enabled: bool = True
    """The CSV's `enabled` column (every import rewrites it)."""
    operator_enabled: bool = True
    """The operator's switch (Enable/Disable here, `simgate numbers disable`); imports keep it."""
    online: bool
    open_operation_id: int | None
    last_issued_at: float | None
    last_sms_at: float | None
    sms: int
    operations: int
    finished: int
    sold: int
    earnings_kopecks: int
    """Sales paid in RUB only (a sale in another currency is never added as roubles; see the
    overview's by_marketplace)."""
    success_rate: float | None
    """sold / finished; null before the first FINISH."""
    blocked_services: list[str]
    """The operator's blacklist: never offered for these activations (rent ignores it)."""
    sold_services: list[str]
    """Sold for these services (FINISH status 3): never offered for them again."""
    rent_no_sms_streak: int
    activation_no_sms_streak: int
    losing: list[str]
    """Why this SIM loses money; empty when it does not."""
    lane: str | None = None
    """The marketplace that counts and issues this SIM while it is free (null: none may)."""
    lane_target: str | None = None
    """A pending move: the lane it joins once `lane`'s marketplace was answered without it."""
    marketplaces: list[str] = msgspec.field(default_factory=list)
    """The CSV's `marketplaces`: where it may be sold; empty means every enabled one."""
    open_operation_marketplace: str | None = None
    """The marketplace of its open operation."""


class NumberPage(msgspec.Struct, kw_only=True):
    items: list[NumberOut]
    total: int
    limit: int
    offset: int


class OperationOut(msgspec.Struct, kw_only=True):
    id: int
    marketplace: str
    kind: str
    number_id: int
    phone: str
    country: str
    operator: str
    service: str | None
    """null for rent: a rent receives every sender."""
    state: str
    """open or finished."""
    status: str
    """open, sold, cancelled, refunded, not_taken or other."""
    finish_status: int | None
    offered_kopecks: int | None
    final_kopecks: int | None
    earned_kopecks: int
    opened_at: float
    finished_at: float | None
    sms: int
    last_sms_at: float | None
    finish_requests: int
    currency: str = "RUB"
    """What offered_kopecks, final_kopecks and earned_kopecks are hundredths of (the names
    keep kopecks from when only RUB was sold)."""


class OperationPage(msgspec.Struct, kw_only=True):
    items: list[OperationOut]
    total: int
    limit: int
    offset: int


class AttemptOut(msgspec.Struct, kw_only=True):
    number: int
    started_at: float
    latency_ms: float
    http_status: int | None
    response: str | None
    error: str | None
    outcome: str
    """delivered, rejected or retry."""


class DeliveryOut(msgspec.Struct, kw_only=True):
    id: int
    message_id: int
    operation_id: int
    marketplace: str
    state: str
    """pending, delivered, rejected or given_up."""
    attempt_count: int
    next_attempt_at: float
    created_at: float
    finished_at: float | None
    reason: str | None
    age_seconds: float | None
    """For a pending push: how long it has waited since it was queued (or retried)."""
    retryable: bool
    kind: str | None = None
    service: str | None = None
    phone: str | None = None
    sender: str | None = None
    text: str | None = None
    claimed_by: str | None = None
    attempts: list[AttemptOut] = msgspec.field(default_factory=list)


class DeliveryPage(msgspec.Struct, kw_only=True):
    items: list[DeliveryOut]
    total: int
    limit: int
    offset: int


class MessageOut(msgspec.Struct, kw_only=True):
    id: int
    source: str
    message_key: str | None
    phone: str
    number_id: int
    sender: str
    text: str
    received_at: float | None
    stored_at: float
    operation_id: int | None
    routed: bool
    routing: str
    """Where the SMS went: its operation, or why it went nowhere."""
    delivery: DeliveryOut | None
    attempts: list[AttemptOut]


class MessagePage(msgspec.Struct, kw_only=True):
    items: list[MessageOut]
    total: int
    limit: int
    offset: int


class TimelineOut(msgspec.Struct, kw_only=True):
    at: float
    kind: str
    """opened, sms, push or finished."""
    text: str
    message_id: int | None
    delivery_id: int | None


class OperationDetail(msgspec.Struct, kw_only=True):
    operation: OperationOut
    number: NumberOut | None
    messages: list[MessageOut]
    timeline: list[TimelineOut]


class OutboxOut(msgspec.Struct, kw_only=True):
    pending: int
    oldest_pending_age_seconds: float | None
    delivered: int
    rejected: int
    given_up: int
    failed: int
    """rejected + given_up: the pushes an operator may retry."""


class StatusCountOut(msgspec.Struct, kw_only=True):
    kind: str
    status: str
    count: int


class DayOut(msgspec.Struct, kw_only=True):
    start: float
    date: str
    """YYYY-MM-DD in the time zone asked for."""
    opened: int
    finished: int
    sold: int
    earnings_kopecks: int
    success_rate: float | None


class GroupOut(msgspec.Struct, kw_only=True):
    key: str
    opened: int
    finished: int
    sold: int
    earnings_kopecks: int
    success_rate: float | None


class StatsOut(msgspec.Struct, kw_only=True):
    since: float
    tz_offset_minutes: int
    days: list[DayOut]
    by_service: list[GroupOut]
    by_country: list[GroupOut]
    by_number: list[GroupOut]
    """The top earners."""
    totals: GroupOut
    outbox: OutboxOut


class NumberStatesOut(msgspec.Struct, kw_only=True):
    free: int
    busy: int
    offline: int
    disabled: int
    total: int


class MoneyOut(msgspec.Struct, kw_only=True):
    """Sales in one currency: amounts in hundredths of `currency`."""

    currency: str
    sold_today: int
    earnings_today: int
    sold_30d: int
    earnings_30d: int


class MarketplaceOut(msgspec.Struct, kw_only=True):
    """One marketplace on the overview; its money per currency (never added across them)."""

    marketplace: str
    free_sims: int
    """Free SIMs in its lane now (a leaving one still counts in its old lane)."""
    open: int
    """Operations open now."""
    opened_24h: int
    money: list[MoneyOut]


class AlertOut(msgspec.Struct, kw_only=True):
    key: str
    rule: str
    text: str
    since: float | None
    """When it fired; None for the database's write failure (held in memory, not stored)."""


class OverviewOut(msgspec.Struct, kw_only=True):
    now: float
    numbers: NumberStatesOut
    operations_24h: dict[str, int]
    """Operations opened in the last 24 hours, by status (every status present)."""
    operations_24h_by_kind: list[StatusCountOut]
    pushes: OutboxOut
    earnings_today_kopecks: int
    sold_today: int
    earnings_30d: list[DayOut]
    losing_total: int
    losing: list[NumberOut]
    """The first SIMs that lose money, to disable in one click."""
    by_marketplace: list[MarketplaceOut] = msgspec.field(default_factory=list)
    """Per marketplace, its money per currency; the kopeck figures above count RUB sales only."""
    alerts: list[AlertOut] = msgspec.field(default_factory=list)
    """Open alerts, newest first (at most ALERTS_SHOWN); a failing database first of all."""
    alerts_total: int = 0


class ServicesOut(msgspec.Struct, kw_only=True):
    services: list[str]
    """The service catalogue: the names a block accepts (the dashboard's block picker)."""


class NumberAction(msgspec.Struct, kw_only=True):
    number: NumberOut


class ReasonOut(msgspec.Struct, kw_only=True):
    rule: str
    """disabled, offline, busy, not_enabled, not_allowed, lane, leaving, resale, sold, group,
    refused, retries or blocked."""
    text: str
    until: float | None = None
    """When it stops binding by itself (a resale window), epoch seconds."""


class MarketplaceWhyOut(msgspec.Struct, kw_only=True):
    marketplace: str
    offered: bool
    reasons: list[ReasonOut]


class WhyOut(msgspec.Struct, kw_only=True):
    """`simgate numbers why`: each rule keeping the SIM from each marketplace, with its time."""

    number_id: int
    phone: str
    service: str | None
    marketplaces: list[MarketplaceWhyOut]


class DeliveryAction(msgspec.Struct, kw_only=True):
    delivery: DeliveryOut


class ServiceBody(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    service: str


class ClockSkewOut(msgspec.Struct, kw_only=True):
    source: str
    """The SMS source (goip:LINE, ejoin:DEVICE, android:DEVICE, modem:PHONE)."""
    offset_seconds: float
    """Its received_at minus simgate's clock on its last SMS: negative = behind."""
    at: float


class PortOut(msgspec.Struct, kw_only=True):
    """One SIM line as its driver last saw it; null where the hardware has not said."""

    port: str
    """The driver's name for the line: GoIP line ID, Ejoin port (1.01), modem device, SIM slot."""
    phone: str | None
    online: bool | None
    signal: int | None
    """As the device reports it: GoIP and AT modems 0-31 (99 unknown), Ejoin its own scale."""
    registration: str | None
    iccid: str | None
    imsi: str | None
    last_contact: float | None
    last_contact_age_seconds: float | None
    last_error: str | None
    """The line's last problem as the driver recorded it (kept until the driver replaces it)."""
    last_error_at: float | None
    failing: bool
    """The error is newer than the line's last good contact: needs the owner's attention."""


class DriverOut(msgspec.Struct, kw_only=True):
    name: str
    """goip, modem, http, or kind:device for Ejoin gateways and Android phones."""
    kind: str
    """goip, ejoin, android, modem or http (POST /intake/sms)."""
    reports_on_its_own: bool
    """True when the hardware speaks without an SMS (GoIP keep-alives, Ejoin status reports and
    polling, modem status checks): only then does silence mean trouble. An Android phone and
    POST /intake/sms speak only when an SMS arrives."""
    last_contact: float | None
    last_contact_age_seconds: float | None
    silent: bool
    """Reports on its own, yet said nothing for silent_after_seconds (or since simgate started)."""
    last_error: str | None
    last_error_at: float | None
    last_error_age_seconds: float | None
    recent_error: bool
    """The last error is younger than an hour."""
    received: int
    """New SMS stored since simgate started."""
    duplicates: int
    """Resends recognised and acknowledged again."""
    rejected: int
    """SMS that could not be stored (unknown number, bad content, ...)."""
    ports_total: int
    ports_online: int
    ports_with_errors: int
    ports: list[PortOut]
    clock_skew: list[ClockSkewOut] = msgspec.field(default_factory=list)
    """Sources whose clock was off by more than the routing grace (60 s) on their last SMS:
    their SMS may be routed by the wrong time (README, "Clock skew")."""


class UnwatchedOut(msgspec.Struct, kw_only=True):
    """A [hardware.*] table with no live status to show, and why."""

    name: str
    enabled: bool
    note: str


class MarketplaceHealthOut(msgspec.Struct, kw_only=True):
    """A marketplace's own health check (HeroSMS's ping): its last result."""

    marketplace: str
    check: str
    url: str
    every_seconds: float
    ok: bool | None
    """null: not checked yet."""
    at: float | None
    age_seconds: float | None
    latency_ms: float | None
    error: str | None
    failures: int
    """Failed checks in a row."""


class HardwareOut(msgspec.Struct, kw_only=True):
    now: float
    silent_after_seconds: float
    drivers: list[DriverOut]
    """Every running driver in settings-file order, then `http` (POST /intake/sms) while its
    token is set."""
    unwatched: list[UnwatchedOut]
    marketplaces: list[MarketplaceHealthOut] = msgspec.field(default_factory=list)
    """Enabled marketplaces that have a health check of their own."""


RESPONSES: tuple[type, ...] = (
    Error, NumberPage, NumberAction, OperationPage, OperationDetail, MessagePage, DeliveryPage,
    DeliveryAction, DeliveryOut, StatsOut, OverviewOut, ServiceBody, HardwareOut,
)  # fmt: skip


# -- rendering -----------------------------------------------------------------------------


def number_out(r: NumberReport) -> NumberOut:
    n = r.number
    return NumberOut(
        id=n.id, phone=n.phone, country=n.country, operator=n.operator, port=n.port,
        state=n.state, rentable=n.rentable, enabled=n.enabled, online=n.online,
        file_enabled=n.file_enabled, operator_enabled=n.operator_enabled,
        open_operation_id=n.open_operation_id, last_issued_at=n.last_issued_at or None,
        last_sms_at=r.last_sms_at, sms=r.sms, operations=r.operations, finished=r.finished,
        sold=r.sold, earnings_kopecks=r.earnings, success_rate=r.success_rate,
        # A service may be excluded both everywhere and on one marketplace: named once.
        blocked_services=list(dict.fromkeys(e.service for e in r.exclusions if e.reason == BLOCKED)),
        sold_services=list(dict.fromkeys(e.service for e in r.exclusions if e.reason == SOLD)),
        rent_no_sms_streak=r.rent_no_sms_streak,
        activation_no_sms_streak=r.activation_no_sms_streak, losing=list(r.loss_reasons),
        lane=n.lane, lane_target=n.lane_target, marketplaces=sorted(n.marketplaces),
        open_operation_marketplace=r.open_marketplace,
    )  # fmt: skip


def operation_out(r: OperationReport) -> OperationOut:
    o = r.operation
    return OperationOut(
        id=o.id, marketplace=o.marketplace, kind=o.kind.value, number_id=o.number_id,
        phone=o.phone, country=o.country, operator=o.operator, service=o.service,
        state="open" if o.is_open else "finished", status=r.status,
        finish_status=o.finish_status, offered_kopecks=o.offered, final_kopecks=o.final,
        earned_kopecks=r.earned, opened_at=o.opened_at, finished_at=o.finished_at, sms=r.sms,
        last_sms_at=r.last_sms_at, finish_requests=r.finish_requests, currency=o.currency,
    )  # fmt: skip


def attempts_out(attempts: Sequence[Attempt]) -> list[AttemptOut]:
    return [
        AttemptOut(
            number=i,
            started_at=a.started_at,
            latency_ms=a.latency_ms,
            http_status=a.http_status,
            response=a.response,
            error=a.error,
            outcome=a.verdict.value,
        )
        for i, a in enumerate(attempts, start=1)
    ]


def _delivery(d: Delivery, now: Timestamp, attempts: Sequence[Attempt]) -> DeliveryOut:
    return DeliveryOut(
        id=d.id, message_id=d.message_id, operation_id=d.operation_id, marketplace=d.marketplace,
        state=d.state.value, attempt_count=d.attempts, next_attempt_at=d.next_attempt_at,
        created_at=d.created_at, finished_at=d.finished_at, reason=d.reason,
        age_seconds=max(0.0, now - d.created_at) if d.state == "pending" else None,
        retryable=d.state in ("rejected", "given_up"), attempts=attempts_out(attempts),
    )  # fmt: skip


def delivery_out(r: DeliveryReport, now: Timestamp) -> DeliveryOut:
    out = _delivery(r.delivery, now, r.attempts)
    out.kind, out.service, out.claimed_by = r.kind.value, r.service, r.claimed_by
    out.phone, out.sender, out.text = r.message.phone, r.message.sender, r.message.text
    return out


def routing(m: Message) -> str:
    if m.operation_id is not None:
        return f"operation {m.operation_id}"
    return "no open operation on this number when it arrived (kept, not pushed)"


def message_out(r: MessageReport, now: Timestamp) -> MessageOut:
    m = r.message
    return MessageOut(
        id=m.id, source=m.source, message_key=m.message_key, phone=m.phone,
        number_id=m.number_id, sender=m.sender, text=m.text, received_at=m.received_at,
        stored_at=m.stored_at, operation_id=m.operation_id, routed=m.operation_id is not None,
        routing=routing(m),
        delivery=None if r.delivery is None else _delivery(r.delivery, now, ()),
        attempts=attempts_out(r.attempts),
    )  # fmt: skip


def timeline_out(events: Sequence[TimelineEvent]) -> list[TimelineOut]:
    return [
        TimelineOut(at=e.at, kind=e.kind, text=e.text, message_id=e.message_id, delivery_id=e.delivery_id)
        for e in events
    ]


def marketplaces_out(
    today: Sequence[MarketplaceStats], month: Sequence[MarketplaceStats], free: dict[str, int]
) -> list[MarketplaceOut]:
    """`today`: read with a 24-hour window; `month`: with 30 days; `free`: SIMs per lane."""
    names = sorted({m.marketplace for m in [*today, *month]} | (free.keys() - {"none"}))
    rows = []
    for name in names:
        day = [m for m in today if m.marketplace == name]
        money = {
            currency: MoneyOut(currency=currency, sold_today=0, earnings_today=0, sold_30d=0, earnings_30d=0)
            for currency in sorted({m.currency for m in [*day, *month] if m.marketplace == name})
        }
        for m in day:
            money[m.currency].sold_today += m.sold_today
            money[m.currency].earnings_today += m.earnings_today
        for m in month:
            if m.marketplace == name:
                money[m.currency].sold_30d += m.sold
                money[m.currency].earnings_30d += m.earnings
        rows.append(
            MarketplaceOut(
                marketplace=name,
                free_sims=free.get(name, 0),
                open=sum(m.open for m in day),
                opened_24h=sum(m.opened for m in day),
                money=[row for row in money.values() if row.sold_30d or row.sold_today],
            )
        )
    return rows


def outbox_out(s: OutboxSummary, now: Timestamp) -> OutboxOut:
    return OutboxOut(
        pending=s.pending, oldest_pending_age_seconds=s.oldest_age(now), delivered=s.delivered,
        rejected=s.rejected, given_up=s.given_up, failed=s.rejected + s.given_up,
    )  # fmt: skip


def day_out(d: DayStats, tz_offset_minutes: int) -> DayOut:
    local = datetime.fromtimestamp(d.start + tz_offset_minutes * 60, UTC)
    return DayOut(
        start=d.start, date=local.strftime("%Y-%m-%d"), opened=d.opened, finished=d.finished,
        sold=d.sold, earnings_kopecks=d.earnings, success_rate=success_rate(d.sold, d.finished),
    )  # fmt: skip


def group_out(g: GroupStats) -> GroupOut:
    return GroupOut(
        key=g.key, opened=g.opened, finished=g.finished, sold=g.sold,
        earnings_kopecks=g.earnings, success_rate=g.success_rate,
    )  # fmt: skip


def status_counts_out(counts: Sequence[StatusCount]) -> list[StatusCountOut]:
    return [StatusCountOut(kind=c.kind.value, status=c.status, count=c.count) for c in counts]


def alerts_out(page: Page[OpenAlert], write_error: str | None, now: Timestamp) -> tuple[list[AlertOut], int]:
    """The stored open alerts, and first the database's write failure if writes fail now
    (that alert cannot be stored while it holds: the store says it live)."""
    found = [AlertOut(key=a.key, rule=a.rule, text=a.text, since=a.since) for a in page.items]
    seen = Observation(now=now, write_error=write_error)
    live = [c for c in conditions(AlertRules(), seen) if c.rule == DATABASE_WRITES]
    return [
        AlertOut(key=c.key, rule=c.rule, text=c.text, since=None) for c in live
    ] + found, page.total + len(live)
