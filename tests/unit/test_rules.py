"""The marketplace's rules as pure functions (spec 5, 6 and 8): prefixes, matching, counts, sales."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simgate.domain import rules
from simgate.domain.errors import DomainError, InvalidPrefix
from simgate.domain.model import (
    CountryAvailability,
    ExcludedCount,
    FinishStatus,
    GroupCount,
    Number,
    OperationKind,
)
from simgate.domain.types import (
    ANY_OPERATOR,
    RENT_SERVICE,
    CountryName,
    NumberId,
    OperationId,
    OperatorName,
    PhoneNumber,
    ServiceName,
)
from tests.factories import make_operation, make_order

TELEGRAM = ServiceName("telegram")
VK = ServiceName("vkcom")


def make_number(**overrides: Any) -> Number:
    values: dict[str, Any] = {
        "id": NumberId(1),
        "phone": PhoneNumber("79281234567"),
        "country": CountryName("russia"),
        "operator": OperatorName("beeline"),
        "port": "goip1/1",
        "rentable": True,
        "enabled": True,
        "online": True,
        "open_operation_id": None,
        "last_issued_at": None,
    }
    values.update(overrides)
    return Number(**values)


# --- normalise_name -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"), [("RENT", "rent"), (" Germany ", "germany"), ("beeline", "beeline"), ("", "")]
)
def test_normalise_name_is_case_and_space_insensitive(raw: str, expected: str) -> None:
    assert rules.normalise_name(raw) == expected


# --- normalise_prefixes ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, [], ()])
def test_no_prefixes_means_no_restriction(raw: list[int | str] | None) -> None:
    assert rules.normalise_prefixes(raw) == ()


def test_prefixes_as_integers_become_digit_strings() -> None:
    assert rules.normalise_prefixes([46950]) == ("46950",)


def test_prefixes_as_strings_keep_their_digits() -> None:
    assert rules.normalise_prefixes(["7918", "79281"]) == ("7918", "79281")


def test_integer_and_string_forms_of_one_prefix_collapse() -> None:
    assert rules.normalise_prefixes([7918, "7918", " 7918 "]) == ("7918",)


def test_plus_and_spaces_are_stripped_from_string_prefixes() -> None:
    assert rules.normalise_prefixes(["+46950", " +7918 "]) == ("46950", "7918")


def test_string_prefix_keeps_a_leading_zero() -> None:
    # A string is compared digit by digit: dropping the zero would widen the exclusion.
    assert rules.normalise_prefixes(["0049"]) == ("0049",)


def test_a_shorter_prefix_absorbs_the_longer_ones_it_covers() -> None:
    assert rules.normalise_prefixes(["79281", 7928, "792831", "7918"]) == ("7918", "7928")


@pytest.mark.parametrize(
    "bad",
    [["79a1"], [""], ["+"], [-7918], ["79 18"], ["٧٩١٨"], ["7918", "x"], [" "], ["7.9"]],
)
def test_items_that_are_not_digit_prefixes_are_refused(bad: list[int | str]) -> None:
    with pytest.raises(InvalidPrefix):
        rules.normalise_prefixes(bad)


@pytest.mark.parametrize("flag", [True, False])
def test_booleans_are_refused_not_read_as_one_or_zero(flag: bool) -> None:
    with pytest.raises(InvalidPrefix, match="boolean"):
        rules.normalise_prefixes([flag])


def test_invalid_prefix_is_a_domain_error_rendered_as_4xx() -> None:
    assert issubclass(InvalidPrefix, DomainError)


def test_too_many_prefixes_are_refused() -> None:
    with pytest.raises(InvalidPrefix, match="at most"):
        rules.normalise_prefixes([str(10_000 + i) for i in range(rules.MAX_PREFIXES + 1)])


def test_a_long_exception_list_is_normalised_quickly() -> None:
    raw = [str(100_000 + i) for i in range(4_000)]
    # This process's CPU time, not the wall clock: a loaded machine stretches the latter by
    # whatever others run, while a quadratic pass over 4,000 prefixes costs seconds of CPU
    # anywhere (the linear one: ~5 ms).
    started = time.process_time()
    prefixes = rules.normalise_prefixes(raw)
    cpu = time.process_time() - started
    assert len(prefixes) == 4_000
    assert cpu < 0.25, f"{cpu:.2f} s of CPU for 4,000 prefixes"


# --- excluded_by_prefix: the table of spec 8.3 ----------------------------------------------

SPEC_8_3 = [
    ([46950], "46950123456", True),
    ([46950], "46951123456", False),
    (["7918", "79281"], "79181234567", True),
    (["7918", "79281"], "79281234567", True),
    (["7918", "79281"], "79291234567", False),
    ([792831], "79283100000", True),
    ([], "79283100000", False),
    (None, "46950123456", False),
]


@pytest.mark.parametrize(("raw", "phone", "excluded"), SPEC_8_3)
def test_spec_8_3_examples(raw: list[int | str] | None, phone: str, excluded: bool) -> None:
    prefixes = rules.normalise_prefixes(raw)
    assert rules.excluded_by_prefix(PhoneNumber(phone), prefixes) is excluded


def test_prefix_is_matched_at_the_start_only() -> None:
    assert not rules.excluded_by_prefix(PhoneNumber("79281234567"), ("1234",))


DIGITS = "0123456789"
prefix_item = st.one_of(
    st.integers(min_value=0, max_value=10**12),
    st.text(DIGITS, min_size=1, max_size=8),
    st.text(DIGITS, min_size=1, max_size=8).map(lambda d: "+" + d),
)


@st.composite
def phones_and_prefixes(draw: st.DrawFn) -> tuple[list[int | str], list[str]]:
    raw = draw(st.lists(prefix_item, max_size=8))
    digits = [str(item).lstrip("+") for item in raw]
    # Phones built on the prefixes (and their neighbours) make matches likely, not rare.
    phones = draw(
        st.lists(
            st.one_of(
                st.text(DIGITS, min_size=8, max_size=15),
                st.sampled_from(digits or ["7"]).flatmap(
                    lambda p: st.text(DIGITS, max_size=8).map(lambda tail: (p + tail)[:15])
                ),
                st.sampled_from(digits or ["7"]).map(lambda p: p[:-1]),
            ),
            min_size=1,
            max_size=10,
        )
    )
    return raw, phones


@given(phones_and_prefixes())
@settings(max_examples=150, deadline=None)
def test_normalisation_never_drops_or_adds_coverage(case: tuple[list[int | str], list[str]]) -> None:
    raw, phones = case
    prefixes = rules.normalise_prefixes(raw)
    for phone in phones:
        expected = any(phone.startswith(str(item).lstrip("+")) for item in raw)
        assert rules.excluded_by_prefix(PhoneNumber(phone), prefixes) is expected, (raw, prefixes, phone)


@given(st.lists(prefix_item, max_size=12))
@settings(max_examples=200, deadline=None)
def test_normalised_prefixes_are_minimal_sorted_and_stable(raw: list[int | str]) -> None:
    prefixes = rules.normalise_prefixes(raw)
    assert list(prefixes) == sorted(set(prefixes))
    for a in prefixes:
        assert not any(a != b and a.startswith(b) for b in prefixes)
    assert rules.normalise_prefixes(list(prefixes)) == prefixes


# --- matches_order ----------------------------------------------------------------------------


def test_a_free_number_matches_an_order_for_its_country() -> None:
    assert rules.matches_order(make_number(), make_order(), ())


@pytest.mark.parametrize(
    "overrides",
    [
        {"enabled": False},
        {"online": False},
        {"open_operation_id": OperationId(3)},
        {"country": CountryName("germany")},
    ],
)
def test_disabled_offline_busy_or_foreign_numbers_never_match(overrides: dict[str, Any]) -> None:
    number = make_number(**overrides)
    assert not rules.matches_order(number, make_order(), ())
    assert not rules.matches_order(number, make_order(kind=OperationKind.RENT), ())


def test_operator_any_matches_every_operator_including_unknown() -> None:
    for operator in ("beeline", "mts", ""):
        number = make_number(operator=OperatorName(operator))
        assert rules.matches_order(number, make_order(operator=ANY_OPERATOR), ())


def test_a_named_operator_matches_only_itself() -> None:
    order = make_order(operator=OperatorName("mts"))
    assert rules.matches_order(make_number(operator=OperatorName("mts")), order, ())
    assert not rules.matches_order(make_number(operator=OperatorName("beeline")), order, ())
    assert not rules.matches_order(make_number(operator=OperatorName("")), order, ())


def test_exception_prefixes_exclude_matching_numbers() -> None:
    number = make_number(phone=PhoneNumber("79281234567"))
    assert not rules.matches_order(number, make_order(exception_prefixes=("7928",)), ())
    assert rules.matches_order(number, make_order(exception_prefixes=("7929",)), ())
    assert not rules.matches_order(
        number, make_order(kind=OperationKind.RENT, exception_prefixes=("79281",)), ()
    )


def test_an_activation_skips_a_number_sold_for_that_service_only() -> None:
    number = make_number()
    assert not rules.matches_order(number, make_order(service=TELEGRAM), [TELEGRAM])
    assert not rules.matches_order(number, make_order(service=TELEGRAM), {TELEGRAM, VK})
    assert rules.matches_order(number, make_order(service=VK), [TELEGRAM])


def test_rent_needs_a_rentable_number() -> None:
    order = make_order(kind=OperationKind.RENT)
    assert rules.matches_order(make_number(rentable=True), order, ())
    assert not rules.matches_order(make_number(rentable=False), order, ())


def test_an_activation_may_use_a_number_that_is_not_rentable() -> None:
    assert rules.matches_order(make_number(rentable=False), make_order(), ())


def test_rent_ignores_services_the_number_was_sold_for() -> None:
    order = make_order(kind=OperationKind.RENT)
    assert rules.matches_order(make_number(), order, [TELEGRAM, VK])


def test_is_free_and_state() -> None:
    assert rules.is_free(make_number())
    assert make_number().state == "free"
    assert make_number(open_operation_id=OperationId(1)).state == "busy"
    assert make_number(online=False, open_operation_id=OperationId(1)).state == "offline"
    assert make_number(enabled=False, online=False).state == "disabled"
    assert not rules.is_free(make_number(online=False))


# --- tally_availability -----------------------------------------------------------------------

SERVICES = (TELEGRAM, VK)


def g(country: str, operator: str, free: int, rentable: int) -> GroupCount:
    return GroupCount(CountryName(country), OperatorName(operator), free, rentable)


def x(country: str, operator: str, service: str, excluded: int) -> ExcludedCount:
    return ExcludedCount(CountryName(country), OperatorName(operator), ServiceName(service), excluded)


def as_dict(countries: list[CountryAvailability]) -> dict[str, dict[str, dict[str, int]]]:
    return {
        str(c.country): {
            str(op): {str(s): n for s, n in counts.items()} for op, counts in c.operator_map.items()
        }
        for c in countries
    }


def test_any_is_the_sum_over_operators() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("germany", "vodafone", 4, 1), g("germany", "telekom", 3, 3)], [], SERVICES
        )
    )
    assert result == {
        "germany": {
            "any": {"telegram": 7, "vkcom": 7},
            "telekom": {"telegram": 3, "vkcom": 3},
            "vodafone": {"telegram": 4, "vkcom": 4},
        }
    }


def test_numbers_with_unknown_operator_count_under_any_only() -> None:
    result = as_dict(
        rules.tally_availability([g("russia", "", 2, 2), g("russia", "mts", 1, 0)], [], SERVICES)
    )
    assert result["russia"] == {"any": {"telegram": 3, "vkcom": 3}, "mts": {"telegram": 1, "vkcom": 1}}
    assert "" not in result["russia"]


def test_a_country_with_only_unknown_operators_still_has_any() -> None:
    result = as_dict(rules.tally_availability([g("sweden", "", 5, 0)], [], SERVICES))
    assert result == {"sweden": {"any": {"telegram": 5, "vkcom": 5}}}


def test_sold_numbers_are_subtracted_per_service() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("russia", "mts", 3, 0), g("russia", "", 2, 0)],
            [x("russia", "mts", "telegram", 2), x("russia", "", "vkcom", 1)],
            SERVICES,
        )
    )
    assert result["russia"]["mts"] == {"telegram": 1, "vkcom": 3}
    assert result["russia"]["any"] == {"telegram": 3, "vkcom": 4}


def test_exclusions_for_services_not_offered_change_nothing() -> None:
    result = as_dict(
        rules.tally_availability([g("russia", "mts", 3, 0)], [x("russia", "mts", "tiktok", 3)], SERVICES)
    )
    assert result["russia"]["mts"] == {"telegram": 3, "vkcom": 3}


def test_every_offered_service_appears_with_an_explicit_zero() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("russia", "mts", 0, 0), g("germany", "o2", 1, 0)],
            [x("germany", "o2", "telegram", 1)],
            SERVICES,
        )
    )
    assert result["russia"] == {"any": {"telegram": 0, "vkcom": 0}, "mts": {"telegram": 0, "vkcom": 0}}
    assert result["germany"]["o2"] == {"telegram": 0, "vkcom": 1}
    assert result["germany"]["any"] == {"telegram": 0, "vkcom": 1}


def test_counts_never_go_negative() -> None:
    result = as_dict(
        rules.tally_availability([g("russia", "mts", 1, 0)], [x("russia", "mts", "telegram", 5)], SERVICES)
    )
    assert result["russia"]["mts"]["telegram"] == 0
    assert result["russia"]["any"]["telegram"] == 0


def test_rent_key_only_when_asked() -> None:
    groups = [g("russia", "mts", 3, 2), g("russia", "", 4, 1)]
    plain = as_dict(rules.tally_availability(groups, [], SERVICES))
    assert all(RENT_SERVICE not in counts for counts in plain["russia"].values())
    rent = as_dict(rules.tally_availability(groups, [], SERVICES, with_rent=True))
    assert rent["russia"]["mts"] == {"telegram": 3, "vkcom": 3, "rent": 2}
    assert rent["russia"]["any"] == {"telegram": 7, "vkcom": 7, "rent": 3}


def test_rent_only_answer_has_no_services() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("russia", "mts", 3, 2)], [], SERVICES, with_services=False, with_rent=True
        )
    )
    assert result == {"russia": {"any": {"rent": 2}, "mts": {"rent": 2}}}


def test_rent_counts_ignore_sold_exclusions() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("russia", "mts", 2, 2)], [x("russia", "mts", "telegram", 2)], SERVICES, with_rent=True
        )
    )
    assert result["russia"]["mts"]["rent"] == 2
    assert result["russia"]["mts"]["telegram"] == 0


def test_countries_are_kept_apart() -> None:
    result = as_dict(
        rules.tally_availability(
            [g("russia", "mts", 1, 1), g("germany", "mts", 5, 0)], [x("germany", "mts", "vkcom", 1)], SERVICES
        )
    )
    assert result["russia"]["any"] == {"telegram": 1, "vkcom": 1}
    assert result["germany"]["any"] == {"telegram": 5, "vkcom": 4}


def test_a_service_listed_twice_is_counted_once() -> None:
    result = as_dict(rules.tally_availability([g("russia", "mts", 2, 0)], [], [TELEGRAM, TELEGRAM]))
    assert result["russia"]["any"]["telegram"] == result["russia"]["mts"]["telegram"] == 2


COUNTRIES = ["russia", "germany", "sweden"]
OPERATORS = ["", "mts", "beeline", "tele2"]
SERVICE_POOL = ["telegram", "vkcom", "whatsapp", "google"]


@st.composite
def tallies(draw: st.DrawFn) -> tuple[list[GroupCount], list[ExcludedCount], list[ServiceName]]:
    keys = draw(
        st.lists(st.tuples(st.sampled_from(COUNTRIES), st.sampled_from(OPERATORS)), unique=True, max_size=8)
    )
    groups: list[GroupCount] = []
    excluded: list[ExcludedCount] = []
    for country, operator in keys:
        free = draw(st.integers(0, 30))
        groups.append(g(country, operator, free, draw(st.integers(0, free))))
        for service in draw(st.lists(st.sampled_from(SERVICE_POOL), unique=True)):
            excluded.append(x(country, operator, service, draw(st.integers(0, free))))
    services = draw(st.lists(st.sampled_from(SERVICE_POOL), unique=True, min_size=1))
    return groups, excluded, [ServiceName(s) for s in services]


@given(tallies(), st.booleans())
@settings(max_examples=150, deadline=None)
def test_any_equals_the_sum_of_every_group_for_every_service(
    case: tuple[list[GroupCount], list[ExcludedCount], list[ServiceName]], with_rent: bool
) -> None:
    groups, excluded, services = case
    result = as_dict(rules.tally_availability(groups, excluded, services, with_rent=with_rent))
    minus = {(e.country, e.operator, e.service): e.excluded for e in excluded}
    expected: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
    for group in groups:
        per_op: dict[str, int] = {
            s: max(0, group.free - minus.get((group.country, group.operator, s), 0)) for s in services
        }
        if with_rent:
            per_op[RENT_SERVICE] = group.rentable
        any_map = expected[group.country]["any"]
        for service, n in per_op.items():
            any_map[service] = any_map.get(service, 0) + n
        if group.operator:
            expected[group.country][group.operator] = per_op
    assert result == {c: dict(ops) for c, ops in expected.items()}
    for country, ops in result.items():
        named = [counts for operator, counts in ops.items() if operator != "any"]
        if all(group.operator for group in groups if group.country == country):
            for name in ops["any"]:
                assert ops["any"][name] == sum(counts[name] for counts in named)
        keys = {*services, *([RENT_SERVICE] if with_rent else [])}
        assert all(set(counts) == keys for counts in ops.values())
        assert all(isinstance(n, int) and n >= 0 for counts in ops.values() for n in counts.values())


# --- is_sale / documented statuses ------------------------------------------------------------


def test_only_status_3_on_an_activation_is_a_sale() -> None:
    activation = make_operation()
    assert rules.is_sale(activation, 3)
    assert rules.is_sale(activation, FinishStatus.SOLD)
    for status in (1, 2, 4, 5, 0, -3, 99):
        assert not rules.is_sale(activation, status), status


def test_a_rent_finished_with_status_3_is_not_a_service_sale() -> None:
    rent = make_operation(kind=OperationKind.RENT, service=None)
    assert not rules.is_sale(rent, 3)


def test_documented_statuses() -> None:
    assert [s for s in range(-1, 8) if rules.is_documented_status(s)] == [1, 3, 4, 5]
