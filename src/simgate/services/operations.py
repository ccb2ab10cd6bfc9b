"""The marketplace's three calls as use cases: list_available, issue_number, finish_operation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from enum import StrEnum

from simgate.domain import ledger, rules
from simgate.domain.model import CountryAvailability, FinishPolicy, Operation, OperationKind, Order
from simgate.domain.rules import FinishConsequence
from simgate.domain.types import EVERYWHERE, Kopecks, OperationId, ServiceName, Timestamp
from simgate.services.answers import AnswerCache
from simgate.storage.ports import UnitOfWork

log = logging.getLogger("simgate.operations")

ONLINESIM_FINISH = FinishPolicy()
"""Onlinesim's statuses: only a sale (3) removes the number from that service."""


def list_available(
    uow: UnitOfWork,
    marketplace: str,
    services: Sequence[ServiceName],
    *,
    with_services: bool = True,
    with_rent: bool = False,
    now: Timestamp | None = None,
    cache: AnswerCache | None = None,
) -> list[CountryAvailability]:
    """GET_SERVICES: what can be issued this instant, per country, operator and service.

    Counts come from the same state GET_NUMBER claims from, so every advertised number is
    issuable when answered; over-reporting gets the farm blocked for 30 minutes (spec 5.1).
    Only the free SIMs in `marketplace`'s lane count, and not those leaving it: a SIM is
    advertised by one marketplace at a time, so all counts together never exceed the farm.
    Nor the SIMs a resale window hides there at `now` (domain/ledger.py).

    With `cache`, the answer is given again while this snapshot's stamp is the one it was
    computed under (services/answers.py); it is shared, so callers never change it.
    """
    key = (marketplace, tuple(services), with_services, with_rent)
    stamp = None if cache is None else uow.numbers.availability_stamp(marketplace, now)
    if cache is not None and stamp is not None:
        kept = cache.get(key, stamp)
        if kept is not None:
            return kept
    answer = rules.tally_groups(
        uow.numbers.group_availability(marketplace, now),
        services,
        with_services=with_services,
        with_rent=with_rent,
    )
    if cache is not None and stamp is not None:
        cache.put(key, stamp, answer)
    return answer


def issue_number(uow: UnitOfWork, marketplace: str, order: Order, now: Timestamp) -> Operation | None:
    """GET_NUMBER: claim one matching number and open its operation, or None (NO_NUMBERS).

    Only from `marketplace`'s lane, leaving SIMs included (its last answer counted them);
    claiming a leaving SIM cancels its move. One unit: claimed and opened commit together.
    """
    if uow.one_trip is not None:
        # PostgreSQL: these same steps as one statement (storage/pg_units.py).
        return uow.one_trip.issue(marketplace, order, now)
    number = uow.numbers.find_free(order, marketplace, now)
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


def record_poll(uow: UnitOfWork, marketplace: str, asked_at: Timestamp) -> None:
    """After a GET_SERVICES answer for `marketplace` computed from a snapshot taken at or after
    `asked_at`: SIMs leaving that marketplace's lane that the answer no longer counted may now
    join their new lane (CONTRACT.md, "One SIM, one buyer at a time")."""
    uow.lanes.record_poll(marketplace, asked_at)
    # The claims since the last poll, folded into the counts the next one reads (PostgreSQL).
    uow.numbers.fold_counts()


def finish_operation(
    uow: UnitOfWork,
    marketplace: str,
    operation_id: OperationId,
    status: int,
    final: Kopecks | None,
    now: Timestamp,
    policy: FinishPolicy = ONLINESIM_FINISH,
) -> FinishOutcome:
    """FINISH_ACTIVATION: close the operation, free the number, remember a sale.

    Idempotent: a repeat changes nothing, whatever status it carries, so a late resend can
    never turn a cancellation into a sale or back.
    """
    consequence = rules.finish_consequence(status, policy)
    if uow.one_trip is not None:
        # PostgreSQL: these same steps in one server-side call (migration 0012).
        outcome = FinishOutcome(
            uow.one_trip.finish(marketplace, operation_id, status, final, now, consequence)
        )
        if outcome is FinishOutcome.FINISHED:
            _note_undocumented(operation_id, status)
        return outcome
    operation = uow.operations.get(operation_id)
    if operation is None or operation.marketplace != marketplace:
        # Another marketplace's activation is unknown here: one marketplace must never
        # close (or learn of) another's operation.
        return FinishOutcome.UNKNOWN
    if not operation.is_open:
        uow.operations.note_finish_request(operation_id)
        return FinishOutcome.REPEATED
    _note_undocumented(operation_id, status)
    uow.operations.finish(operation_id, status, final, now)  # counts this request too
    uow.numbers.release(operation.number_id, operation_id, operation.kind)
    if consequence is not None:
        _remember_outcome(uow, operation, status, now, consequence)
    return FinishOutcome.FINISHED


def _note_undocumented(operation_id: OperationId, status: int) -> None:
    if not rules.is_documented_status(status):
        log.warning("FINISH for %s with undocumented status %s: released, not sold", operation_id, status)


def _remember_outcome(
    uow: UnitOfWork, operation: Operation, status: int, now: Timestamp, consequence: FinishConsequence
) -> None:
    """The sale ledger's consequences: what this outcome forbids offering from now on."""
    service = operation.service
    if operation.kind is not OperationKind.ACTIVATION or service is None:
        return  # a rent receives every sender: it uses up no service (spec 6.2)
    number_id = operation.number_id
    if consequence.retry_limit is not None:
        used = uow.operations.count_finished(number_id, service, operation.marketplace, status)
        if used < consequence.retry_limit:
            return
    uow.numbers.exclude(
        number_id,
        service,
        consequence.reason,
        now,
        marketplace=consequence.scope or operation.marketplace,
        operation_id=operation.id,
    )
    if consequence.groups:
        for other in ledger.conflicting(uow.ledger.groups, service, operation.country):
            uow.numbers.exclude(
                number_id, other, "group", now, marketplace=EVERYWHERE, operation_id=operation.id
            )
