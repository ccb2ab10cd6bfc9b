"""tally_groups (GET_SERVICES' answer from grouped counts) against the plain tally it replaced."""

from __future__ import annotations

from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from simgate.domain import rules
from simgate.domain.model import CountryAvailability, ExcludedCount, GroupCount, OperatorMap, ServiceCounts
from simgate.domain.types import ANY_OPERATOR, RENT_SERVICE, CountryName, OperatorName, ServiceName


def plain_tally(
    groups: list[GroupCount],
    excluded: list[ExcludedCount],
    services: list[ServiceName],
    with_services: bool,
    with_rent: bool,
) -> list[CountryAvailability]:
    """The tally as it was written before (one dictionary step per group and service)."""
    services = list(dict.fromkeys(services))
    minus: dict[tuple[CountryName, OperatorName, ServiceName], int] = defaultdict(int)
    for row in excluded:
        minus[(row.country, row.operator, row.service)] += row.excluded
    by_country: dict[CountryName, OperatorMap] = {}
    for group in sorted(groups, key=lambda g: (g.country, g.operator)):
        operator_map = by_country.setdefault(group.country, {})
        any_counts = operator_map.setdefault(ANY_OPERATOR, {})
        counts: ServiceCounts = {}
        if with_services:
            for service in services:
                n = max(0, group.free - minus[(group.country, group.operator, service)])
                counts[service] = n
                any_counts[service] = any_counts.get(service, 0) + n
        if with_rent:
            counts[RENT_SERVICE] = group.rentable
            any_counts[RENT_SERVICE] = any_counts.get(RENT_SERVICE, 0) + group.rentable
        if group.operator not in ("", ANY_OPERATOR):
            operator_map[group.operator] = counts
    return [CountryAvailability(country, ops) for country, ops in by_country.items()]


COUNTRIES = st.sampled_from([CountryName("russia"), CountryName("germany"), CountryName("sweden")])
OPERATORS = st.sampled_from([OperatorName(o) for o in ("", "any", "mts", "beeline", "o2")])
SERVICE = st.sampled_from([ServiceName(s) for s in ("telegram", "vkcom", "rent", "whatsapp")])
GROUPS = st.lists(
    st.builds(GroupCount, COUNTRIES, OPERATORS, st.integers(0, 9), st.integers(0, 9)), max_size=8
)
EXCLUDED = st.lists(st.builds(ExcludedCount, COUNTRIES, OPERATORS, SERVICE, st.integers(1, 12)), max_size=12)


@settings(max_examples=400, deadline=None)
@given(GROUPS, EXCLUDED, st.lists(SERVICE, max_size=5), st.booleans(), st.booleans())
def test_the_same_answer_as_the_plain_tally(
    groups: list[GroupCount],
    excluded: list[ExcludedCount],
    services: list[ServiceName],
    with_services: bool,
    with_rent: bool,
) -> None:
    expected = plain_tally(groups, excluded, services, with_services, with_rent)
    found = rules.tally_availability(
        groups, excluded, services, with_services=with_services, with_rent=with_rent
    )
    # Key order too: the answer's JSON is the same bytes.
    assert [(c.country, list(c.operator_map.items())) for c in found] == [
        (c.country, list(c.operator_map.items())) for c in expected
    ]
    for f, e in zip(found, expected, strict=True):
        for operator, counts in e.operator_map.items():
            assert list(f.operator_map[operator].items()) == list(counts.items())
