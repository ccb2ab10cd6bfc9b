"""What the simulated marketplace's clients order: a country, operator and service with stock
in the latest GET_SERVICES answer (weighted by the service mix), a price, and sometimes
prefixes to exclude, drawn from numbers the marketplace has seen.
"""

from __future__ import annotations

import random

from simgate.simulator.ledger import Counts, Kind, country_totals
from simgate.simulator.market_config import COUNTRY_FACTOR, PRICES_RUB, MarketplaceConfig


class Demand:
    def __init__(self, config: MarketplaceConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self._known_prefixes: dict[str, list[str]] = {}

    def learn(self, country: str, phone: str) -> None:
        """A number we were issued: its prefixes may be excluded in later orders."""
        known = self._known_prefixes.setdefault(country, [])
        if len(known) < 200:
            known.append(phone)

    def choose(self, remaining: Counts | None, kind: Kind) -> tuple[str, str, str] | None:
        """(country, operator, service) with stock left in `remaining` (what the latest
        GET_SERVICES offered, less our orders since), or None; takes one unit off it."""
        if not remaining:
            return None
        wanted = {"rent": 1.0} if kind == "rent" else dict(self.config.services)
        tail = 0.0 if kind == "rent" else self.config.tail_weight
        options: list[tuple[str, str]] = []
        weights: list[float] = []
        for (country, service), count in country_totals(remaining).items():
            if count <= 0:
                continue
            if self.config.countries and country not in self.config.countries:
                continue
            weight = wanted.get(service, 0.0 if service == "rent" else tail)
            if weight > 0:
                options.append((country, service))
                weights.append(weight * min(count, 50))
        if not options:
            return None
        country, service = self.rng.choices(options, weights)[0]
        operator = "any"
        # Agent protocol: a country is offered under `any` or under named operators, not both.
        named_only = (country, "any", service) not in remaining
        if named_only or self.rng.random() >= self.config.p_any_operator:
            specific = [
                (op, n)
                for (c, op, s), n in remaining.items()
                if c == country and s == service and op != "any" and n > 0
            ]
            if specific:
                operator = self.rng.choices([op for op, _ in specific], [n for _, n in specific])[0]
        remaining[(country, operator, service)] -= 1
        if operator != "any" and not named_only:
            remaining[(country, "any", service)] -= 1
        return country, operator, service

    def price(self, country: str, service: str) -> float:
        names = self.config.names
        base = PRICES_RUB.get(names.service(service), 15.0) * COUNTRY_FACTOR.get(names.country(country), 1.0)
        roubles = min(60.0, max(5.0, base * self.rng.uniform(0.8, 1.2)))
        # At least one hundredth: simgate stores hundredths, and a sale must earn something.
        return max(0.01, round(roubles * self.config.price_factor, self.config.price_decimals))

    def exceptions(self, country: str) -> list[int | str] | None:
        if self.rng.random() >= self.config.p_exception:
            return None
        known = self._known_prefixes.get(country, [])
        prefixes: list[str] = []
        for _ in range(self.rng.randint(1, 3)):
            if known:
                phone = self.rng.choice(known)
                prefixes.append(phone[: self.rng.randint(4, 7)])
        if not prefixes:
            return None
        # Onlinesim sends integers, SMSHUB strings: a partner must take both (spec 8.3).
        as_int = self.rng.random() < self.config.p_exception_ints
        return [int(p) if as_int else p for p in prefixes]
