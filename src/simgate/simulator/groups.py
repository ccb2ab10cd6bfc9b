"""The exclusion groups simgate ships (HeroSMS's terms): a number sold for one service of a
group is not offered for the others, so "offered again" must not expect it there."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from simgate.domain.ledger import HEROSMS_GROUPS, conflicting
from simgate.domain.types import CountryName, ServiceName

GROUPS = HEROSMS_GROUPS


def group_hidden(sold: Iterable[tuple[str, str]], countries: Mapping[str, str]) -> set[tuple[str, str]]:
    """(phone, simgate service) pairs a sale in `sold` (phone, simgate service) hides."""
    return {
        (phone, other)
        for phone, service in sold
        for other in conflicting(GROUPS, ServiceName(service), CountryName(countries.get(phone, "")))
    }
