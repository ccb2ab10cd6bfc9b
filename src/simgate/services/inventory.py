"""Inventory: parse the operator's CSV (CONTRACT.md) and load it, idempotently."""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from simgate import catalogue
from simgate.domain import lanes
from simgate.domain.errors import InvalidNumber
from simgate.domain.model import NumberSpec
from simgate.domain.rules import normalise_name
from simgate.domain.types import ANY_OPERATOR, CountryName, OperatorName, Timestamp
from simgate.services.lanes import settle
from simgate.services.phones import normalise_phone
from simgate.storage.ports import UnitOfWork

REQUIRED = ("phone", "country", "operator")
# Exactly what the README lists; a spreadsheet writes TRUE/FALSE, a person yes/no.
TRUE, FALSE = {"1", "yes", "true"}, {"0", "no", "false"}
DELIMITERS = (",", ";", "\t")
OPERATOR_NAME = re.compile(r"^[a-z0-9][a-z0-9_.\-]{0,63}$")


class InventoryFileError(ValueError):
    """The file as a whole cannot be read (no header, a required column missing)."""


@dataclass(frozen=True, slots=True)
class Rejection:
    line: int
    phone: str
    reason: str


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)


def _flag(value: str | None, column: str, default: bool) -> bool:
    text = (value or "").strip().lower()
    if not text:
        return default
    if text in TRUE:
        return True
    if text in FALSE:
        return False
    raise InvalidNumber(f"{column} must be 1 or 0 (or yes/no, true/false), not {value!r}")


def parse_row(row: Mapping[str, str | None]) -> NumberSpec:
    country = CountryName(normalise_name(row.get("country") or ""))
    regions = catalogue.countries()
    if country not in regions:
        raise InvalidNumber(f"unknown country {row.get('country')!r} (see `simgate countries`)")
    operator = normalise_name(row.get("operator") or "")
    if operator == ANY_OPERATOR:
        operator = ""  # 'any' is the total, never a real operator
    if operator and not OPERATOR_NAME.match(operator):
        raise InvalidNumber(f"operator {row.get('operator')!r} is not an Onlinesim operator name")
    port = (row.get("port") or "").strip()
    if len(port) > 200:
        raise InvalidNumber("port is longer than 200 characters")
    return NumberSpec(
        phone=normalise_phone(row.get("phone") or "", regions[country]),
        country=country,
        operator=OperatorName(operator),
        port=port,
        rentable=_flag(row.get("rent"), "rent", True),
        enabled=_flag(row.get("enabled"), "enabled", True),
        marketplaces=_marketplaces(row.get("marketplaces")),
    )


KNOWN_MARKETPLACES = frozenset({"onlinesim", "smshub", "grizzly", "herosms"})
"""The names CONTRACT.md lists; a misspelt one would quietly take the SIM off sale there."""


def _marketplaces(value: str | None) -> frozenset[str]:
    names = lanes.parse_allowed(normalise_name(value or ""))
    unknown = sorted(names - KNOWN_MARKETPLACES)
    if unknown:
        raise InvalidNumber(
            f"marketplaces: unknown {', '.join(map(repr, unknown))}"
            f" (known: {', '.join(sorted(KNOWN_MARKETPLACES))}, separated by '|')"
        )
    return names


def parse_csv(stream: TextIO) -> tuple[list[NumberSpec], list[Rejection]]:
    """Every row is checked; a bad row is reported with its line number, the rest load.

    The delimiter is the header's: Excel saves "CSV" with `;` where the decimal mark is a
    comma (most of Europe and Russia), and "Unicode text" with tabs.
    """
    first = stream.readline()
    delimiter = max(DELIMITERS, key=first.count)  # ties (a one-column header) keep ","
    reader = csv.DictReader(itertools.chain([first], stream), delimiter=delimiter)
    # A byte-order mark can survive decoding (a file read as plain utf-8): drop it.
    header = [normalise_name(name.lstrip("\ufeff")) for name in (reader.fieldnames or [])]
    if not header:
        raise InventoryFileError("the file is empty; it needs a header row: phone,country,operator")
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise InventoryFileError(f"the header lacks required column(s): {', '.join(missing)}")
    reader.fieldnames = header
    specs: list[NumberSpec] = []
    rejected: list[Rejection] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        raw_phone = (row.get("phone") or "").strip()
        # More values than the header has columns: a value holding the delimiter that was not
        # quoted, or columns left out of the header. Either way the values are shifted, and
        # loading the row would drop what the owner wrote. Trailing empty cells are harmless.
        extra = row.get(None) or []  # DictReader puts the surplus under None (its restkey)
        if any(value.strip() for value in extra):
            rejected.append(
                Rejection(
                    line,
                    raw_phone,
                    f"{len(header) + len(extra)} values but the header has {len(header)} columns"
                    f" (put a value containing {delimiter!r} in double quotes, or name the column)",
                )
            )
            continue
        try:
            spec = parse_row(row)
        except InvalidNumber as error:
            rejected.append(Rejection(line, raw_phone, str(error)))
            continue
        if spec.phone in seen:
            rejected.append(Rejection(line, raw_phone, f"duplicate of line {seen[spec.phone]}"))
            continue
        seen[spec.phone] = line
        specs.append(spec)
    return specs, rejected


def import_numbers(uow: UnitOfWork, specs: Iterable[NumberSpec], now: Timestamp) -> ImportReport:
    report = ImportReport()
    for spec in specs:
        outcome = uow.numbers.upsert(spec, now)
        setattr(report, outcome, getattr(report, outcome) + 1)
    # New SIMs that several marketplaces may sell go into the lanes furthest below their
    # targets now, not at the next rebalancing round (an unchanged file places nothing).
    if report.added or report.updated:
        settle(uow, now)
    return report
