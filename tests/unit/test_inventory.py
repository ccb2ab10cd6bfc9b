"""Inventory CSV (CONTRACT.md): every row checked, rejects reported by line, import idempotent."""

from __future__ import annotations

import io

import pytest

from simgate.domain.errors import InvalidNumber
from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.inventory import InventoryFileError, import_numbers, parse_csv
from simgate.services.phones import normalise_phone
from simgate.storage.ports import Store

NOW = 1_700_000_000.0


def number_spec(
    phone: str, country: str, operator: str, port: str = "", rentable: bool = True, enabled: bool = True
) -> NumberSpec:
    return NumberSpec(
        PhoneNumber(phone), CountryName(country), OperatorName(operator), port, rentable, enabled
    )


def parse(text: str) -> tuple[list[NumberSpec], list[tuple[int, str, str]]]:
    specs, rejected = parse_csv(io.StringIO(text, newline=""))
    return specs, [(r.line, r.phone, r.reason) for r in rejected]


def test_a_plain_file_loads_every_row() -> None:
    specs, rejected = parse(
        "phone,country,operator,port,rent,enabled\n"
        "79281234567,russia,beeline,goip1/1,1,1\n"
        "4915112345678,germany,vodafone,goip1/2,0,0\n"
    )
    assert rejected == []
    assert specs == [
        number_spec("79281234567", "russia", "beeline", "goip1/1", True, True),
        number_spec("4915112345678", "germany", "vodafone", "goip1/2", False, False),
    ]


def test_columns_may_come_in_any_order_and_any_case() -> None:
    specs, rejected = parse(
        "Enabled,Operator,PORT,Phone,Country,rent\n0,MTS, goip2/3 ,79161234567,Russia,0\n"
    )
    assert rejected == []
    assert specs == [number_spec("79161234567", "russia", "mts", "goip2/3", False, False)]


def test_optional_columns_default_to_rentable_and_enabled() -> None:
    specs, rejected = parse("phone,country,operator\n79281234567,russia,beeline\n")
    assert rejected == []
    assert specs == [number_spec("79281234567", "russia", "beeline", "", True, True)]


def test_empty_flags_take_the_default() -> None:
    specs, _ = parse("phone,country,operator,rent,enabled\n79281234567,russia,beeline,,\n")
    assert (specs[0].rentable, specs[0].enabled) == (True, True)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+79281234567", "79281234567"),
        ("+7 928 123 45 67", "79281234567"),
        ("7 (928) 123-45-67", "79281234567"),
        (" 4915112345678 ", "4915112345678"),
    ],
)
def test_plus_spaces_and_punctuation_in_phones_are_dropped(raw: str, expected: str) -> None:
    country = "germany" if expected.startswith("49") else "russia"
    specs, rejected = parse(f'phone,country,operator\n"{raw}",{country},x\n')
    assert rejected == []
    assert specs[0].phone == expected


def test_operator_empty_or_any_is_counted_under_any_only() -> None:
    specs, rejected = parse("phone,country,operator\n79281234567,russia,\n79281234568,russia,ANY\n")
    assert rejected == []
    assert [s.operator for s in specs] == ["", ""]


def test_a_byte_order_mark_decoded_by_utf_8_sig_is_harmless() -> None:
    raw = "\ufeffphone,country,operator\n79281234567,russia,beeline\n".encode()
    stream = io.TextIOWrapper(io.BytesIO(raw), encoding="utf-8-sig", newline="")
    specs, rejected = parse_csv(stream)
    assert rejected == []
    assert [s.phone for s in specs] == ["79281234567"]


def test_a_byte_order_mark_left_in_the_text_is_ignored() -> None:
    specs, rejected = parse("\ufeffphone,country,operator\n79281234567,russia,beeline\n")
    assert rejected == []
    assert [s.phone for s in specs] == ["79281234567"]


def test_unknown_country_is_rejected_with_its_line() -> None:
    specs, rejected = parse(
        "phone,country,operator\n79281234567,russia,beeline\n79281234568,atlantis,beeline\n"
    )
    assert [s.phone for s in specs] == ["79281234567"]
    assert len(rejected) == 1
    line, phone, reason = rejected[0]
    assert (line, phone) == (3, "79281234568")
    assert "atlantis" in reason


def test_a_german_number_filed_under_russia_is_rejected() -> None:
    specs, rejected = parse("phone,country,operator\n4915112345678,russia,beeline\n")
    assert specs == []
    assert rejected[0][0] == 2
    assert "+49" in rejected[0][2]
    assert "+7" in rejected[0][2]


@pytest.mark.parametrize(
    ("phone", "why"),
    [
        ("7928abc4567", "digits"),
        ("7928", "8 to 15"),
        ("7928123456789012", "8 to 15"),
        ("", "digits"),
        ("٧٩٢٨١٢٣٤٥٦٧", "digits"),
        ("0001234567", "country code"),
    ],
)
def test_bad_phones_are_rejected_with_a_reason(phone: str, why: str) -> None:
    specs, rejected = parse(f'phone,country,operator\n"{phone}",russia,beeline\n')
    assert specs == []
    assert len(rejected) == 1
    assert why in rejected[0][2]


def test_normalise_phone_checks_the_numbering_plan() -> None:
    assert normalise_phone("+46 70 123 45 67", "SE") == "46701234567"
    with pytest.raises(InvalidNumber, match="not a possible number"):
        normalise_phone("792812345")
    with pytest.raises(InvalidNumber, match=r"\+46"):
        normalise_phone("79281234567", "SE")


def test_duplicate_phones_in_one_file_are_reported_with_both_lines() -> None:
    specs, rejected = parse(
        "phone,country,operator\n"
        "79281234567,russia,beeline\n"
        "79281234568,russia,beeline\n"
        "+7 928 123-45-67,russia,mts\n"
    )
    assert [s.phone for s in specs] == ["79281234567", "79281234568"]
    assert specs[0].operator == "beeline"
    assert rejected == [(4, "+7 928 123-45-67", "duplicate of line 2")]


def test_a_rejected_row_does_not_count_as_the_first_of_a_duplicate() -> None:
    specs, rejected = parse(
        "phone,country,operator\n79281234567,atlantis,beeline\n79281234567,russia,beeline\n"
    )
    assert [s.phone for s in specs] == ["79281234567"]
    assert [line for line, _, _ in rejected] == [2]


@pytest.mark.parametrize(("column", "value"), [("rent", "maybe"), ("rent", "2"), ("enabled", "on?")])
def test_bad_flags_are_rejected_naming_the_column(column: str, value: str) -> None:
    specs, rejected = parse(f"phone,country,operator,{column}\n79281234567,russia,beeline,{value}\n")
    assert specs == []
    assert rejected[0][0] == 2
    assert column in rejected[0][2]
    assert value in rejected[0][2]


def test_a_bad_operator_name_is_rejected() -> None:
    specs, rejected = parse('phone,country,operator\n79281234567,russia,"bee line!"\n')
    assert specs == []
    assert "operator" in rejected[0][2]


def test_line_numbers_count_blank_lines_in_the_file() -> None:
    specs, rejected = parse("phone,country,operator\n\n79281234567,russia,beeline\n\nbad,russia,x\n")
    assert len(specs) == 1
    assert [line for line, _, _ in rejected] == [5]


def test_good_rows_load_beside_rejected_ones() -> None:
    specs, rejected = parse(
        "phone,country,operator\n"
        "79281234567,russia,beeline\n"
        "abc,russia,beeline\n"
        "46701234567,sweden,telia\n"
        "4915112345678,russia,mts\n"
    )
    assert [s.phone for s in specs] == ["79281234567", "46701234567"]
    assert [line for line, _, _ in rejected] == [3, 5]


@pytest.mark.parametrize(
    ("header", "missing"),
    [("phone,country\n", "operator"), ("country,operator,port\n", "phone"), ("PHONE\n", "country")],
)
def test_a_missing_required_column_rejects_the_file(header: str, missing: str) -> None:
    with pytest.raises(InventoryFileError, match=missing):
        parse(header + "79281234567,russia,beeline\n")


def test_an_empty_file_is_an_error() -> None:
    with pytest.raises(InventoryFileError, match="empty"):
        parse("")


# --- importing ------------------------------------------------------------------------------


def test_import_adds_then_reports_unchanged(store: Store) -> None:
    specs, _ = parse(
        "phone,country,operator,port\n79281234567,russia,beeline,p1\n46701234567,sweden,telia,p2\n"
    )
    first = store.run(lambda uow: import_numbers(uow, specs, NOW))
    assert (first.added, first.updated, first.unchanged) == (2, 0, 0)
    second = store.run(lambda uow: import_numbers(uow, specs, NOW + 1))
    assert (second.added, second.updated, second.unchanged) == (0, 0, 2)
    assert len(store.run(lambda uow: uow.numbers.search())) == 2


def test_reimport_updates_changed_rows(store: Store) -> None:
    specs, _ = parse("phone,country,operator\n79281234567,russia,beeline\n79281234568,russia,mts\n")
    store.run(lambda uow: import_numbers(uow, specs, NOW))
    changed, _ = parse(
        "phone,country,operator,rent,port\n79281234567,russia,beeline,0,p9\n79281234568,russia,mts,1,\n"
    )
    report = store.run(lambda uow: import_numbers(uow, changed, NOW + 1))
    assert (report.added, report.updated, report.unchanged) == (0, 1, 1)
    number = store.run(lambda uow: uow.numbers.get_by_phone(changed[0].phone))
    assert number is not None
    assert (number.rentable, number.port) == (False, "p9")


@pytest.mark.parametrize("delimiter", [",", ";", "\t"])
def test_the_delimiter_is_taken_from_the_header(delimiter: str) -> None:
    text = "\ufeffphone,country,operator,port,rent\n79281234567,russia,beeline,goip1/1,0\n"
    specs, rejected = parse(text.replace(",", delimiter))
    assert rejected == []
    assert specs == [number_spec("79281234567", "russia", "beeline", "goip1/1", rentable=False)]


def test_a_semicolon_file_keeps_commas_inside_fields() -> None:
    specs, rejected = parse("phone;country;operator;port\n79281234567;russia;beeline;rack 1, slot 2\n")
    assert rejected == []
    assert specs[0].port == "rack 1, slot 2"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), ("0", False), ("yes", True), ("No", False), ("TRUE", True), ("false", False)],
)
def test_flags_accept_exactly_what_the_readme_lists(value: str, expected: bool) -> None:
    specs, rejected = parse(
        f"phone,country,operator,rent,enabled\n79281234567,russia,beeline,{value},{value}\n"
    )
    assert rejected == []
    assert (specs[0].rentable, specs[0].enabled) == (expected, expected)


@pytest.mark.parametrize("value", ["y", "n", "on", "2"])
def test_other_flag_words_are_rejected(value: str) -> None:
    specs, rejected = parse(f"phone,country,operator,rent\n79281234567,russia,beeline,{value}\n")
    assert specs == []
    assert "rent must be 1 or 0 (or yes/no, true/false)" in rejected[0][2]


def test_a_row_with_more_values_than_the_header_is_rejected_not_cut_short() -> None:
    specs, rejected = parse(
        "phone,country,operator,port\n"
        "79281234567,russia,beeline,goip1/1,0,0\n"  # rent and enabled, but no such columns
        "79281234568,russia,mts,goip1/2,,\n"  # trailing empty cells: harmless
        '79281234569,russia,mts,"bank 1, slot 2"\n'  # a quoted comma is one value
    )
    assert rejected == [
        (
            2,
            "79281234567",
            "6 values but the header has 4 columns (put a value containing ',' in double quotes,"
            " or name the column)",
        )
    ]
    assert [spec.port for spec in specs] == ["goip1/2", "bank 1, slot 2"]
