"""Builders with sensible defaults: override only what a test is about."""

from __future__ import annotations

import itertools
from typing import Any

from simgate.domain.model import NumberSpec, Operation, OperationKind, Order
from simgate.domain.read_model import OperationQuery
from simgate.domain.types import (
    ANY_OPERATOR,
    CountryName,
    Kopecks,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from simgate.storage.ports import Reports

_serial = itertools.count(1)


def make_spec(**overrides: Any) -> NumberSpec:
    """A Russian beeline SIM with a fresh phone number unless told otherwise."""
    values: dict[str, Any] = {
        "phone": PhoneNumber(f"7928{next(_serial):07d}"),
        "country": CountryName("russia"),
        "operator": OperatorName("beeline"),
        "port": "",
        "rentable": True,
        "enabled": True,
    }
    values.update(overrides)
    return NumberSpec(**values)


def make_order(**overrides: Any) -> Order:
    values: dict[str, Any] = {
        "kind": OperationKind.ACTIVATION,
        "country": CountryName("russia"),
        "operator": ANY_OPERATOR,
        "service": ServiceName("telegram"),
        "exception_prefixes": (),
        "offered": Kopecks(1250),
    }
    values.update(overrides)
    if values["kind"] is OperationKind.RENT and "service" not in overrides:
        values["service"] = None
    return Order(**values)


def recent_operations(reports: Reports, limit: int = 100_000) -> list[Operation]:
    """Every operation, newest first, as the console lists them."""
    return [report.operation for report in reports.operations(OperationQuery(limit=limit)).items]


def make_operation(**overrides: Any) -> Operation:
    """An open telegram activation on a Russian beeline number unless told otherwise."""
    values: dict[str, Any] = {
        "id": OperationId(7),
        "marketplace": "onlinesim",
        "kind": OperationKind.ACTIVATION,
        "number_id": NumberId(1),
        "phone": PhoneNumber("79281234567"),
        "country": CountryName("russia"),
        "operator": OperatorName("beeline"),
        "service": ServiceName("telegram"),
        "offered": None,
        "opened_at": 1.0,
    }
    values.update(overrides)
    return Operation(**values)
