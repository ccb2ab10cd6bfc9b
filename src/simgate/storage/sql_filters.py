"""The filters of the number and SMS listings in SQL, written once.

The repositories' `search` (the CLI, tests) and the console's read model (sql_reports.py) take
the same queries (domain/reports.py) and build their WHERE here, so `simgate numbers list
--state free` and the console's Free filter cannot disagree.
"""

from __future__ import annotations

from simgate.domain.messages import DeliveryState
from simgate.domain.reports import MessageQuery, NumberQuery
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


def number_clauses(query: NumberQuery) -> tuple[list[str], list[object]]:
    """Over `numbers n`; `losing` needs the operations and is the read model's to add."""
    clauses: list[str] = ["1 = 1"]
    params: list[object] = []
    if query.state:
        clauses.append(STATE_SQL[query.state])
    if query.country:
        clauses.append("n.country = ?")
        params.append(query.country)
    if query.operator:
        clauses.append("n.operator = ?")
        params.append(query.operator)
    if query.port:
        clauses.append("n.port LIKE ?")
        params.append(like(query.port))
    if query.search:
        clauses.append("(n.phone LIKE ? OR n.port LIKE ?)")
        params += [like(query.search)] * 2
    return clauses, params


def message_clauses(query: MessageQuery) -> tuple[list[str], list[object]]:
    """Over `messages m LEFT JOIN deliveries d`."""
    clauses: list[str] = ["1 = 1"]
    params: list[object] = []
    if query.number_id is not None:
        clauses.append("m.number_id = ?")
        params.append(query.number_id)
    if query.operation_id is not None:
        clauses.append("m.operation_id = ?")
        params.append(query.operation_id)
    if query.routed is True:
        clauses.append("m.operation_id IS NOT NULL")
    elif query.routed is False:
        clauses.append("m.operation_id IS NULL")
    if query.delivery_state == "failed":
        clauses.append("d.state IN (?, ?)")
        params += list(FAILED)
    elif query.delivery_state:
        clauses.append("d.state = ?")
        params.append(query.delivery_state)
    if query.search:
        clauses.append("(m.phone LIKE ? OR m.sender LIKE ? OR m.text LIKE ?)")
        params += [like(query.search)] * 3
    return clauses, params
