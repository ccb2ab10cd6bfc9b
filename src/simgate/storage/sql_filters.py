"""The filters of the console's listings in SQL, written once.

The repositories' `search` (the CLI, tests) and the console's read model (sql_reports.py) take
the same queries (domain/read_model.py) and build their WHERE here, so `simgate numbers list
--state free` and the console's Free filter cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from simgate.domain.messages import DeliveryState
from simgate.domain.read_model import DeliveryQuery, MessageQuery, NumberQuery, OperationQuery, status_code
from simgate.storage.sql_base import FREE

STATE_SQL = {
    "disabled": "NOT n.enabled",
    "offline": "n.enabled AND NOT n.online",
    "busy": "n.enabled AND n.online AND n.open_operation_id IS NOT NULL",
    "free": f"{FREE}",
}
FAILED = (DeliveryState.REJECTED.value, DeliveryState.GIVEN_UP.value)


def like(text: str) -> str:
    return "%" + text.replace("%", "").replace("_", "") + "%"


@dataclass
class Where:
    """A WHERE clause built up filter by filter, with its parameters in order."""

    clauses: list[str] = field(default_factory=lambda: ["1 = 1"])
    params: list[object] = field(default_factory=list)

    def add(self, clause: str, *params: object) -> None:
        self.clauses.append(clause)
        self.params.extend(params)

    @property
    def sql(self) -> str:
        return " AND ".join(self.clauses)


def number_where(query: NumberQuery) -> Where:
    """Over `numbers n`; `losing` needs the operations and is the read model's to add."""
    where = Where()
    if query.state:
        where.add(STATE_SQL[query.state])
    if query.country:
        where.add("n.country = ?", query.country)
    if query.operator:
        where.add("n.operator = ?", query.operator)
    if query.port:
        where.add("n.port LIKE ?", like(query.port))
    if query.search:
        where.add("(n.phone LIKE ? OR n.port LIKE ?)", *[like(query.search)] * 2)
    return where


def operation_where(query: OperationQuery) -> Where:
    """Over `operations o`."""
    where = Where()
    if query.kind:
        where.add("o.kind = ?", query.kind)
    if query.state == "open":
        where.add("o.finished_at IS NULL")
    elif query.state == "finished":
        where.add("o.finished_at IS NOT NULL")
    if query.service == "rent":
        where.add("o.service IS NULL")
    elif query.service:
        where.add("o.service = ?", query.service)
    if query.status:
        code = status_code(query.status)
        if query.status == "open":
            where.add("o.finished_at IS NULL")
        elif code is not None:
            where.add("o.finished_at IS NOT NULL AND o.finish_status = ?", code)
        else:  # 'other': finished with an undocumented status
            where.add("o.finished_at IS NOT NULL")
            where.add("(o.finish_status IS NULL OR o.finish_status NOT IN (1, 3, 4, 5))")
    if query.marketplace:
        where.add("o.marketplace = ?", query.marketplace)
    if query.number_id is not None:
        where.add("o.number_id = ?", query.number_id)
    if query.search:
        where.add("o.phone LIKE ?", like(query.search))
    if query.since is not None:
        where.add("o.opened_at >= ?", query.since)
    if query.until is not None:
        where.add("o.opened_at < ?", query.until)
    return where


def _delivery_state(where: Where, state: str | None) -> None:
    # 'failed' is the operator's word for both ends of a push that will not be retried alone.
    if state == "failed":
        where.add("d.state IN (?, ?)", *FAILED)
    elif state:
        where.add("d.state = ?", state)


def message_where(query: MessageQuery) -> Where:
    """Over `messages m LEFT JOIN deliveries d`."""
    where = Where()
    if query.number_id is not None:
        where.add("m.number_id = ?", query.number_id)
    if query.operation_id is not None:
        where.add("m.operation_id = ?", query.operation_id)
    if query.routed is True:
        where.add("m.operation_id IS NOT NULL")
    elif query.routed is False:
        where.add("m.operation_id IS NULL")
    _delivery_state(where, query.delivery_state)
    if query.search:
        where.add("(m.phone LIKE ? OR m.sender LIKE ? OR m.text LIKE ?)", *[like(query.search)] * 3)
    return where


def delivery_where(query: DeliveryQuery) -> Where:
    """Over `deliveries d`."""
    where = Where()
    _delivery_state(where, query.state)
    if query.operation_id is not None:
        where.add("d.operation_id = ?", query.operation_id)
    return where
