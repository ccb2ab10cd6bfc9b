"""Onlinesim v1 calls: parse, call a use case, render. No HTTP framework here.

`handle` takes the raw JSON body and the bearer credential and returns (HTTP status, JSON
payload); http/app.py routes every /onlinesim path to it with the endpoint's name.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property, partial
from typing import Any

import msgspec

from simgate.domain import rules
from simgate.domain.errors import DomainError
from simgate.domain.model import CountryAvailability, OperationKind, Order
from simgate.domain.types import (
    ANY_OPERATOR,
    MAX_ID,
    RENT_SERVICE,
    CountryName,
    Kopecks,
    OperationId,
    OperatorName,
    ServiceName,
    Timestamp,
)
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.marketplaces.onlinesim.wire import NO_NUMBERS, SUCCESS, Request, decoder, error
from simgate.services.explain import plain
from simgate.services.operations import (
    FinishOutcome,
    finish_operation,
    issue_number,
    list_available,
)
from simgate.storage.ports import Store

log = logging.getLogger("simgate.onlinesim")

Reply = tuple[int, dict[str, Any]]

# Which call each path serves: (action it expects, rent?). None: the single URL, which
# dispatches on `action` and treats `service: rent` (any case) as rent (CONTRACT.md).
ENDPOINTS: dict[str, tuple[str, bool] | None] = {
    "getServices": ("GET_SERVICES", False),
    "getServicesRent": ("GET_SERVICES", True),
    "getNumber": ("GET_NUMBER", False),
    "getNumberRent": ("GET_NUMBER", True),
    "finishActivation": ("FINISH_ACTIVATION", False),
    "finishActivationRent": ("FINISH_ACTIVATION", True),
    "": None,
}


class BadRequest(Exception):
    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Onlinesim:
    store: Store
    key: str
    services: Sequence[ServiceName]
    clock: Callable[[], Timestamp]

    @cached_property
    def offered(self) -> frozenset[ServiceName]:
        """`services` as a set, built once: GET_NUMBER asks it on every call."""
        return frozenset(self.services)

    def authorised(self, supplied: Sequence[str | None]) -> bool:
        """Any one supplied credential (body `key`, Bearer, `apikey`) must be the key.

        Any, not all: the published pages show `Bearer apiKey` as a literal example, so a
        marketplace that copies it next to a correct body key must still get through.
        """
        expected = self.key.encode()
        return any(hmac.compare_digest(value.encode(), expected) for value in supplied if value)

    async def handle(
        self, endpoint: str, body: bytes, credentials: Sequence[str | None]
    ) -> tuple[int, dict[str, Any], Request | None]:
        """(HTTP status, answer, the decoded request or None): the caller logs the call from
        what was already decoded here, instead of decoding the body a second time."""
        try:
            request = decoder.decode(body)
        except msgspec.DecodeError as problem:
            return 400, error(f"malformed request: {plain(problem)}"), None
        status, answer = await self._answer(endpoint, request, credentials)
        return status, answer, request

    async def _answer(self, endpoint: str, request: Request, credentials: Sequence[str | None]) -> Reply:
        if not self.authorised([request.key, *credentials]):
            return 401, error("wrong or missing key")
        try:
            action, rent = _route(endpoint, request)
            if action == "GET_SERVICES":
                return await self.get_services(rent, single_url=endpoint == "")
            if action == "GET_NUMBER":
                return await self.get_number(request, rent)
            return await self.finish(request)
        except (BadRequest, DomainError) as problem:
            return getattr(problem, "status", 400), error(str(problem))

    async def get_services(self, rent: bool, *, single_url: bool) -> Reply:
        work = partial(
            list_available,
            marketplace=MARKETPLACE,
            services=self.services,
            with_services=True,
            with_rent=rent or single_url,
        )
        countries = await self.store.read(work)
        return 200, {"status": "SUCCESS", "countryList": [_country(c) for c in countries]}

    async def get_number(self, request: Request, rent: bool) -> Reply:
        order = _order(request, rent)
        if order.kind is OperationKind.ACTIVATION and order.service not in self.offered:
            return 200, NO_NUMBERS  # a service we do not offer: nothing to issue, not an error
        now = self.clock()
        operation = await self.store.transact(lambda uow: issue_number(uow, MARKETPLACE, order, now))
        if operation is None:
            return 200, NO_NUMBERS
        return 200, {
            "status": "SUCCESS",
            "number": int(operation.phone),
            "activationId": operation.id,
        }

    async def finish(self, request: Request) -> Reply:
        if request.activationId is None:
            raise BadRequest("missing field activationId")
        if request.status is None:
            raise BadRequest("missing field status")
        # msgspec decodes integers beyond 64 bits without applying the schema's bounds; the
        # database cannot hold them, so they are refused here rather than failing there.
        if not 1 <= request.activationId <= MAX_ID:
            raise BadRequest(f"activationId must be 1 to {MAX_ID}")
        if not -(2**31) <= request.status < 2**31:
            raise BadRequest("status is out of range")
        operation_id, status = OperationId(request.activationId), request.status
        final = _kopecks(request.sum)
        now = self.clock()
        outcome = await self.store.transact(
            lambda uow: finish_operation(uow, MARKETPLACE, operation_id, status, final, now)
        )
        if outcome is FinishOutcome.UNKNOWN:
            return 404, error(f"unknown activationId {operation_id}")
        return 200, SUCCESS


def _route(endpoint: str, request: Request) -> tuple[str, bool]:
    if endpoint not in ENDPOINTS:
        raise BadRequest(f"unknown endpoint {endpoint!r}", 404)
    action = (request.action or "").strip().upper()
    served = ENDPOINTS[endpoint]
    if served is None:
        if action not in ("GET_SERVICES", "GET_NUMBER", "FINISH_ACTIVATION"):
            raise BadRequest(f"unknown action {request.action!r}" if action else "missing field action")
        return action, rules.normalise_name(request.service or "") == RENT_SERVICE
    expected, rent = served
    # The path decides; `action` may be omitted, but a different one is a misrouted call.
    if action and action != expected:
        raise BadRequest(f"action {request.action!r} is not served at /{endpoint}")
    return expected, rent


def _order(request: Request, rent: bool) -> Order:
    if not request.country:
        raise BadRequest("missing field country")
    service = rules.normalise_name(request.service or "")
    if not rent and not service:
        raise BadRequest("missing field service")
    return Order(
        kind=OperationKind.RENT if rent else OperationKind.ACTIVATION,
        country=CountryName(rules.normalise_name(request.country)),
        operator=OperatorName(rules.normalise_name(request.operator or "") or ANY_OPERATOR),
        service=None if rent else ServiceName(service),
        exception_prefixes=rules.normalise_prefixes(request.exceptionPhoneSet),
        offered=_kopecks(request.sum),
    )


def _kopecks(amount: float | None) -> Kopecks | None:
    if amount is None:
        return None
    return Kopecks(int((Decimal(str(amount)) * 100).quantize(Decimal(1), ROUND_HALF_UP)))


def _country(country: CountryAvailability) -> dict[str, Any]:
    return {"country": country.country, "operatorMap": country.operator_map}
