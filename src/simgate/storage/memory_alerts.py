"""In-memory alert repository, held to the same contract tests as SQL."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from simgate.domain.alerts import CLAIM_LEASE_SECONDS, Event, Notice, OpenAlert
from simgate.domain.read_model import Page
from simgate.domain.types import Timestamp


@dataclass(frozen=True, slots=True)
class StoredAlert:
    rule: str
    text: str
    fired_at: Timestamp
    resolved_at: Timestamp | None = None


@dataclass
class AlertState:
    alerts: dict[str, StoredAlert] = field(default_factory=dict)
    notices: dict[int, Notice] = field(default_factory=dict)
    calls: dict[str, Timestamp] = field(default_factory=dict)
    last_id: int = 0

    def copy(self) -> AlertState:
        return AlertState(dict(self.alerts), dict(self.notices), dict(self.calls), self.last_id)


class MemoryAlerts:
    def __init__(self, state: AlertState) -> None:
        self.s = state

    def _open(self) -> list[OpenAlert]:
        return [
            OpenAlert(key, a.rule, a.text, a.fired_at)
            for key, a in self.s.alerts.items()
            if a.resolved_at is None
        ]

    def open_alerts(self) -> dict[str, str]:
        return {a.key: a.rule for a in self._open()}

    def firing(self, limit: int) -> Page[OpenAlert]:
        found = sorted(self._open(), key=lambda a: (-a.since, a.key))
        return Page(found[:limit], len(found))

    def fire(self, key: str, rule: str, text: str, now: Timestamp) -> bool:
        current = self.s.alerts.get(key)
        if current is not None and current.resolved_at is None:
            return False
        self.s.alerts[key[:200]] = StoredAlert(rule, text[:500], now)
        return True

    def resolve(self, key: str, now: Timestamp) -> bool:
        current = self.s.alerts.get(key)
        if current is None or current.resolved_at is not None:
            return False
        self.s.alerts[key] = replace(current, resolved_at=now)
        return True

    def announce_open(self, channel: str, now: Timestamp) -> list[OpenAlert]:
        queued: list[OpenAlert] = []
        for alert in sorted(self._open(), key=lambda a: (a.since, a.key)):
            announced = any(
                n.key == alert.key
                and n.channel == channel
                and n.event == "firing"
                and n.created_at >= alert.since
                for n in self.s.notices.values()
            )
            if not announced:
                self.add_notice(alert.key, alert.rule, "firing", channel, alert.text, now)
                queued.append(alert)
        return queued

    def add_notice(self, key: str, rule: str, event: Event, channel: str, text: str, now: Timestamp) -> int:
        self.s.last_id += 1
        self.s.notices[self.s.last_id] = Notice(self.s.last_id, key, rule, event, channel, text[:500], now)
        return self.s.last_id

    def unsent(self, limit: int, max_attempts: int) -> list[Notice]:
        found = [n for _, n in sorted(self.s.notices.items()) if n.sent_at is None]
        return [n for n in found if n.attempts < max_attempts][:limit]

    def claim(self, notice_id: int, attempts: int, now: Timestamp) -> bool:
        notice = self.s.notices.get(notice_id)
        if notice is None or notice.sent_at is not None or notice.attempts != attempts:
            return False
        if notice.claimed_at is not None and notice.claimed_at > now - CLAIM_LEASE_SECONDS:
            return False  # another instance is sending it
        self.s.notices[notice_id] = replace(notice, attempts=attempts + 1, claimed_at=now)
        return True

    def record_send(self, notice_id: int, now: Timestamp, error: str | None) -> None:
        notice = self.s.notices.get(notice_id)
        if notice is None or notice.sent_at is not None:
            return
        self.s.notices[notice_id] = replace(
            notice,
            sent_at=now if error is None else None,
            last_error=None if error is None else error[:500],
            claimed_at=notice.claimed_at if error is None else None,
        )

    def recent(self, limit: int) -> list[Notice]:
        return [n for _, n in sorted(self.s.notices.items(), reverse=True)][:limit]

    def note_calls(self, calls: Mapping[str, Timestamp]) -> None:
        for marketplace, at in calls.items():
            if at > self.s.calls.get(marketplace, float("-inf")):
                self.s.calls[marketplace] = at

    def last_calls(self) -> dict[str, Timestamp]:
        return dict(self.s.calls)
