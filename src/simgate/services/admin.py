"""The operator's actions from the console: small use cases, each one transaction.

None of them closes or changes an operation: only the marketplace's FINISH does (DESIGN.md).
Disabling a busy SIM keeps its open operation running; it is just never issued again.
Each action only writes; the face shows its outcome with `number_report`, read afterwards
from the read model (Store.report), never inside the write.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection

from simgate import catalogue
from simgate.domain.errors import DomainError
from simgate.domain.read_model import BLOCKED, SOLD, STREAK_WINDOW, NumberReport
from simgate.domain.rules import normalise_name
from simgate.domain.types import RENT_SERVICE, NumberId, ServiceName, Timestamp
from simgate.services.outbox import RetryRefused, retry_delivery
from simgate.services.phones import shown
from simgate.storage.ports import Reports, UnitOfWork

SERVICE_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")

__all__ = [
    "Conflict",
    "NotFound",
    "RetryRefused",
    "block_service",
    "number_report",
    "retry_delivery",
    "set_enabled",
    "unblock_service",
]


class NotFound(DomainError):
    pass


class Conflict(DomainError):
    """The action contradicts the farm's state (unblocking a sale)."""


def number_report(reports: Reports, number_id: NumberId, now: Timestamp) -> NumberReport:
    """The SIM as the console shows it after an action (its streaks over the last week)."""
    report = reports.number(number_id, now - STREAK_WINDOW)
    if report is None:
        raise NotFound(f"no number {number_id}")
    return report


def _known(uow: UnitOfWork, number_id: NumberId) -> None:
    if uow.numbers.get(number_id) is None:
        raise NotFound(f"no number {number_id}")


def set_enabled(uow: UnitOfWork, number_id: NumberId, enabled: bool, now: Timestamp) -> None:
    """Enable or disable a SIM: a disabled one leaves GET_SERVICES' counts at once."""
    if not uow.numbers.set_enabled(number_id, enabled, now):
        raise NotFound(f"no number {number_id}")


def service_name(raw: str, known: Collection[str] | None = None) -> ServiceName:
    """A service the marketplaces know. A typo (`telegramm`) would otherwise be stored as a
    block that blocks nothing, while the SIM keeps being sold for the real service."""
    name = normalise_name(raw)
    if not SERVICE_NAME.match(name):
        raise DomainError(f"service {shown(raw)!r} is not an Onlinesim service name")
    if name == RENT_SERVICE:
        # Spec 6.2: rent ignores the partner's blacklist, so blocking it would block nothing.
        raise DomainError("rent cannot be blocked: the blacklist applies to activations only")
    known = catalogue.services() if known is None else known
    if name not in known:
        close = difflib.get_close_matches(name, list(known), n=1)
        hint = f"; did you mean {close[0]}?" if close else " (see `simgate services`)"
        raise DomainError(f"unknown service {shown(raw)!r}{hint}")
    return ServiceName(name)


def blockable_services() -> tuple[ServiceName, ...]:
    """The names block_service accepts: the dashboard's block picker offers exactly these."""
    return catalogue.services()


def block_service(uow: UnitOfWork, number_id: NumberId, service: str, now: Timestamp) -> None:
    """Never offer this SIM for `service` activations (spec 8.4); rent is unaffected."""
    _known(uow, number_id)  # an unknown number is a 404 whatever the name
    name = service_name(service)
    uow.numbers.exclude(number_id, name, BLOCKED, now)


def unblock_service(uow: UnitOfWork, number_id: NumberId, service: str, now: Timestamp) -> None:
    """Lift an operator's block. A sale is the marketplace's fact and stays (spec 5.1)."""
    _known(uow, number_id)
    facts = uow.numbers.exclusions(number_id)
    # Any name already blocked may be lifted, a typo stored before names were checked too.
    name = service_name(service, known={*catalogue.services(), *(f.service for f in facts)})
    # A service may also be excluded on one marketplace (its own rules): that stays.
    reasons = {f.reason for f in facts if f.service == name}
    if BLOCKED in reasons:
        uow.numbers.unexclude(number_id, name, BLOCKED)
    elif SOLD in reasons:
        raise Conflict(f"number {number_id} was sold for {name}; a sale cannot be unblocked")
    elif not reasons:
        raise NotFound(f"number {number_id} has no block for {name}")
