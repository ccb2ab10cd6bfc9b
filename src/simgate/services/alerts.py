"""Alert use cases: look at the farm, open and close alerts, queue one notice per channel.

The check and the notices it queues commit together, so an alert is announced exactly once
even if the process dies between deciding and sending (the notice waits in the table). What
the check looks at in the read model (the push backlog, the failing SIMs) is read before, off
the write path (`observe`): a figure a moment old only moves an alert to the next check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from simgate.domain.alerts import DATABASE_WRITES, AlertRules, Change, Observation, changes, conditions
from simgate.domain.read_model import STREAK_WINDOW, NumberQuery
from simgate.domain.types import Timestamp
from simgate.storage.ports import Reports, UnitOfWork

FAILING_SIMS_READ = 500
"""SIMs read per check: enough to name every failing SIM of a farm whose gateway is fine."""


class CallLog:
    """When each marketplace last called this process. Kept in memory (a write per poll
    would cost more than the poll); each check folds it into the table."""

    def __init__(self, clock: Callable[[], Timestamp]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: dict[str, Timestamp] = {}

    def saw(self, marketplace: str) -> None:
        with self._lock:
            self._seen[marketplace] = self._clock()

    def snapshot(self) -> dict[str, Timestamp]:
        with self._lock:
            return dict(self._seen)


def failing_sims(reports: Reports, rules: AlertRules, now: Timestamp) -> dict[str, int]:
    if not rules.sim_failures:
        return {}
    # The SIM table's "losing" filter finds the candidates with an index-friendly query;
    # sim_failures is at least its activation threshold, so no failing SIM is missed.
    query = NumberQuery(losing=True, streak_since=now - STREAK_WINDOW, limit=FAILING_SIMS_READ)
    return {
        r.number.phone: max(r.activation_no_sms_streak, r.rent_no_sms_streak)
        for r in reports.numbers(query).items
    }


def observe(reports: Reports, rules: AlertRules, seen: Observation) -> Observation:
    """`seen` with what the read model shows: the push backlog and the failing SIMs."""
    outbox = reports.outbox()
    return replace(
        seen,
        oldest_pending_at=outbox.oldest_pending_at,
        pending=outbox.pending,
        failing_sims=failing_sims(reports, rules, seen.now),
    )


def check_alerts(
    uow: UnitOfWork,
    rules: AlertRules,
    seen: Observation,
    calls: Mapping[str, Timestamp],
    channels: Sequence[str],
) -> list[Change]:
    """Open and close stored alerts from what `seen` (`observe`d) and the marketplaces' calls
    show; queue a notice per channel for each change. The database rule is not stored: while
    it holds, nothing can be written (the caller keeps that one in memory)."""
    uow.alerts.note_calls(calls)
    seen = replace(seen, marketplaces=uow.alerts.last_calls())
    present = [c for c in conditions(rules, seen) if c.rule != DATABASE_WRITES]
    done: list[Change] = []
    for change in changes(uow.alerts.open_alerts(), present):
        if change.event == "firing":
            applied = uow.alerts.fire(change.key, change.rule, change.text, seen.now)
        else:
            applied = uow.alerts.resolve(change.key, seen.now)
        if applied:
            for channel in channels:
                uow.alerts.add_notice(change.key, change.rule, change.event, channel, change.text, seen.now)
            done.append(change)
    # An alert that opened while no channel (or not this one) was set is announced now, once.
    late = {a.key: a for channel in channels for a in uow.alerts.announce_open(channel, seen.now)}
    done += [Change(a.key, a.rule, "firing", a.text) for a in late.values()]
    return done
