"""The SQL unit of work: one connection, one transaction, every repository over it.

The read model (sql_reports.py) is not one of them: the stores serve it on a read-only
snapshot of its own (Store.report).

Its own module so the repositories import the shared pieces (sql_base.py) and never the unit
of work that builds them: no import cycle.
"""

from __future__ import annotations

from simgate.domain.ledger import NO_RULES, LedgerRules
from simgate.storage.ports import OneTripUnits
from simgate.storage.sessions import SqlSessions
from simgate.storage.sql import SqlNumbers, SqlOperations
from simgate.storage.sql_alerts import SqlAlerts
from simgate.storage.sql_base import Connection
from simgate.storage.sql_history import SqlHistory
from simgate.storage.sql_lanes import SqlLanes
from simgate.storage.sql_outbox import SqlMessages, SqlOutbox


class SqlUnitOfWork:
    def __init__(self, db: Connection, *, skip_locked: bool = False, ledger: LedgerRules = NO_RULES) -> None:
        self.one_trip: OneTripUnits | None = None
        self.ledger = ledger
        # PostgreSQL, the one store that skips locked rows, keeps count changes as deltas
        # (migration 0011): claims never wait on a shared counter row.
        self.numbers = SqlNumbers(db, skip_locked=skip_locked, ledger=ledger, count_deltas=skip_locked)
        self.operations = SqlOperations(db)
        self.messages = SqlMessages(db)
        self.outbox = SqlOutbox(db, skip_locked=skip_locked)
        self.alerts = SqlAlerts(db)
        self.sessions = SqlSessions(db)
        self.lanes = SqlLanes(db, skip_locked=skip_locked, ledger=ledger)
        self.history = SqlHistory(db, skip_locked=skip_locked)
