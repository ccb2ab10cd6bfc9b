"""The agent protocol's calls: one URL, dispatched on `action`, the key in the body only.

Parse, translate names, call the shared dispatch, render in the protocol's envelope. What
Onlinesim shares with it (key check, money, orders, the use-case calls) is in dispatch.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import msgspec

from simgate.domain import rules
from simgate.domain.errors import DomainError
from simgate.domain.types import ServiceName, Timestamp
from simgate.marketplaces import dispatch
from simgate.marketplaces.agent.names import NameMaps
from simgate.marketplaces.agent.settings import FINISH
from simgate.marketplaces.agent.wire import NO_NUMBERS, SUCCESS, Request, decoder, error
from simgate.marketplaces.base import Answer, Payload
from simgate.marketplaces.dispatch import BadRequest
from simgate.services.answers import AnswerCache
from simgate.services.explain import plain
from simgate.services.operations import FinishOutcome
from simgate.storage.ports import Store, StoreUnavailable


@dataclass(frozen=True)
class AgentProtocol:
    name: str
    store: Store
    key: str
    names: NameMaps
    offered: tuple[ServiceName, ...]
    clock: Callable[[], Timestamp]
    always_200: bool = False
    """ERROR answers with HTTP 200 instead of a 4xx (the error_status setting)."""
    answers: AnswerCache = field(default_factory=AnswerCache, compare=False, repr=False)
    """The last GET_SERVICES answers, given again while the counts stand (services/answers.py)."""

    def envelope(self, status: int, message: str) -> tuple[int, Payload]:
        return (200 if self.always_200 else status), error(message)

    async def handle(self, endpoint: str, body: bytes, credentials: Sequence[str | None]) -> Answer:
        try:
            request = decoder.decode(body)
        except msgspec.DecodeError as problem:
            return Answer(*self.envelope(400, f"malformed request: {plain(problem)}"), "unknown")
        # The body key only: the protocol has no header credential (spec 3).
        if not dispatch.authorised(self.key, [request.key]):
            return Answer(*self.envelope(401, "wrong or missing key"), "unknown", request)
        call = "unknown"
        try:
            call = dispatch.action(request.action)
            if call == "GET_SERVICES":
                status, payload = await self.get_services()
            elif call == "GET_NUMBER":
                status, payload = await self.get_number(request)
            else:
                status, payload = await self.finish(request)
        except (BadRequest, DomainError) as problem:
            status, payload = self.envelope(getattr(problem, "status", 400), str(problem))
        except StoreUnavailable as problem:
            # Answered here, where the action and the request are known (the request log).
            status, payload = self.envelope(503, problem.answer)
        return Answer(status, payload, call, request)

    async def get_services(self) -> tuple[int, Payload]:
        countries = await dispatch.available(
            self.store, self.name, self.offered, self.clock, cache=self.answers
        )
        return 200, {"status": "SUCCESS", "countryList": self.names.country_list(countries, self.offered)}

    async def get_number(self, request: Request) -> tuple[int, Payload]:
        for name in ("country", "operator", "service", "sum", "currency"):
            if getattr(request, name) in (None, ""):
                raise BadRequest(f"missing field {name}")
        country = self.names.country(rules.normalise_name(request.country or ""))
        operator = self.names.operator(rules.normalise_name(request.operator or ""))
        service = self.names.service(rules.normalise_name(request.service or ""))
        # Checked before the names: a bad prefix list or currency is an ERROR either way.
        order = dispatch.make_order(
            rent=False,
            country=country or "-",
            operator=operator,
            service=service or "-",
            prefixes=request.exceptionPhoneSet,
            amount=request.sum,
            currency_code=request.currency,
        )
        if country is None or operator is None or service is None or service not in self.offered:
            return 200, NO_NUMBERS  # never advertised here: nothing to issue, not an error
        operation = await dispatch.issue(self.store, self.name, order, self.clock)
        if operation is None:
            return 200, NO_NUMBERS
        return 200, {"status": "SUCCESS", "number": int(operation.phone), "activationId": operation.id}

    async def finish(self, request: Request) -> tuple[int, Payload]:
        activation = dispatch.operation_id(request.activationId)
        status = dispatch.finish_status(request.status)
        outcome = await dispatch.finish(self.store, self.name, activation, status, None, self.clock, FINISH)
        if outcome is FinishOutcome.UNKNOWN:
            return self.envelope(404, f"unknown activationId {activation}")
        return 200, SUCCESS  # a repeat too: HUB resends when our answer was late (test 1)
