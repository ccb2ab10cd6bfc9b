"""SQL alert repository (both dialects, `?` placeholders)."""

from __future__ import annotations

from collections.abc import Mapping

from simgate.domain.alerts import CLAIM_LEASE_SECONDS, Event, Notice, OpenAlert
from simgate.domain.read_model import Page
from simgate.domain.types import Timestamp
from simgate.storage.sql_base import Connection, Row

NOTICE_COLUMNS = "id, key, rule, event, channel, text, created_at, attempts, sent_at, last_error, claimed_at"


def _notice(row: Row) -> Notice:
    return Notice(
        id=int(row[0]), key=row[1], rule=row[2], event=row[3], channel=row[4], text=row[5],
        created_at=float(row[6]), attempts=int(row[7]),
        sent_at=None if row[8] is None else float(row[8]), last_error=row[9],
        claimed_at=None if row[10] is None else float(row[10]),
    )  # fmt: skip


class SqlAlerts:
    def __init__(self, db: Connection) -> None:
        self.db = db

    def open_alerts(self) -> dict[str, str]:
        rows = self.db.execute("SELECT key, rule FROM alerts WHERE resolved_at IS NULL").fetchall()
        return {row[0]: row[1] for row in rows}

    def fire(self, key: str, rule: str, text: str, now: Timestamp) -> bool:
        # A resolved row is reopened in place; an open one is left alone (one change, one
        # notice, even with two instances checking at the same moment).
        reopened = self.db.execute(
            "UPDATE alerts SET rule = ?, text = ?, fired_at = ?, resolved_at = NULL"
            " WHERE key = ? AND resolved_at IS NOT NULL",
            (rule, text[:500], now, key[:200]),
        ).rowcount
        if reopened:
            return True
        inserted = self.db.execute(
            "INSERT INTO alerts (key, rule, text, fired_at) VALUES (?, ?, ?, ?) ON CONFLICT (key) DO NOTHING",
            (key[:200], rule, text[:500], now),
        ).rowcount
        return inserted == 1

    def resolve(self, key: str, now: Timestamp) -> bool:
        changed = self.db.execute(
            "UPDATE alerts SET resolved_at = ? WHERE key = ? AND resolved_at IS NULL", (now, key[:200])
        ).rowcount
        return changed == 1

    def announce_open(self, channel: str, now: Timestamp) -> list[OpenAlert]:
        queued: list[OpenAlert] = []
        for alert in self._unannounced(channel):
            # Lock the alert's row (PostgreSQL) before looking again, so a second instance
            # doing the same waits here and then sees the first one's notice.
            self.db.execute("UPDATE alerts SET rule = rule WHERE key = ?", (alert.key,))
            if any(a.key == alert.key for a in self._unannounced(channel, alert.key)):
                self.add_notice(alert.key, alert.rule, "firing", channel, alert.text, now)
                queued.append(alert)
        return queued

    def _unannounced(self, channel: str, key: str | None = None) -> list[OpenAlert]:
        one = "" if key is None else " AND a.key = ?"
        rows = self.db.execute(
            "SELECT a.key, a.rule, a.text, a.fired_at FROM alerts a"
            f" WHERE a.resolved_at IS NULL{one} AND NOT EXISTS ("
            "  SELECT 1 FROM alert_notices n WHERE n.key = a.key AND n.channel = ?"
            "  AND n.event = 'firing' AND n.created_at >= a.fired_at)"
            " ORDER BY a.fired_at, a.key",
            (channel,) if key is None else (key, channel),
        ).fetchall()
        return [OpenAlert(row[0], row[1], row[2], float(row[3])) for row in rows]

    def firing(self, limit: int) -> Page[OpenAlert]:
        rows = self.db.execute(
            "SELECT key, rule, text, fired_at FROM alerts WHERE resolved_at IS NULL"
            " ORDER BY fired_at DESC, key LIMIT ?",
            (limit,),
        ).fetchall()
        total = self.db.execute("SELECT COUNT(*) FROM alerts WHERE resolved_at IS NULL").fetchone()
        items = [OpenAlert(row[0], row[1], row[2], float(row[3])) for row in rows]
        return Page(items, int(total[0]) if total else 0)

    def add_notice(self, key: str, rule: str, event: Event, channel: str, text: str, now: Timestamp) -> int:
        row = self.db.execute(
            "INSERT INTO alert_notices (key, rule, event, channel, text, created_at, attempts)"
            " VALUES (?, ?, ?, ?, ?, ?, 0) RETURNING id",
            (key[:200], rule, event, channel, text[:500], now),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def unsent(self, limit: int, max_attempts: int) -> list[Notice]:
        rows = self.db.execute(
            f"SELECT {NOTICE_COLUMNS} FROM alert_notices WHERE sent_at IS NULL AND attempts < ?"
            " ORDER BY id LIMIT ?",
            (max_attempts, limit),
        ).fetchall()
        return [_notice(row) for row in rows]

    def claim(self, notice_id: int, attempts: int, now: Timestamp) -> bool:
        changed = self.db.execute(
            "UPDATE alert_notices SET attempts = attempts + 1, claimed_at = ?"
            " WHERE id = ? AND attempts = ? AND sent_at IS NULL"
            " AND (claimed_at IS NULL OR claimed_at <= ?)",
            (now, notice_id, attempts, now - CLAIM_LEASE_SECONDS),
        ).rowcount
        return changed == 1

    def record_send(self, notice_id: int, now: Timestamp, error: str | None) -> None:
        if error is None:
            self.db.execute(
                "UPDATE alert_notices SET sent_at = ?, last_error = NULL WHERE id = ? AND sent_at IS NULL",
                (now, notice_id),
            )
        else:
            self.db.execute(
                "UPDATE alert_notices SET last_error = ?, claimed_at = NULL WHERE id = ? AND sent_at IS NULL",
                (error[:500], notice_id),
            )

    def recent(self, limit: int) -> list[Notice]:
        rows = self.db.execute(
            f"SELECT {NOTICE_COLUMNS} FROM alert_notices ORDER BY id DESC LIMIT ?", (limit,)
        ).fetchall()
        return [_notice(row) for row in rows]

    def note_calls(self, calls: Mapping[str, Timestamp]) -> None:
        for marketplace, at in sorted(calls.items()):
            self.db.execute(
                "INSERT INTO marketplace_calls (marketplace, last_call_at) VALUES (?, ?)"
                " ON CONFLICT (marketplace) DO UPDATE SET last_call_at = excluded.last_call_at"
                " WHERE marketplace_calls.last_call_at < excluded.last_call_at",
                (marketplace[:64], at),
            )

    def last_calls(self) -> dict[str, Timestamp]:
        rows = self.db.execute("SELECT marketplace, last_call_at FROM marketplace_calls").fetchall()
        return {row[0]: float(row[1]) for row in rows}
