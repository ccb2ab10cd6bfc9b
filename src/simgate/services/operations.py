"""The marketplace's three calls as use cases: list_available, issue_number, finish_operation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

from simgate.domain import rules
from simgate.domain.model import CountryAvailability, Operation, Order
from simgate.domain.types import Kopecks, OperationId, ServiceName, Timestamp
from simgate.storage.ports import UnitOfWork

log = logging.getLogger("simgate.operations")


def list_available(
    uow: UnitOfWork,
    services: Sequence[ServiceName],
    *,
    with_services: bool = True,
    with_rent: bool = False,
) -> list[CountryAvailability]:
    """GET_SERVICES: what can be issued this instant, per country, operator and service.

    Counts come from the same state GET_NUMBER claims from, so every advertised number is
    issuable when answered; over-reporting gets the farm blocked for 30 minutes (spec 5.1).
    """
    return rules.tally_availability(
        uow.numbers.group_counts(),
        uow.numbers.excluded_counts(),
        services,
        with_services=with_services,
        with_rent=with_rent,
    )


def issue_number(uow: UnitOfWork, marketplace: str, order: Order, now: Timestamp) -> Operation | None:
    """GET_NUMBER: claim one matching number and open its operation, or None (NO_NUMBERS)."""
    number = uow.numbers.find_free(order)
    if number is None:
        return None
    operation = uow.operations.open(marketplace, order, number, now)
    # Conditional claim: raises (and rolls the whole unit back) if the number was taken.
    uow.numbers.mark_busy(number.id, operation.id, now)
    return operation


class FinishOutcome(StrEnum):
    FINISHED = "finished"
    REPEATED = "repeated"
    """Already finished: the marketplace resends FINISH when our answer was late (spec 5.3)."""
    UNKNOWN = "unknown"


def finish_operation(
    uow: UnitOfWork,
    operation_id: OperationId,
    status: int,
    final: Kopecks | None,
    now: Timestamp,
) -> FinishOutcome:
    """FINISH_ACTIVATION: close the operation, free the number, remember a sale.

    Idempotent: a repeat changes nothing, whatever status it carries, so a late resend can
    never turn a cancellation into a sale or back.
    """
    operation = uow.operations.get(operation_id)
    if operation is None:
        return FinishOutcome.UNKNOWN
    uow.operations.note_finish_request(operation_id)
    if not operation.is_open:
        return FinishOutcome.REPEATED
    if not rules.is_documented_status(status):
        log.warning("FINISH for %s with undocumented status %s: released, not sold", operation_id, status)
    uow.operations.finish(operation_id, status, final, now)
    uow.numbers.release(operation.number_id, operation_id)
    if rules.is_sale(operation, status) and operation.service is not None:
        # Sold for this service: never count or issue this number for it again (spec 5.1).
        uow.numbers.exclude(operation.number_id, operation.service, "sold", now)
    return FinishOutcome.FINISHED
