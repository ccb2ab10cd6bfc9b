"""SQL repositories for SMS, the outbox and push attempts (both dialects, `?` placeholders)."""

from __future__ import annotations

from collections.abc import Collection

from simgate.domain.messages import (
    Attempt,
    Delivery,
    DeliveryState,
    DueDelivery,
    IncomingMessage,
    Message,
    Verdict,
)
from simgate.domain.model import OperationKind
from simgate.domain.read_model import MessageQuery
from simgate.domain.types import NumberId, OperationId, PhoneNumber, Timestamp
from simgate.storage.sql_base import Connection, Row
from simgate.storage.sql_filters import FAILED, message_where

MESSAGE_COLUMNS = (
    "m.id, m.source, m.message_key, m.phone, m.number_id, m.sender, m.text, m.received_at,"
    " m.stored_at, m.operation_id"
)
DELIVERY_COLUMNS = (
    "d.id, d.message_id, d.operation_id, d.marketplace, d.state, d.attempts, d.next_attempt_at,"
    " d.created_at, d.finished_at, d.reason"
)


def _message(row: Row) -> Message:
    return Message(
        id=row[0], source=row[1], message_key=row[2], phone=PhoneNumber(row[3]),
        number_id=NumberId(row[4]), sender=row[5], text=row[6], received_at=row[7],
        stored_at=row[8], operation_id=None if row[9] is None else OperationId(row[9]),
    )  # fmt: skip


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row[0], message_id=row[1], operation_id=OperationId(row[2]), marketplace=row[3],
        state=DeliveryState(row[4]), attempts=row[5], next_attempt_at=row[6],
        created_at=row[7], finished_at=row[8], reason=row[9],
    )  # fmt: skip


class SqlMessages:
    def __init__(self, db: Connection) -> None:
        self.db = db

    def find(self, source: str, message_key: str) -> Message | None:
        row = self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.source = ? AND m.message_key = ?",
            (source, message_key),
        ).fetchone()
        return None if row is None else _message(row)

    def add(
        self,
        incoming: IncomingMessage,
        number_id: NumberId,
        operation_id: OperationId | None,
        now: Timestamp,
    ) -> Message | None:
        row = self.db.execute(
            "INSERT INTO messages (source, message_key, phone, number_id, sender, text,"
            " received_at, stored_at, operation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (source, message_key) DO NOTHING RETURNING id",
            (
                incoming.source, incoming.message_key, incoming.phone, number_id,
                incoming.sender, incoming.text, incoming.received_at, now, operation_id,
            ),
        ).fetchone()  # fmt: skip
        if row is None:
            return None
        return Message(
            id=row[0], source=incoming.source, message_key=incoming.message_key,
            phone=incoming.phone, number_id=number_id, sender=incoming.sender,
            text=incoming.text, received_at=incoming.received_at, stored_at=now,
            operation_id=operation_id,
        )  # fmt: skip

    def get(self, message_id: int) -> Message | None:
        row = self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages m WHERE m.id = ?", (message_id,)
        ).fetchone()
        return None if row is None else _message(row)

    def search(self, where: MessageQuery) -> list[tuple[Message, Delivery | None]]:
        found = message_where(where)
        rows = self.db.execute(
            f"SELECT {MESSAGE_COLUMNS}, {DELIVERY_COLUMNS} FROM messages m"
            f" LEFT JOIN deliveries d ON d.message_id = m.id WHERE {found.sql}"
            " ORDER BY m.id DESC LIMIT ? OFFSET ?",
            (*found.params, where.limit, where.offset),
        ).fetchall()
        return [(_message(r[:10]), None if r[10] is None else _delivery(r[10:])) for r in rows]


class SqlOutbox:
    def __init__(self, db: Connection, *, skip_locked: bool = False) -> None:
        self.db = db
        # PostgreSQL: concurrent workers pass over each other's candidate rows instead of
        # queueing on their locks. SQLite has one writer at a time and needs no such clause.
        self.lock_clause = " FOR UPDATE SKIP LOCKED" if skip_locked else ""
        # SQLite (the dialect without SKIP LOCKED) otherwise picks ix_deliveries_state and
        # sorts every pending row for each claim: with a backlog of 5,000 pushes a claim cost
        # ~2 ms of CPU, so the worker fell further behind the more SMS waited. The partial
        # index is already in due order (docs/benchmarks.md, issue 14).
        self.due_index = "" if skip_locked else " INDEXED BY ix_deliveries_due"

    def enqueue(self, message_id: int, operation_id: OperationId, marketplace: str, now: Timestamp) -> int:
        row = self.db.execute(
            "INSERT INTO deliveries (message_id, operation_id, marketplace, state, attempts,"
            " next_attempt_at, created_at) VALUES (?, ?, ?, 'pending', 0, ?, ?) RETURNING id",
            (message_id, operation_id, marketplace, now, now),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def claim_due(
        self, worker: str, now: Timestamp, lease: float, limit: int, skip: Collection[str] = ()
    ) -> list[DueDelivery]:
        # Conditional claim: only rows still unclaimed (or whose claimant's lease ran out)
        # change hands, so two workers can never both hold one delivery.
        # A CTE, not `WHERE id IN (SELECT … LIMIT n)`: PostgreSQL may re-run such a subquery
        # per row (a semi-join), ignoring the limit; a locking CTE is evaluated once.
        full = sorted(skip)
        skipped = f" AND marketplace NOT IN ({', '.join('?' for _ in full)})" if full else ""
        claimed = self.db.execute(
            f"WITH due AS (SELECT id FROM deliveries{self.due_index}"
            " WHERE state = 'pending' AND next_attempt_at <= ?"
            " AND (claimed_by IS NULL OR claim_expires_at < ?)"
            f"{skipped} ORDER BY next_attempt_at, id LIMIT ?{self.lock_clause})"
            " UPDATE deliveries SET claimed_by = ?, claim_expires_at = ? FROM due"
            " WHERE deliveries.id = due.id AND deliveries.state = 'pending'"
            " RETURNING deliveries.id",
            (now, now, *full, limit, worker, now + lease),
        ).fetchall()
        if not claimed:
            return []
        ids = [int(row[0]) for row in claimed]
        marks = ", ".join("?" for _ in ids)
        rows = self.db.execute(
            "SELECT d.id, d.attempts, d.created_at, d.marketplace, d.operation_id, o.kind,"
            " o.finished_at, m.id, m.phone, m.sender, m.text FROM deliveries d"
            " JOIN messages m ON m.id = d.message_id JOIN operations o ON o.id = d.operation_id"
            f" WHERE d.id IN ({marks}) ORDER BY d.next_attempt_at, d.id",
            ids,
        ).fetchall()
        return [
            DueDelivery(
                id=r[0],
                attempts=r[1],
                created_at=r[2],
                marketplace=r[3],
                operation_id=OperationId(r[4]),
                kind=OperationKind(r[5]),
                operation_finished_at=r[6],
                message_id=r[7],
                phone=PhoneNumber(r[8]),
                sender=r[9],
                text=r[10],
            )
            for r in rows
        ]

    def record(
        self,
        delivery_id: int,
        worker: str,
        attempt: Attempt,
        state: str,
        next_attempt_at: Timestamp,
        reason: str | None,
    ) -> None:
        self.db.execute(
            "INSERT INTO delivery_attempts (delivery_id, worker, started_at, latency_ms,"
            " http_status, response, error, outcome) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                delivery_id, worker, attempt.started_at, attempt.latency_ms, attempt.http_status,
                _cut(attempt.response), _cut(attempt.error), attempt.verdict.value,
            ),
        )  # fmt: skip
        finished = None if state == DeliveryState.PENDING else attempt.started_at
        # Only a pending row moves: an acknowledgement recorded by anyone is final.
        self.db.execute(
            "UPDATE deliveries SET attempts = attempts + 1, state = ?, next_attempt_at = ?,"
            " claimed_by = NULL, claim_expires_at = NULL, finished_at = ?, reason = ?"
            " WHERE id = ? AND state = 'pending'",
            (state, next_attempt_at, finished, reason, delivery_id),
        )

    def claimants(self) -> list[str]:
        rows = self.db.execute(
            "SELECT DISTINCT claimed_by FROM deliveries WHERE claimed_by IS NOT NULL AND state = 'pending'"
        ).fetchall()
        return sorted(str(row[0]) for row in rows)

    def release(self, worker: str) -> int:
        return self.db.execute(
            "UPDATE deliveries SET claimed_by = NULL, claim_expires_at = NULL"
            " WHERE claimed_by = ? AND state = 'pending'",
            (worker,),
        ).rowcount

    def get(self, delivery_id: int) -> Delivery | None:
        row = self.db.execute(
            f"SELECT {DELIVERY_COLUMNS} FROM deliveries d WHERE d.id = ?", (delivery_id,)
        ).fetchone()
        return None if row is None else _delivery(row)

    def attempts(self, delivery_id: int) -> list[Attempt]:
        rows = self.db.execute(
            "SELECT started_at, latency_ms, http_status, response, error, outcome"
            " FROM delivery_attempts WHERE delivery_id = ? ORDER BY id",
            (delivery_id,),
        ).fetchall()
        return [Attempt(r[0], r[1], r[2], r[3], r[4], Verdict(r[5])) for r in rows]

    def retry(self, delivery_id: int, now: Timestamp) -> None:
        self.db.execute(
            "UPDATE deliveries SET state = 'pending', next_attempt_at = ?, finished_at = NULL,"
            " claimed_by = NULL, claim_expires_at = NULL, created_at = ?"
            " WHERE id = ? AND state IN (?, ?)",
            (now, now, delivery_id, *FAILED),
        )


def _cut(text: str | None, limit: int = 500) -> str | None:
    return None if text is None else text[:limit]
