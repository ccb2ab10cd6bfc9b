"""/api/openapi.json, generated from the same msgspec Structs the admin API answers with."""

from __future__ import annotations

from functools import cache
from typing import Any

import msgspec

from simgate.dashboard import schemas as s

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
    ("get", "/api/numbers/{id}/why", "Why this SIM is not offered on each marketplace (for a service)",
     s.WhyOut, [*_ID, ("marketplace", "string", "one marketplace (default: every enabled one)"),
                ("service", "string", "one service (default: any)")], None),
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
        ("marketplace", "string", "one marketplace: onlinesim, smshub, ..."),
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
