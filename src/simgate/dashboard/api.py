"""The admin API under /api/: JSON listings and actions for the dashboard and for scripts.

Reads go through the read model (Store.report), a read-only snapshot off the write path;
actions through the use cases in services/admin.py, one transaction each, whose outcome is
then read from the read model. Every answer is a msgspec Struct from schemas.py;
query parameters are parsed in query_params.py, and /api/openapi.json (openapi.py) is
generated from the same Structs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simgate.dashboard import query_params as param
from simgate.dashboard import schemas as s
from simgate.dashboard.auth import NOT_CONFIGURED, ConsoleAuth
from simgate.dashboard.hardware import HardwareReport
from simgate.dashboard.openapi import openapi_document
from simgate.dashboard.query_params import DAY, MAX_LIMIT, BadParam, day_starts
from simgate.domain.errors import DomainError
from simgate.domain.read_model import (
    DELIVERY_STATES,
    NUMBER_STATES,
    OPERATION_STATUSES,
    STREAK_WINDOW,
    DeliveryQuery,
    GroupStats,
    MessageQuery,
    NumberQuery,
    OperationQuery,
    timeline,
)
from simgate.domain.rules import normalise_name
from simgate.domain.types import MAX_ID, Kopecks, NumberId, OperationId, ServiceName, Timestamp
from simgate.http.body import BodyError, read_body
from simgate.services import admin
from simgate.services.explain import plain
from simgate.services.why import why_not_offered
from simgate.storage.ports import Reports, Store, UnitOfWork

JSON = "application/json; charset=utf-8"
MAX_BODY = 4096
ALERTS_SHOWN = 20
"""Open alerts on the overview; the total says how many more (one per failing SIM can be many)."""

Handler = Callable[[Request], Awaitable[Response]]


def reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(payload),
        status_code=status,
        media_type=JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return reply(status, s.Error(message), headers)


# -- the API -------------------------------------------------------------------------------


@dataclass
class AdminApi:
    store: Store
    auth: ConsoleAuth
    clock: Callable[[], Timestamp]
    hardware: HardwareReport

    def routes(self) -> list[BaseRoute]:
        g = self.guarded
        return [
            Route("/api/openapi.json", self.openapi, methods=["GET"]),
            Route("/api/overview", g(self.overview), methods=["GET"]),
            Route("/api/numbers", g(self.numbers), methods=["GET"]),
            Route("/api/numbers/{id:int}", g(self.number), methods=["GET"]),
            Route("/api/numbers/{id:int}/why", g(self.why), methods=["GET"]),
            Route("/api/numbers/{id:int}/enable", g(self.enable), methods=["POST"]),
            Route("/api/numbers/{id:int}/disable", g(self.disable), methods=["POST"]),
            Route("/api/numbers/{id:int}/blacklist", g(self.block), methods=["POST"]),
            Route("/api/numbers/{id:int}/blacklist/{service}", g(self.unblock), methods=["DELETE"]),
            Route("/api/operations", g(self.operations), methods=["GET"]),
            Route("/api/operations/{id:int}", g(self.operation), methods=["GET"]),
            Route("/api/sms", g(self.messages), methods=["GET"]),
            Route("/api/deliveries", g(self.deliveries), methods=["GET"]),
            Route("/api/deliveries/{id:int}", g(self.delivery), methods=["GET"]),
            Route("/api/deliveries/{id:int}/retry", g(self.retry), methods=["POST"]),
            Route("/api/stats", g(self.stats), methods=["GET"]),
            Route("/api/hardware", g(self.hardware_status), methods=["GET"]),
            Route("/api/services", g(self.services), methods=["GET"]),
        ]

    def guarded(self, handler: Handler) -> Handler:
        async def endpoint(request: Request) -> Response:
            if not self.auth.configured:
                return error(503, NOT_CONFIGURED)
            if await self.auth.api_caller(request) is None:
                if await self.auth.session(request) is not None:
                    return error(403, "missing or wrong X-CSRF-Token for a change made with a session")
                return error(
                    401,
                    "missing or wrong admin token (Authorization: Bearer $SIMGATE_ADMIN_TOKEN)",
                    {"WWW-Authenticate": 'Bearer realm="simgate admin"'},
                )
            ids = [v for v in request.path_params.values() if isinstance(v, int)]
            if any(not 1 <= v <= MAX_ID for v in ids):
                # No row can have it, and the database cannot even hold it: a 404, not a 500.
                return error(404, f"no such id {ids[0]}")
            try:
                param.check_query(request.scope["query_string"], request.query_params.multi_items())
                return await handler(request)
            except BadParam as problem:
                return error(400, str(problem))
            except admin.NotFound as problem:
                return error(404, str(problem))
            except (admin.Conflict, admin.RetryRefused) as problem:
                return error(409, str(problem))
            except DomainError as problem:
                return error(400, str(problem))

        return endpoint

    # -- reads -----------------------------------------------------------------------------

    async def overview(self, request: Request) -> Response:
        tz = param.tz(request.query_params)
        now = self.clock()
        starts = day_starts(now, 30, tz)

        def work(r: Reports) -> s.OverviewOut:
            states = r.number_states()
            statuses = r.operation_statuses(now - DAY)
            by_status = dict.fromkeys(OPERATION_STATUSES, 0)
            for c in statuses:
                by_status[c.status] += c.count
            today = r.earnings(starts[-1])
            losing = r.numbers(NumberQuery(losing=True, streak_since=now - STREAK_WINDOW, limit=10))
            alerts, alerts_total = s.alerts_out(r.firing(ALERTS_SHOWN), self.store.write_error, now)
            markets = s.marketplaces_out(
                r.marketplace_stats(starts[-1], now - DAY),
                r.marketplace_stats(starts[-1], starts[0]),
                r.free_by_lane(),
            )
            return s.OverviewOut(
                now=now,
                numbers=s.NumberStatesOut(**states, total=sum(states.values())),
                operations_24h=by_status,
                operations_24h_by_kind=s.status_counts_out(statuses),
                pushes=s.outbox_out(r.outbox(), now),
                earnings_today_kopecks=today.earnings,
                sold_today=today.sold,
                earnings_30d=[s.day_out(d, tz) for d in r.stats(starts, groups=False).days],
                losing_total=losing.total,
                losing=[s.number_out(n) for n in losing.items],
                by_marketplace=markets,
                alerts=alerts,
                alerts_total=alerts_total,
            )

        return reply(200, await self.store.report(work))

    async def numbers(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = param.page(q)
        query = NumberQuery(
            state=param.choice(q, "state", NUMBER_STATES), country=param.text(q, "country"),
            operator=param.text(q, "operator"), port=param.text(q, "port"), search=param.text(q, "search"),
            losing=bool(param.boolean(q, "losing")), streak_since=self.clock() - STREAK_WINDOW,
            limit=limit, offset=offset,
        )  # fmt: skip
        page = await self.store.report(lambda r: r.numbers(query))
        items = [s.number_out(r) for r in page.items]
        return reply(200, s.NumberPage(items=items, total=page.total, limit=limit, offset=offset))

    async def number(self, request: Request) -> Response:
        number_id, since = NumberId(request.path_params["id"]), self.clock() - STREAK_WINDOW
        found = await self.store.report(lambda r: r.number(number_id, since))
        if found is None:
            return error(404, f"no number {number_id}")
        return reply(200, s.NumberAction(number=s.number_out(found)))

    async def why(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        market, wanted = (
            param.text(request.query_params, "marketplace"),
            param.text(request.query_params, "service"),
        )
        service = None if wanted is None else ServiceName(normalise_name(wanted))

        def work(uow: UnitOfWork) -> s.WhyOut | str | None:
            number = uow.numbers.get(number_id)
            known = {m.name for m in uow.lanes.marketplaces()}
            if number is None:
                return None
            if market is not None and market.lower() not in known:
                return f"marketplace {market!r} is not one this farm knows ({', '.join(sorted(known))})"
            answer = why_not_offered(
                uow, number_id, None if market is None else [market.lower()], service, now
            )
            assert answer is not None
            return s.WhyOut(
                number_id=number_id, phone=number.phone, service=service,
                marketplaces=[
                    s.MarketplaceWhyOut(marketplace=name, offered=not reasons, reasons=[
                        s.ReasonOut(rule=r.rule, text=r.text, until=r.until) for r in reasons
                    ])
                    for name, reasons in answer.items()
                ],
            )  # fmt: skip

        found = await self.store.read(work)
        if found is None:
            return error(404, f"no number {number_id}")
        if isinstance(found, str):
            return error(400, found)
        return reply(200, found)

    async def operations(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = param.page(q)
        number_id = param.optional_integer(q, "number_id")
        query = OperationQuery(
            kind=param.choice(q, "kind", ("activation", "rent")),
            state=param.choice(q, "state", ("open", "finished")), service=param.text(q, "service"),
            status=param.choice(q, "status", OPERATION_STATUSES), marketplace=param.text(q, "marketplace"),
            number_id=None if number_id is None else NumberId(number_id),
            search=param.text(q, "search"), since=param.epoch(q, "since"), until=param.epoch(q, "until"),
            limit=limit, offset=offset,
        )  # fmt: skip
        page = await self.store.report(lambda r: r.operations(query))
        items = [s.operation_out(r) for r in page.items]
        return reply(200, s.OperationPage(items=items, total=page.total, limit=limit, offset=offset))

    async def operation(self, request: Request) -> Response:
        operation_id = OperationId(request.path_params["id"])
        now = self.clock()

        def work(r: Reports) -> s.OperationDetail | None:
            found = r.operation(operation_id)
            if found is None:
                return None
            number = r.number(found.operation.number_id, now - STREAK_WINDOW)
            messages = r.messages(MessageQuery(operation_id=operation_id, limit=MAX_LIMIT)).items
            return s.OperationDetail(
                operation=s.operation_out(found),
                number=None if number is None else s.number_out(number),
                messages=[s.message_out(m, now) for m in reversed(messages)],
                timeline=s.timeline_out(timeline(found.operation, messages)),
            )

        detail = await self.store.report(work)
        if detail is None:
            return error(404, f"no operation {operation_id}")
        return reply(200, detail)

    async def messages(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = param.page(q)
        number_id, operation_id = (
            param.optional_integer(q, "number_id"),
            param.optional_integer(q, "operation_id"),
        )
        query = MessageQuery(
            number_id=None if number_id is None else NumberId(number_id),
            operation_id=None if operation_id is None else OperationId(operation_id),
            routed=param.boolean(q, "routed"), delivery_state=param.choice(q, "delivery", DELIVERY_STATES),
            search=param.text(q, "search"), limit=limit, offset=offset,
        )  # fmt: skip
        now = self.clock()
        page = await self.store.report(lambda r: r.messages(query))
        items = [s.message_out(m, now) for m in page.items]
        return reply(200, s.MessagePage(items=items, total=page.total, limit=limit, offset=offset))

    async def deliveries(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = param.page(q)
        operation_id = param.optional_integer(q, "operation_id")
        query = DeliveryQuery(
            state=param.choice(q, "state", DELIVERY_STATES),
            operation_id=None if operation_id is None else OperationId(operation_id),
            limit=limit, offset=offset,
        )  # fmt: skip
        now = self.clock()
        page = await self.store.report(lambda r: r.deliveries(query))
        items = [s.delivery_out(d, now) for d in page.items]
        return reply(200, s.DeliveryPage(items=items, total=page.total, limit=limit, offset=offset))

    async def delivery(self, request: Request) -> Response:
        delivery_id = int(request.path_params["id"])
        found = await self.store.report(lambda r: r.delivery(delivery_id))
        if found is None:
            return error(404, f"no delivery {delivery_id}")
        return reply(200, s.DeliveryAction(delivery=s.delivery_out(found, self.clock())))

    async def stats(self, request: Request) -> Response:
        q = request.query_params
        days, tz, top = (
            param.integer(q, "days", 30, 1, 366),
            param.tz(q),
            param.integer(q, "top", 20, 1, MAX_LIMIT),
        )
        now = self.clock()
        starts = day_starts(now, days, tz)

        def work(r: Reports) -> s.StatsOut:
            stats = r.stats(starts, top)
            total = GroupStats(
                "total", sum(d.opened for d in stats.days), sum(d.finished for d in stats.days),
                sum(d.sold for d in stats.days), Kopecks(sum(d.earnings for d in stats.days)),
            )  # fmt: skip
            return s.StatsOut(
                since=starts[0],
                tz_offset_minutes=tz,
                days=[s.day_out(d, tz) for d in stats.days],
                by_service=[s.group_out(g) for g in stats.by_service],
                by_country=[s.group_out(g) for g in stats.by_country],
                by_number=[s.group_out(g) for g in stats.by_number],
                totals=s.group_out(total),
                outbox=s.outbox_out(r.outbox(), now),
            )

        return reply(200, await self.store.report(work))

    async def hardware_status(self, request: Request) -> Response:
        # In-memory snapshots read on the event loop the drivers run on: no database, no lock.
        return reply(200, self.hardware())

    async def services(self, request: Request) -> Response:
        return reply(200, s.ServicesOut(services=list(admin.blockable_services())))

    # -- actions ---------------------------------------------------------------------------

    async def _number_action(
        self, number_id: NumberId, now: Timestamp, work: Callable[[UnitOfWork], None]
    ) -> Response:
        await self.store.transact(work)
        report = await self.store.report(lambda r: admin.number_report(r, number_id, now))
        return reply(200, s.NumberAction(number=s.number_out(report)))

    async def enable(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        return await self._number_action(
            number_id, now, lambda uow: admin.set_enabled(uow, number_id, True, now)
        )

    async def disable(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        return await self._number_action(
            number_id, now, lambda uow: admin.set_enabled(uow, number_id, False, now)
        )

    async def block(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        try:
            body = await read_body(request, MAX_BODY)
        except BodyError as problem:
            return error(problem.status, str(problem))
        try:
            service = msgspec.json.decode(body, type=s.ServiceBody).service
        except msgspec.DecodeError as problem:
            return error(400, f'expected {{"service": "<name>"}}: {plain(problem)}')
        return await self._number_action(
            number_id, now, lambda uow: admin.block_service(uow, number_id, service, now)
        )

    async def unblock(self, request: Request) -> Response:
        number_id, service = NumberId(request.path_params["id"]), str(request.path_params["service"])
        now = self.clock()
        return await self._number_action(
            number_id, now, lambda uow: admin.unblock_service(uow, number_id, service, now)
        )

    async def retry(self, request: Request) -> Response:
        delivery_id, now = int(request.path_params["id"]), self.clock()

        def work(uow: UnitOfWork) -> None:
            if uow.outbox.get(delivery_id) is None:
                raise admin.NotFound(f"no delivery {delivery_id}")
            admin.retry_delivery(uow, delivery_id, now)

        await self.store.transact(work)
        found = await self.store.report(lambda r: r.delivery(delivery_id))
        assert found is not None  # a delivery is never deleted
        return reply(200, s.DeliveryAction(delivery=s.delivery_out(found, now)))

    async def openapi(self, request: Request) -> Response:
        return Response(openapi_document(), media_type=JSON, headers={"Cache-Control": "no-cache"})
