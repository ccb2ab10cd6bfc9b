"""The admin API under /api/: JSON listings and actions for the dashboard and for scripts.

Reads go through `uow.reports` in a read-only snapshot; actions through the use cases in
services/admin.py, one transaction each. Every answer is a msgspec Struct from schemas.py,
and /api/openapi.json is generated from the same Structs.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from simgate.dashboard import schemas as s
from simgate.dashboard.auth import NOT_CONFIGURED, ConsoleAuth
from simgate.dashboard.hardware import HardwareReport
from simgate.domain.errors import DomainError
from simgate.domain.reports import (
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
from simgate.domain.types import MAX_ID, Kopecks, NumberId, OperationId, Timestamp
from simgate.http.body import BodyError, read_body
from simgate.services import admin
from simgate.services.explain import plain
from simgate.storage.ports import Store, UnitOfWork

JSON = "application/json; charset=utf-8"
DAY = 86400
MAX_LIMIT = 500
MAX_BODY = 4096

Handler = Callable[[Request], Awaitable[Response]]


class BadParam(DomainError):
    pass


def reply(status: int, payload: Any, headers: Mapping[str, str] | None = None) -> Response:
    return Response(
        msgspec.json.encode(payload),
        status_code=status,
        media_type=JSON,
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return reply(status, s.Error(message), headers)


# -- query parameters ----------------------------------------------------------------------


def _text(q: Mapping[str, str], name: str) -> str | None:
    value = q.get(name, "").strip()
    if len(value) > 200:
        raise BadParam(f"{name} is longer than 200 characters")
    if "\x00" in value:
        raise BadParam(f"{name} contains a NUL character")  # PostgreSQL would raise DataError
    return value or None


def _int(q: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = q.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParam(f"{name} must be an integer, not {raw!r}") from None
    if not low <= value <= high:
        raise BadParam(f"{name} must be between {low} and {high}")
    return value


def _optional_int(q: Mapping[str, str], name: str) -> int | None:
    return _int(q, name, 0, 1, 2**62) if q.get(name, "").strip() else None


def _float(q: Mapping[str, str], name: str) -> float | None:
    raw = q.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise BadParam(f"{name} must be seconds since the epoch, not {raw!r}") from None
    if not math.isfinite(value):
        raise BadParam(f"{name} must be a finite number")
    return value


def _choice(q: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str | None:
    value = _text(q, name)
    if value is not None and value not in choices:
        raise BadParam(f"{name} must be one of {', '.join(choices)}")
    return value


def _bool(q: Mapping[str, str], name: str) -> bool | None:
    value = _text(q, name)
    if value is None:
        return None
    if value.lower() in ("1", "true", "yes"):
        return True
    if value.lower() in ("0", "false", "no"):
        return False
    raise BadParam(f"{name} must be true or false")


def _page(q: Mapping[str, str]) -> tuple[int, int]:
    return _int(q, "limit", 50, 1, MAX_LIMIT), _int(q, "offset", 0, 0, 2**31)


def _tz(q: Mapping[str, str]) -> int:
    """Minutes east of UTC for 'today' and day boundaries (the browser sends its own)."""
    return _int(q, "tz", 0, -14 * 60, 14 * 60)


def day_starts(now: Timestamp, days: int, tz_minutes: int) -> list[Timestamp]:
    offset = tz_minutes * 60
    today = math.floor((now + offset) / DAY) * DAY - offset
    return [float(today - (days - 1 - i) * DAY) for i in range(days)]


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
        tz = _tz(request.query_params)
        now = self.clock()
        starts = day_starts(now, 30, tz)

        def work(uow: UnitOfWork) -> s.OverviewOut:
            r = uow.reports
            states = r.number_states()
            statuses = r.operation_statuses(now - DAY)
            by_status = dict.fromkeys(OPERATION_STATUSES, 0)
            for c in statuses:
                by_status[c.status] += c.count
            today = r.earnings(starts[-1])
            losing = r.numbers(NumberQuery(losing=True, streak_since=now - STREAK_WINDOW, limit=10))
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
            )

        return reply(200, await self.store.read(work))

    async def numbers(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = _page(q)
        query = NumberQuery(
            state=_choice(q, "state", NUMBER_STATES), country=_text(q, "country"),
            operator=_text(q, "operator"), port=_text(q, "port"), search=_text(q, "search"),
            losing=bool(_bool(q, "losing")), streak_since=self.clock() - STREAK_WINDOW,
            limit=limit, offset=offset,
        )  # fmt: skip
        page = await self.store.read(lambda uow: uow.reports.numbers(query))
        items = [s.number_out(r) for r in page.items]
        return reply(200, s.NumberPage(items=items, total=page.total, limit=limit, offset=offset))

    async def number(self, request: Request) -> Response:
        number_id, since = NumberId(request.path_params["id"]), self.clock() - STREAK_WINDOW
        found = await self.store.read(lambda uow: uow.reports.number(number_id, since))
        if found is None:
            return error(404, f"no number {number_id}")
        return reply(200, s.NumberAction(number=s.number_out(found)))

    async def operations(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = _page(q)
        number_id = _optional_int(q, "number_id")
        query = OperationQuery(
            kind=_choice(q, "kind", ("activation", "rent")),
            state=_choice(q, "state", ("open", "finished")), service=_text(q, "service"),
            status=_choice(q, "status", OPERATION_STATUSES),
            number_id=None if number_id is None else NumberId(number_id),
            search=_text(q, "search"), since=_float(q, "since"), until=_float(q, "until"),
            limit=limit, offset=offset,
        )  # fmt: skip
        page = await self.store.read(lambda uow: uow.reports.operations(query))
        items = [s.operation_out(r) for r in page.items]
        return reply(200, s.OperationPage(items=items, total=page.total, limit=limit, offset=offset))

    async def operation(self, request: Request) -> Response:
        operation_id = OperationId(request.path_params["id"])
        now = self.clock()

        def work(uow: UnitOfWork) -> s.OperationDetail | None:
            found = uow.reports.operation(operation_id)
            if found is None:
                return None
            number = uow.reports.number(found.operation.number_id, now - STREAK_WINDOW)
            messages = uow.reports.messages(MessageQuery(operation_id=operation_id, limit=MAX_LIMIT)).items
            return s.OperationDetail(
                operation=s.operation_out(found),
                number=None if number is None else s.number_out(number),
                messages=[s.message_out(m, now) for m in reversed(messages)],
                timeline=s.timeline_out(timeline(found.operation, messages)),
            )

        detail = await self.store.read(work)
        if detail is None:
            return error(404, f"no operation {operation_id}")
        return reply(200, detail)

    async def messages(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = _page(q)
        number_id, operation_id = _optional_int(q, "number_id"), _optional_int(q, "operation_id")
        query = MessageQuery(
            number_id=None if number_id is None else NumberId(number_id),
            operation_id=None if operation_id is None else OperationId(operation_id),
            routed=_bool(q, "routed"), delivery_state=_choice(q, "delivery", DELIVERY_STATES),
            search=_text(q, "search"), limit=limit, offset=offset,
        )  # fmt: skip
        now = self.clock()
        page = await self.store.read(lambda uow: uow.reports.messages(query))
        items = [s.message_out(m, now) for m in page.items]
        return reply(200, s.MessagePage(items=items, total=page.total, limit=limit, offset=offset))

    async def deliveries(self, request: Request) -> Response:
        q = request.query_params
        limit, offset = _page(q)
        operation_id = _optional_int(q, "operation_id")
        query = DeliveryQuery(
            state=_choice(q, "state", DELIVERY_STATES),
            operation_id=None if operation_id is None else OperationId(operation_id),
            limit=limit, offset=offset,
        )  # fmt: skip
        now = self.clock()
        page = await self.store.read(lambda uow: uow.reports.deliveries(query))
        items = [s.delivery_out(d, now) for d in page.items]
        return reply(200, s.DeliveryPage(items=items, total=page.total, limit=limit, offset=offset))

    async def delivery(self, request: Request) -> Response:
        delivery_id = int(request.path_params["id"])
        found = await self.store.read(lambda uow: uow.reports.delivery(delivery_id))
        if found is None:
            return error(404, f"no delivery {delivery_id}")
        return reply(200, s.DeliveryAction(delivery=s.delivery_out(found, self.clock())))

    async def stats(self, request: Request) -> Response:
        q = request.query_params
        days, tz, top = _int(q, "days", 30, 1, 366), _tz(q), _int(q, "top", 20, 1, MAX_LIMIT)
        now = self.clock()
        starts = day_starts(now, days, tz)

        def work(uow: UnitOfWork) -> s.StatsOut:
            stats = uow.reports.stats(starts, top)
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
                outbox=s.outbox_out(uow.reports.outbox(), now),
            )

        return reply(200, await self.store.read(work))

    async def hardware_status(self, request: Request) -> Response:
        # In-memory snapshots read on the event loop the drivers run on: no database, no lock.
        return reply(200, self.hardware())

    async def services(self, request: Request) -> Response:
        return reply(200, s.ServicesOut(services=list(admin.blockable_services())))

    # -- actions ---------------------------------------------------------------------------

    async def _number_action(self, work: Callable[[UnitOfWork], Any]) -> Response:
        report = await self.store.transact(work)
        return reply(200, s.NumberAction(number=s.number_out(report)))

    async def enable(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        return await self._number_action(lambda uow: admin.set_enabled(uow, number_id, True, now))

    async def disable(self, request: Request) -> Response:
        number_id, now = NumberId(request.path_params["id"]), self.clock()
        return await self._number_action(lambda uow: admin.set_enabled(uow, number_id, False, now))

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
        return await self._number_action(lambda uow: admin.block_service(uow, number_id, service, now))

    async def unblock(self, request: Request) -> Response:
        number_id, service = NumberId(request.path_params["id"]), str(request.path_params["service"])
        now = self.clock()
        return await self._number_action(lambda uow: admin.unblock_service(uow, number_id, service, now))

    async def retry(self, request: Request) -> Response:
        delivery_id, now = int(request.path_params["id"]), self.clock()

        def work(uow: UnitOfWork) -> s.DeliveryOut:
            if uow.reports.delivery(delivery_id) is None:
                raise admin.NotFound(f"no delivery {delivery_id}")
            admin.retry_delivery(uow, delivery_id, now)
            found = uow.reports.delivery(delivery_id)
            assert found is not None
            return s.delivery_out(found, now)

        return reply(200, s.DeliveryAction(delivery=await self.store.transact(work)))

    async def openapi(self, request: Request) -> Response:
        return Response(openapi_document(), media_type=JSON, headers={"Cache-Control": "no-cache"})


# -- OpenAPI -------------------------------------------------------------------------------

_PAGE = [("limit", "integer", "1 to 500, default 50"), ("offset", "integer", "default 0")]
_TZ = [("tz", "integer", "minutes east of UTC for day boundaries, default 0")]
_ID = [("id", "integer", "path")]

ENDPOINTS: list[tuple[str, str, str, type, list[tuple[str, str, str]], type | None]] = [
    ("get", "/api/overview", "The dashboard's overview", s.OverviewOut, _TZ, None),
    ("get", "/api/numbers", "SIM numbers with their results", s.NumberPage, [
        ("state", "string", "free, busy, offline or disabled"), ("country", "string", "exact"),
        ("operator", "string", "exact"), ("port", "string", "substring"),
        ("search", "string", "substring of the phone or the port"),
        ("losing", "boolean", "only SIMs that lose money"), *_PAGE], None),
    ("get", "/api/numbers/{id}", "One SIM number", s.NumberAction, _ID, None),
    ("post", "/api/numbers/{id}/enable", "Offer this SIM again", s.NumberAction, _ID, None),
    ("post", "/api/numbers/{id}/disable", "Stop offering this SIM (an open operation goes on)",
     s.NumberAction, _ID, None),
    ("post", "/api/numbers/{id}/blacklist", "Block a service on this SIM (activations only; rent ignores it)",
     s.NumberAction, _ID, s.ServiceBody),
    ("delete", "/api/numbers/{id}/blacklist/{service}", "Lift a block (a sale cannot be lifted)",
     s.NumberAction, [*_ID, ("service", "string", "path")], None),
    ("get", "/api/operations", "Activations and rents, newest first", s.OperationPage, [
        ("kind", "string", "activation or rent"), ("state", "string", "open or finished"),
        ("service", "string", "a service name, or rent"),
        ("status", "string", "open, sold, cancelled, refunded, not_taken or other"),
        ("number_id", "integer", "one SIM"), ("search", "string", "substring of the phone"),
        ("since", "number", "opened at or after (epoch seconds)"),
        ("until", "number", "opened before (epoch seconds)"), *_PAGE], None),
    ("get", "/api/operations/{id}", "One operation with its SMS, push attempts and timeline",
     s.OperationDetail, _ID, None),
    ("get", "/api/sms", "Received SMS with their routing and every push attempt", s.MessagePage, [
        ("number_id", "integer", "one SIM"), ("operation_id", "integer", "one operation"),
        ("routed", "boolean", "true: reached an operation; false: had none"),
        ("delivery", "string", "pending, delivered, rejected, given_up or failed"),
        ("search", "string", "substring of the phone, the sender or the text"), *_PAGE], None),
    ("get", "/api/deliveries", "Pushes to the marketplace", s.DeliveryPage, [
        ("state", "string", "pending, delivered, rejected, given_up or failed (rejected + given_up)"),
        ("operation_id", "integer", "one operation"), *_PAGE], None),
    ("get", "/api/deliveries/{id}", "One push with every attempt", s.DeliveryAction, _ID, None),
    ("post", "/api/deliveries/{id}/retry",
     "Push a rejected or given-up SMS again (never an acknowledged one)", s.DeliveryAction, _ID, None),
    ("get", "/api/stats", "Earnings and operations per day, service, country and SIM", s.StatsOut, [
        ("days", "integer", "1 to 366, default 30"), *_TZ,
        ("top", "integer", "how many SIMs in by_number, default 20")], None),
    ("get", "/api/hardware", "Each SMS hardware driver: last contact, last error, counters and its SIMs",
     s.HardwareOut, [], None),
    ("get", "/api/services", "The service catalogue: the names a block accepts", s.ServicesOut, [], None),
]  # fmt: skip


@cache
def openapi_document() -> bytes:
    types = tuple(dict.fromkeys([s.Error, *(e[3] for e in ENDPOINTS), s.ServiceBody]))
    schemas, components = msgspec.json.schema_components(types, ref_template="#/components/schemas/{name}")
    ref = dict(zip(types, schemas, strict=True))
    errors = {
        code: {"description": text, "content": {"application/json": {"schema": ref[s.Error]}}}
        for code, text in (
            ("400", "bad parameter"), ("401", "missing or wrong admin token"),
            ("403", "a session change without its CSRF token"), ("404", "not found"),
            ("409", "refused by the farm's state"), ("503", "SIMGATE_ADMIN_TOKEN is not set"),
        )
    }  # fmt: skip
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, answer, params, body in ENDPOINTS:
        operation: dict[str, Any] = {
            "summary": summary,
            "parameters": [
                {
                    "name": name,
                    "in": "path" if where == "path" else "query",
                    "required": where == "path",
                    "schema": {"type": kind},
                    **({} if where == "path" else {"description": where}),
                }
                for name, kind, where in params
            ],
            "responses": {
                "200": {"description": "OK", "content": {"application/json": {"schema": ref[answer]}}},
                **errors,
            },
        }
        if body is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": ref[body]}},
            }
        paths.setdefault(path, {})[method] = operation
    document = {
        "openapi": "3.1.0",
        "info": {
            "title": "simgate admin API",
            "version": "1",
            "description": "The farm owner's API: Authorization: Bearer $SIMGATE_ADMIN_TOKEN. "
            "Money in kopecks (RUB hundredths); times in seconds since the epoch, UTC.",
        },
        "components": {
            "schemas": components,
            "securitySchemes": {"admin": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"admin": []}],
        "paths": paths,
    }
    return msgspec.json.encode(document)
