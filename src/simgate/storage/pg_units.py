"""PostgreSQL: GET_NUMBER's claim and FINISH as one round trip each (issue 14, target 5).

On a shared 2-core machine a unit of work of six statements spent most of its time in the
round trips (BEGIN, find_free, open, mark_busy, the exclusions' copy, COMMIT): each costs
CPU in the driver, in the server and in the context switches between them. Here:

- GET_NUMBER is one statement: the same candidate query as find_free (SqlNumbers.free_where,
  FOR UPDATE SKIP LOCKED), then mark_busy's conditional update, the operation's insert and
  the exclusions' copy as data-modifying CTEs. The operation is inserted only if the number
  was claimed, so a lost race changes nothing (ClaimConflict, and the unit runs again).
- FINISH is one call to `simgate_finish` (migration 0012), finish_operation's steps on the
  server, with the sale ledger's consequence decided beforehand from the status alone
  (rules.finish_consequence).

Either runs in autocommit when it is the whole unit of work, so no BEGIN and no COMMIT travel
either: the statement is its own transaction, and durable when the server answers (the
server's synchronous_commit decides, as for any commit). Nothing may follow it in the unit.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from functools import cache
from typing import Any

import psycopg

from simgate.domain.errors import ClaimConflict
from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.domain.model import Operation, Order
from simgate.domain.rules import FinishConsequence
from simgate.domain.types import (
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    Timestamp,
)
from simgate.storage.pg_hang import AnswerWatch
from simgate.storage.sql import SqlNumbers
from simgate.storage.sql_base import Cursor
from simgate.storage.sql_unit import SqlUnitOfWork


@cache
def translate(sql: str) -> str:
    """Our SQL uses `?` placeholders (sqlite3's); psycopg wants `%s`, and a literal % doubled."""
    return re.sub(r"\?", "%s", sql.replace("%", "%%"))


class PgConnection:
    """One unit of work's connection (in autocommit mode): the transaction begins with the
    unit's first statement, in the same round trip. A `single` unit (Store.transact) is one
    statement (`execute_whole`), which runs as its own transaction. Each round trip is held to
    `watch`'s bound (storage/pg_hang.py): a server that stops answering fails the unit."""

    IntegrityError: type[Exception] = psycopg.IntegrityError

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        begin: str = "BEGIN",
        *,
        single: bool = False,
        watch: AnswerWatch | None = None,
    ) -> None:
        self.conn = conn
        self.begin = begin.encode()
        self.single = single
        self.begun = False
        self.whole = False
        self.watch = watch
        self.in_doubt = False
        """The connection was lost while this unit was committing: it may have committed."""

    def _round_trip(self) -> AbstractContextManager[None]:
        return nullcontext() if self.watch is None else self.watch.round_trip(self.conn)

    @contextmanager
    def _committing(self) -> Iterator[None]:
        """The round trip that commits the unit (its COMMIT, or a `single` unit's statement).
        Lost on the way (a cut, a reset, a server gone), it may have committed: the server
        may have done it and only its answer been lost. `in_doubt` says so. A connection
        already lost before (psycopg refuses to send on it), or an error the server answered
        on a live connection (a serialization failure, a full disk), leaves no doubt: the
        transaction did not commit."""
        sendable = not self.conn.broken and not self.conn.closed
        try:
            with self._round_trip():
                yield
        except psycopg.Error:
            if sendable and (self.conn.broken or self.conn.closed):
                self.in_doubt = True
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        self._refuse_after_whole()
        if self.begun:
            with self._round_trip():
                return self.conn.execute(translate(sql), params)
        self.begun = True
        with self._round_trip(), self.conn.pipeline():
            self.conn.execute(self.begin)
            cursor = self.conn.execute(translate(sql), params)
        return cursor

    def execute_whole(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        """One of OneTripUnits' statements: the whole unit, as its own transaction, in a
        `single` unit; otherwise a statement of the unit's transaction like any other."""
        if not self.single or self.begun:
            return self.execute(sql, params)
        self._refuse_after_whole()
        self.whole = True
        with self._committing():  # autocommit: this statement is the unit's commit
            return self.conn.execute(translate(sql), params)

    def _refuse_after_whole(self) -> None:
        if self.whole:
            raise RuntimeError("a single unit of work has committed its one statement: nothing may follow it")

    def commit(self) -> None:
        if self.begun:
            with self._committing():
                self.conn.commit()

    def rollback(self) -> None:
        if self.begun and not self.conn.closed:
            with self._round_trip():
                self.conn.rollback()


CLAIM = (
    "WITH pick AS (SELECT n.id FROM numbers n WHERE {where}"
    " ORDER BY n.last_issued_at, n.id LIMIT 1 FOR UPDATE OF n SKIP LOCKED),"
    " claim AS (SELECT pick.id AS number_id, nextval('operations_id_seq') AS operation_id FROM pick),"
    # mark_busy: conditional, and it cancels a pending lane move.
    " busy AS (UPDATE numbers SET open_operation_id = claim.operation_id, last_issued_at = ?::float8,"
    " lane_target = NULL, lane_leaving_at = NULL FROM claim"
    " WHERE numbers.id = claim.number_id AND numbers.open_operation_id IS NULL"
    " RETURNING numbers.id, numbers.phone, numbers.country, numbers.operator, claim.operation_id),"
    # operations.open, only for a number this statement claimed.
    " opened AS (INSERT INTO operations (id, marketplace, kind, number_id, phone, country, operator,"
    " service, offered_kopecks, opened_at, currency) SELECT busy.operation_id, ?::text, ?::text,"
    " busy.id, busy.phone, busy.country, busy.operator, ?::text, ?::bigint, ?::float8, ?::text"
    " FROM busy RETURNING id),"
    # sync_exclusions after mark_busy: a busy number is neither free nor counted by a lane.
    " synced AS (UPDATE number_exclusions SET country = busy.country, operator = busy.operator,"
    " free = FALSE, counted_lane = NULL FROM busy WHERE number_exclusions.number_id = busy.id)"
    " SELECT claim.number_id, busy.phone, busy.country, busy.operator, opened.id FROM claim"
    " LEFT JOIN busy ON TRUE LEFT JOIN opened ON TRUE"
)

FINISH = (
    "SELECT simgate_finish(?::bigint, ?::text, ?::integer, ?::bigint, ?::float8, ?::text, ?::text,"
    " ?::integer, ?::jsonb)"
)


@cache
def _groups_json(ledger: LedgerRules) -> str:
    return json.dumps(
        [{"services": sorted(g.services), "countries": sorted(g.countries)} for g in ledger.groups]
    )


class PgOneTrip:
    def __init__(self, db: PgConnection, numbers: SqlNumbers, ledger: LedgerRules = NO_RULES) -> None:
        self.db = db
        self.numbers = numbers
        self.ledger = ledger

    def issue(self, marketplace: str, order: Order, now: Timestamp) -> Operation | None:
        where, params = self.numbers.free_where(order, marketplace, now)
        values = (now, marketplace, order.kind.value, order.service, order.offered, now, order.currency)
        row = self.db.execute_whole(CLAIM.format(where=where), (*params, *values)).fetchone()
        if row is None:
            return None
        number_id, phone, country, operator, operation_id = row
        if operation_id is None:
            raise ClaimConflict(f"number {number_id} was claimed by another operation")
        return Operation(
            id=OperationId(operation_id),
            marketplace=marketplace,
            kind=order.kind,
            number_id=NumberId(number_id),
            phone=PhoneNumber(phone),
            country=CountryName(country),
            operator=OperatorName(operator),
            service=order.service,
            offered=order.offered,
            opened_at=now,
            currency=order.currency,
        )

    def finish(
        self,
        marketplace: str,
        operation_id: OperationId,
        status: int,
        final: Kopecks | None,
        now: Timestamp,
        consequence: FinishConsequence | None,
    ) -> str:
        reason = scope = limit = groups = None
        if consequence is not None:
            reason, scope, limit = consequence.reason, consequence.scope, consequence.retry_limit
            if consequence.groups and self.ledger.groups:
                groups = _groups_json(self.ledger)
        params = (operation_id, marketplace, status, final, now, reason, scope, limit, groups)
        row = self.db.execute_whole(FINISH, params).fetchone()
        assert row is not None
        return str(row[0])


class PgUnitOfWork(SqlUnitOfWork):
    def __init__(self, db: PgConnection, ledger: LedgerRules = NO_RULES) -> None:
        super().__init__(db, skip_locked=True, ledger=ledger)
        self.one_trip = PgOneTrip(db, self.numbers, ledger)
