"""The filters of the number and SMS listings over the in-memory records, written once.

The fake's repositories (`search`) and its read model (memory_reports.py) share them, as the
SQL ones share sql_filters.py; the contract tests hold the two sides together.
"""

from __future__ import annotations

from simgate.domain.messages import Delivery, DeliveryState, Message
from simgate.domain.model import Number
from simgate.domain.reports import MessageQuery, NumberQuery

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


def message_matches(m: Message, delivery: Delivery | None, query: MessageQuery) -> bool:
    if query.delivery_state == "failed":
        state_ok = delivery is not None and delivery.state in FAILED
    elif query.delivery_state:
        state_ok = delivery is not None and delivery.state == query.delivery_state
    else:
        state_ok = True
    needle = query.search
    return (
        state_ok
        and (query.number_id is None or m.number_id == query.number_id)
        and (query.operation_id is None or m.operation_id == query.operation_id)
        and (query.routed is None or (m.operation_id is not None) == query.routed)
        and (not needle or needle in m.phone or needle in m.sender or needle in m.text)
    )
