"""The shipped catalogue: simgate's own country names (with their ISO region) and service names.

They follow the first marketplace's spelling; every other marketplace maps them to its own
(marketplaces/<name>/, name maps)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache
from importlib.resources import files

from simgate.domain.types import CountryName, ServiceName


def _lines(name: str) -> list[str]:
    text = files("simgate.data").joinpath(name).read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


@cache
def countries() -> dict[CountryName, str]:
    """Country name -> ISO 3166 region code."""
    pairs = (line.split("\t") for line in _lines("countries.tsv"))
    return {CountryName(name.strip()): region.strip() for name, region in pairs}


@cache
def services() -> tuple[ServiceName, ...]:
    return tuple(ServiceName(name) for name in _lines("services.txt"))


def not_in_catalogue(unknown: Iterable[str]) -> str:
    """The settings' refusal of service names, each with the closest catalogue name: a typo
    in SIMGATE_<NAME>_SERVICES or a group stops start-up, and should say what was meant."""
    known = services()
    named = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        named.append(f"{name} (did you mean {close[0]}?)" if close else name)
    return f"not in the service catalogue: {', '.join(named)}"
