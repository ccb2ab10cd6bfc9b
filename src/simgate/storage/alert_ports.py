"""The alert repository: which alerts are open, the notices still to send, and when each
marketplace last called. Kept apart from ports.py so the alert feature stays in its own files."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from simgate.domain.alerts import Event, Notice, OpenAlert
from simgate.domain.types import Timestamp


class AlertRepository(Protocol):
    def open_alerts(self) -> dict[str, str]:
        """Key -> rule of every alert that fired and has not resolved."""
        ...

    def fire(self, key: str, rule: str, text: str, now: Timestamp) -> bool:
        """Open the alert; False (and nothing changed) when it is open already, so two
        instances checking at once announce it once."""
        ...

    def resolve(self, key: str, now: Timestamp) -> bool:
        """Close an open alert; False when it was not open."""
        ...

    def add_notice(
        self, key: str, rule: str, event: Event, channel: str, text: str, now: Timestamp
    ) -> int: ...

    def announce_open(self, channel: str, now: Timestamp) -> list[OpenAlert]:
        """Queue a firing notice on `channel` for every open alert that has none since it
        fired (it opened while no channel, or not this one, was set), and return those. Of
        two instances doing it at once, one queues each (the alert's row is locked first)."""
        ...

    def unsent(self, limit: int, max_attempts: int) -> list[Notice]:
        """Notices their channel has not accepted yet and tried fewer than max_attempts
        times, oldest first."""
        ...

    def claim(self, notice_id: int, attempts: int, now: Timestamp) -> bool:
        """Count one more attempt and stamp the claim, only if the notice is unsent, still at
        `attempts` and not claimed within CLAIM_LEASE_SECONDS: of two instances about to send
        it, one wins and the other skips it, also one that read it after the first claimed it."""
        ...

    def record_send(self, notice_id: int, now: Timestamp, error: str | None) -> None:
        """The claimed attempt's result: sent when error is None, else kept (and its claim
        cleared) for a later check."""
        ...

    def recent(self, limit: int) -> list[Notice]:
        """The latest notices, newest first (for the operator)."""
        ...

    def note_calls(self, calls: Mapping[str, Timestamp]) -> None:
        """Remember each marketplace's latest call, never moving one back in time (several
        instances each report what they saw)."""
        ...

    def last_calls(self) -> dict[str, Timestamp]: ...
