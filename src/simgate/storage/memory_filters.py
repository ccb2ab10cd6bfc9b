"""The filters of the console's listings over the in-memory records, written once.

The fake's repositories (`search`) and its read model (memory_reports.py) share them, as the
SQL ones share sql_filters.py; the contract tests hold the two sides together.
"""

from __future__ import annotations

from simgate.domain.messages import Delivery, DeliveryState, Message
from simgate.domain.model import Number, Operation
from simgate.domain.read_model import DeliveryQuery, MessageQuery, NumberQuery, OperationQuery, status_name

FAILED = (DeliveryState.REJECTED, DeliveryState.GIVEN_UP)


def number_matches(n: Number, query: NumberQuery) -> bool:
    """`losing` needs the operations and is the read model's to apply."""
    return (
        (not query.state or n.state == query.state)
        and (not query.country or n.country == query.country)
        and (not query.operator or n.operator == query.operator)
        and (not query.port or query.port in n.port)
        and (not query.search or query.search in n.phone or query.search in n.port)
    )


def operation_matches(o: Operation, query: OperationQuery) -> bool:
    return (
        (not query.kind or o.kind == query.kind)
        and (query.state != "open" or o.finished_at is None)
        and (query.state != "finished" or o.finished_at is not None)
        and (not query.service or (o.service or "rent") == query.service)
        and (not query.status or status_name(o.finished_at, o.finish_status) == query.status)
        and (not query.marketplace or o.marketplace == query.marketplace)
        and (query.number_id is None or o.number_id == query.number_id)
        and (not query.search or query.search in o.phone)
        and (query.since is None or o.opened_at >= query.since)
        and (query.until is None or o.opened_at < query.until)
    )


def _in_state(delivery: Delivery | None, state: str | None) -> bool:
    # 'failed' is the operator's word for both ends of a push that will not be retried alone.
    if not state:
        return True
    if delivery is None:
        return False
    return delivery.state in FAILED if state == "failed" else delivery.state == state


def message_matches(m: Message, delivery: Delivery | None, query: MessageQuery) -> bool:
    needle = query.search
    return (
        _in_state(delivery, query.delivery_state)
        and (query.number_id is None or m.number_id == query.number_id)
        and (query.operation_id is None or m.operation_id == query.operation_id)
        and (query.routed is None or (m.operation_id is not None) == query.routed)
        and (not needle or needle in m.phone or needle in m.sender or needle in m.text)
    )


def delivery_matches(d: Delivery, query: DeliveryQuery) -> bool:
    return _in_state(d, query.state) and (query.operation_id is None or d.operation_id == query.operation_id)
