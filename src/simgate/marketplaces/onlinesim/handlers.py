"""Onlinesim v1 calls: parse, call a use case, render. No HTTP framework here.

`handle` takes the endpoint under /onlinesim, the raw JSON body and the credentials from
headers and query, and returns an Answer; what Onlinesim shares with the agent protocol
(key check, money, orders, the use-case calls) is in marketplaces/dispatch.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import msgspec

from simgate.domain import rules
from simgate.domain.errors import DomainError
from simgate.domain.model import CountryAvailability, FinishPolicy, OperationKind, Order
from simgate.domain.types import RENT_SERVICE, ServiceName, Timestamp
from simgate.marketplaces import dispatch
from simgate.marketplaces.base import Answer, Payload
from simgate.marketplaces.dispatch import BadRequest
from simgate.marketplaces.onlinesim import MARKETPLACE
from simgate.marketplaces.onlinesim.wire import NO_NUMBERS, SUCCESS, Request, decoder, error
from simgate.services.answers import AnswerCache
from simgate.services.explain import plain
from simgate.services.operations import FinishOutcome
from simgate.storage.ports import Store, StoreUnavailable

log = logging.getLogger("simgate.onlinesim")

Reply = tuple[int, Payload]

FINISH = FinishPolicy()
"""Onlinesim's status 1 is a rent/activation mix-up: only a sale (3) removes the number."""

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


@dataclass(frozen=True)
class Onlinesim:
    store: Store
    key: str
    services: Sequence[ServiceName]
    clock: Callable[[], Timestamp]
    answers: AnswerCache = field(default_factory=AnswerCache, compare=False, repr=False)
    """The last GET_SERVICES answers, given again while the counts stand (services/answers.py)."""

    @cached_property
    def offered(self) -> frozenset[ServiceName]:
        """`services` as a set, built once: GET_NUMBER asks it on every call."""
        return frozenset(self.services)

    def authorised(self, supplied: Sequence[str | None]) -> bool:
        """Any one supplied credential (body `key`, Bearer, `apikey`) must be the key.

        Any, not all: the published pages show `Bearer apiKey` as a literal example, so a
        marketplace that copies it next to a correct body key must still get through.
        """
        return dispatch.authorised(self.key, supplied)

    async def handle(self, endpoint: str, body: bytes, credentials: Sequence[str | None]) -> Answer:
        # Label by known call only: arbitrary paths must not grow the series without bound.
        call = (endpoint or "onlinesim") if endpoint in ENDPOINTS else "unknown"
        try:
            request = decoder.decode(body)
        except msgspec.DecodeError as problem:
            return Answer(400, error(f"malformed request: {plain(problem)}"), call)
        status, answer = await self._answer(endpoint, request, credentials)
        return Answer(status, answer, call, request)

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
        except StoreUnavailable as problem:
            # Answered here, where the call and the request are known: the request log and
            # the metrics then show the 503 and its reason (commit lost: what a retry does).
            return 503, error(problem.answer)

    async def get_services(self, rent: bool, *, single_url: bool) -> Reply:
        countries = await dispatch.available(
            self.store,
            MARKETPLACE,
            self.services,
            self.clock,
            with_services=True,
            with_rent=rent or single_url,
            cache=self.answers,
        )
        return 200, {"status": "SUCCESS", "countryList": [_country(c) for c in countries]}

    async def get_number(self, request: Request, rent: bool) -> Reply:
        order = _order(request, rent)
        if order.kind is OperationKind.ACTIVATION and order.service not in self.offered:
            return 200, NO_NUMBERS  # a service we do not offer: nothing to issue, not an error
        operation = await dispatch.issue(self.store, MARKETPLACE, order, self.clock)
        if operation is None:
            return 200, NO_NUMBERS
        return 200, {
            "status": "SUCCESS",
            "number": int(operation.phone),
            "activationId": operation.id,
        }

    async def finish(self, request: Request) -> Reply:
        activation = dispatch.operation_id(request.activationId)
        status = dispatch.finish_status(request.status)
        final = dispatch.hundredths(request.sum)
        outcome = await dispatch.finish(
            self.store, MARKETPLACE, activation, status, final, self.clock, FINISH
        )
        if outcome is FinishOutcome.UNKNOWN:
            return 404, error(f"unknown activationId {activation}")
        return 200, SUCCESS


def _route(endpoint: str, request: Request) -> tuple[str, bool]:
    if endpoint not in ENDPOINTS:
        raise BadRequest(f"unknown endpoint {endpoint!r}", 404)
    served = ENDPOINTS[endpoint]
    if served is None:
        action = dispatch.action(request.action)
        return action, rules.normalise_name(request.service or "") == RENT_SERVICE
    expected, rent = served
    # The path decides; `action` may be omitted, but a different one is a misrouted call.
    action = (request.action or "").strip().upper()
    if action and action != expected:
        raise BadRequest(f"action {request.action!r} is not served at /{endpoint}")
    return expected, rent


def _order(request: Request, rent: bool) -> Order:
    return dispatch.make_order(
        rent=rent,
        country=request.country,
        operator=request.operator,
        service=request.service,
        prefixes=request.exceptionPhoneSet,
        amount=request.sum,
        currency_code=request.currency,
    )


def _country(country: CountryAvailability) -> Payload:
    return {"country": country.country, "operatorMap": country.operator_map}
