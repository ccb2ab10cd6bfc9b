"""Console sessions (migration 0007): SQL for SQLite and PostgreSQL, and the in-memory fake.

Both are held to one contract (tests/edge/test_sessions.py). A session is an opaque id (a
hash the console computes) with an expiry; revoking deletes it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from simgate.domain.types import Timestamp

if TYPE_CHECKING:
    from simgate.storage.sql_base import Connection


class SqlSessions:
    def __init__(self, db: Connection) -> None:
        self.db = db

    def add(self, session_id: str, now: Timestamp, expires_at: Timestamp) -> None:
        # Expired rows go when a new one comes: the table stays as small as the live sessions.
        self.db.execute("DELETE FROM console_sessions WHERE expires_at < ?", (now,))
        self.db.execute(
            "INSERT INTO console_sessions (id, created_at, expires_at) VALUES (?, ?, ?)",
            (session_id, now, expires_at),
        )

    def alive(self, session_id: str, now: Timestamp) -> bool:
        row = self.db.execute(
            "SELECT 1 FROM console_sessions WHERE id = ? AND expires_at >= ?", (session_id, now)
        ).fetchone()
        return row is not None

    def revoke(self, session_id: str) -> bool:
        return self.db.execute("DELETE FROM console_sessions WHERE id = ?", (session_id,)).rowcount > 0

    def revoke_all(self) -> int:
        return self.db.execute("DELETE FROM console_sessions").rowcount


@dataclass
class SessionState:
    expiries: dict[str, Timestamp] = field(default_factory=dict)

    def copy(self) -> SessionState:
        return SessionState(dict(self.expiries))


class MemorySessions:
    def __init__(self, state: SessionState) -> None:
        self.s = state

    def add(self, session_id: str, now: Timestamp, expires_at: Timestamp) -> None:
        self.s.expiries = {k: v for k, v in self.s.expiries.items() if v >= now}
        self.s.expiries[session_id] = expires_at

    def alive(self, session_id: str, now: Timestamp) -> bool:
        return self.s.expiries.get(session_id, -1.0) >= now

    def revoke(self, session_id: str) -> bool:
        return self.s.expiries.pop(session_id, None) is not None

    def revoke_all(self) -> int:
        count = len(self.s.expiries)
        self.s.expiries.clear()
        return count
