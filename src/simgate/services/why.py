"""`numbers why` as a use case: gather a number's facts, let the domain explain them."""

from __future__ import annotations

from collections.abc import Sequence

from simgate.domain.types import NumberId, ServiceName, Timestamp
from simgate.domain.why import NumberFacts, Reason, why_not
from simgate.storage.ports import UnitOfWork


def number_facts(uow: UnitOfWork, number_id: NumberId) -> NumberFacts | None:
    number = uow.numbers.get(number_id)
    if number is None:
        return None
    return NumberFacts(
        number,
        uow.operations.of_number(number_id),
        uow.numbers.exclusions(number_id),
        uow.lanes.marketplaces(),
    )


def why_not_offered(
    uow: UnitOfWork,
    number_id: NumberId,
    marketplaces: Sequence[str] | None,
    service: ServiceName | None,
    now: Timestamp,
) -> dict[str, list[Reason]] | None:
    """Per marketplace (None: every enabled one), why the number is not offered there for
    `service` (None: any); an empty list means it is. None: no such number."""
    facts = number_facts(uow, number_id)
    if facts is None:
        return None
    names = marketplaces or [m.name for m in facts.marketplaces if m.enabled]
    return {name: why_not(facts, uow.ledger, name, service, now) for name in names}
