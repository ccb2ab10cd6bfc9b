"""simgate's names on the way out (GET_SERVICES) and back in (GET_NUMBER), and the `any` rule.

Anything without a name on the marketplace is not advertised there, and an order for a name
we do not know gets NO_NUMBERS: it was never advertised, so refusing it over-reports nothing
(spec/multi-marketplace.md 7).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from simgate.domain.model import CountryAvailability, ServiceCounts
from simgate.domain.types import ANY_OPERATOR, CountryName, OperatorName, ServiceName

log = logging.getLogger("simgate.agent")


@dataclass(frozen=True)
class NameMaps:
    services: Mapping[str, str]
    countries: Mapping[str, str]
    operators: Mapping[str, str]
    modes: Mapping[str, str] = field(default_factory=dict)
    """Per simgate country: 'auto', 'named' or 'any'."""

    back: dict[str, dict[str, str]] = field(init=False, repr=False)
    """The maps reversed, built once: GET_NUMBER reads them on every call."""

    def __post_init__(self) -> None:
        maps = {"services": self.services, "countries": self.countries, "operators": self.operators}
        back = {kind: {theirs: ours for ours, theirs in m.items()} for kind, m in maps.items()}
        object.__setattr__(self, "back", back)

    def service(self, theirs: str) -> ServiceName | None:
        found = self.back["services"].get(theirs)
        return None if found is None else ServiceName(found)

    def country(self, theirs: str) -> CountryName | None:
        found = self.back["countries"].get(theirs)
        return None if found is None else CountryName(found)

    def operator(self, theirs: str) -> OperatorName | None:
        if theirs == ANY_OPERATOR:
            return ANY_OPERATOR
        found = self.back["operators"].get(theirs)
        return None if found is None else OperatorName(found)

    def country_list(
        self, countries: Sequence[CountryAvailability], offered: Sequence[ServiceName]
    ) -> list[dict[str, object]]:
        """GET_SERVICES' countryList in the marketplace's names, one operator mode a country."""
        listed: list[dict[str, object]] = []
        for country in countries:
            theirs = self.countries.get(country.country)
            if theirs is None:
                continue
            operators = self._operators(country, offered)
            if operators:
                listed.append({"country": theirs, "operatorMap": operators})
        return listed

    def _operators(
        self, country: CountryAvailability, offered: Sequence[ServiceName]
    ) -> dict[str, dict[str, int]]:
        named = {op: counts for op, counts in country.operator_map.items() if op != ANY_OPERATOR}
        total = country.operator_map.get(ANY_OPERATOR, {})
        # `any` sums every operator, including numbers whose operator is unknown (''): what
        # the named operators do not account for has no name here.
        unnamed = any(op not in self.operators for op in named) or any(
            total.get(s, 0) > sum(counts.get(s, 0) for counts in named.values()) for s in offered
        )
        mode = self.modes.get(country.country, "auto")
        if mode == "any" or (mode == "auto" and unnamed):
            return {ANY_OPERATOR: self._counts(total, offered)}
        if unnamed:
            log.warning(
                "%s: numbers with an operator the marketplace has no name for are not advertised"
                " (operator_mode named)",
                country.country,
            )
        return {
            self.operators[op]: self._counts(counts, offered)
            for op, counts in named.items()
            if op in self.operators
        }

    def _counts(self, counts: ServiceCounts, offered: Sequence[ServiceName]) -> dict[str, int]:
        return {self.services[s]: counts.get(s, 0) for s in offered if s in self.services}
