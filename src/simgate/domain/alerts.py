"""Alert rules: what is wrong right now, from one observation of the farm. Pure; time is passed in.

Each problem has a stable key ("gateway_silent:goip"): the alert fires when the key appears
and resolves when it disappears, so an owner gets two messages per incident, not one per check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal

from simgate.domain.types import Timestamp

Event = Literal["firing", "resolved"]

PENDING_PUSH = "push_pending"
GATEWAY_SILENT = "gateway_silent"
MARKETPLACE_SILENT = "marketplace_silent"
DATABASE_WRITES = "database_writes"
SIM_FAILING = "sim_failing"


@dataclass(frozen=True, slots=True)
class AlertRules:
    """Thresholds; a value of 0 turns its rule off. The database rule is always on: nothing
    is sold or stored while writes fail."""

    pending_push_minutes: float = 10.0
    gateway_silent_minutes: float = 15.0
    marketplace_silent_minutes: float = 30.0
    sim_failures: int = 3


@dataclass(frozen=True, slots=True)
class Observation:
    now: Timestamp
    oldest_pending_at: Timestamp | None = None
    pending: int = 0
    gateways: Mapping[str, Timestamp | None] = field(default_factory=dict)
    """Each configured driver's last contact (None: never since start)."""
    watching_since: Timestamp = 0.0
    """When this process started watching: a gateway that never spoke is silent from then."""
    marketplaces: Mapping[str, Timestamp] = field(default_factory=dict)
    """The last call of every marketplace that ever called."""
    write_error: str | None = None
    failing_sims: Mapping[str, int] = field(default_factory=dict)
    """Phone -> operations in a row that got no SMS (the longer of its two streaks)."""


@dataclass(frozen=True, slots=True)
class OpenAlert:
    """An alert that fired and has not resolved: what the dashboard lists."""

    key: str
    rule: str
    text: str
    since: Timestamp


@dataclass(frozen=True, slots=True)
class Condition:
    key: str
    rule: str
    text: str


def conditions(rules: AlertRules, seen: Observation) -> list[Condition]:
    """Every problem present in `seen`, keyed so one incident keeps one key."""
    found: list[Condition] = []
    if seen.write_error is not None:
        found.append(
            Condition(DATABASE_WRITES, DATABASE_WRITES, f"The database refuses writes: {seen.write_error}")
        )
    limit = rules.pending_push_minutes * 60
    if limit and seen.oldest_pending_at is not None and seen.now - seen.oldest_pending_at >= limit:
        minutes = _minutes(seen.now - seen.oldest_pending_at)
        found.append(
            Condition(
                PENDING_PUSH,
                PENDING_PUSH,
                f"{seen.pending} SMS push(es) pending, the oldest for {minutes} min",
            )
        )
    limit = rules.gateway_silent_minutes * 60
    for name, last in sorted(seen.gateways.items()) if limit else ():
        since = seen.watching_since if last is None else last
        if seen.now - since >= limit:
            found.append(
                Condition(
                    f"{GATEWAY_SILENT}:{name}",
                    GATEWAY_SILENT,
                    f"Gateway {name} silent for {_minutes(seen.now - since)} min",
                )
            )
    limit = rules.marketplace_silent_minutes * 60
    for name, last in sorted(seen.marketplaces.items()) if limit else ():
        if seen.now - last >= limit:
            found.append(
                Condition(
                    f"{MARKETPLACE_SILENT}:{name}",
                    MARKETPLACE_SILENT,
                    f"Marketplace {name} stopped polling {_minutes(seen.now - last)} min ago",
                )
            )
    for phone, streak in sorted(seen.failing_sims.items()) if rules.sim_failures else ():
        if streak >= rules.sim_failures:
            found.append(
                Condition(
                    f"{SIM_FAILING}:{phone}",
                    SIM_FAILING,
                    f"SIM {phone}: {streak} operations in a row got no SMS",
                )
            )
    return found


@dataclass(frozen=True, slots=True)
class Change:
    key: str
    rule: str
    event: Event
    text: str


def changes(open_alerts: Mapping[str, str], present: Iterable[Condition]) -> list[Change]:
    """What to announce: conditions not yet open fire; open alerts no longer present resolve.

    `open_alerts` maps each open alert's key to its rule. An alert still present stays silent,
    whatever its text says now: one message when it starts, one when it ends.
    """
    now_keys: dict[str, Condition] = {c.key: c for c in present}
    fired = [Change(c.key, c.rule, "firing", c.text) for k, c in now_keys.items() if k not in open_alerts]
    resolved = [
        Change(key, rule, "resolved", f"Resolved: {_describe(rule, key)}")
        for key, rule in sorted(open_alerts.items())
        if key not in now_keys
    ]
    return fired + resolved


def _describe(rule: str, key: str) -> str:
    subject = key.partition(":")[2]
    return {
        DATABASE_WRITES: "the database accepts writes again",
        PENDING_PUSH: "no SMS push is pending too long any more",
        GATEWAY_SILENT: f"gateway {subject} speaks again",
        MARKETPLACE_SILENT: f"marketplace {subject} polls again",
        SIM_FAILING: f"SIM {subject} got an SMS again (or its failures aged out)",
    }.get(rule, key)


def _minutes(seconds: float) -> int:
    return int(seconds // 60)


CLAIM_LEASE_SECONDS = 300.0
"""A notice claimed this long ago without a recorded result (its sender died mid-send) may be
claimed again; far above any send's timeout, so a live send is never doubled."""


@dataclass(frozen=True, slots=True)
class Notice:
    """One message to one channel, stored with the change that caused it and sent until a
    channel accepts it, so neither a restart nor a failed send re-sends or loses it."""

    id: int
    key: str
    rule: str
    event: Event
    channel: str
    text: str
    created_at: Timestamp
    attempts: int = 0
    sent_at: Timestamp | None = None
    last_error: str | None = None
    claimed_at: Timestamp | None = None
    """When an instance last claimed it to send; cleared when that send failed."""
