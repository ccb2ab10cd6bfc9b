"""commands/tables.py: a table fits the terminal without cutting an id; free text gives way."""

from __future__ import annotations

import io

from rich.cells import cell_len
from rich.console import Console

from simgate.commands.tables import Drop, Field, Shorten, fit, print_table

PHONES = ["4915112345678", "79281234567"]
SMS = "Your Telegram code is 48213. Do not give this code to anyone, even if they say they are from Telegram!"


def fields() -> list[Field]:
    return [
        Field("push", ["1234567", "-"]),
        Field("stored", ["12-03 21:19:15", "12-02 08:00:00"], short=("stored", ["21:19", "12-02"])),
        Field("phone", PHONES),
        Field("country", ["kazakhstan", "russia"]),
        Field("text", [SMS, "[/] not [bold]markup[/bold]"], wants=40),
        Field("operation", ["9876543", "-"]),
        Field("tries", ["1", "0"], justify="right"),
    ]


STEPS = [Drop("tries"), Shorten("stored"), Drop("country"), Drop("stored")]


def printed(width: int) -> list[str]:
    out = io.StringIO()
    console = Console(file=out, width=width, color_system=None)
    print_table(console, fields(), STEPS, footer="2 SMS")
    return out.getvalue().splitlines()


def test_at_80_columns_ids_stay_whole_and_the_text_is_cut_with_an_ellipsis() -> None:
    lines = printed(80)
    assert all(cell_len(line) <= 80 for line in lines), "\n".join(lines)
    rows = [line for line in lines if "4915112345678" in line]
    assert len(rows) == 1, "one row per SMS, never wrapped"
    assert all(f" {value} " in rows[0] for value in ("1234567", "9876543"))
    assert "Your Telegram code is 48213" in rows[0]
    assert "…" in rows[0]
    assert lines[-1] == "2 SMS; hidden at 80 columns: tries, country, stored"


def test_wide_terminals_show_every_column_and_more_of_the_text() -> None:
    wide = printed(200)
    assert wide[-1] == "2 SMS"
    header = next(line for line in wide if "push" in line)
    for name in ("stored", "country", "tries"):
        assert name in header
    assert any(SMS in line for line in wide), "the whole SMS fits in 200 columns"
    middle = printed(100)
    assert "12-03" not in "".join(middle), "the time alone at 100"
    assert "21:19" in "".join(middle)
    assert middle[-1] == "2 SMS; hidden at 100 columns: tries, country"


def test_text_that_looks_like_markup_is_shown_as_written() -> None:
    assert any("[/] not [bold]markup[/bold]" in line for line in printed(200))


def test_a_terminal_narrower_than_the_ids_gets_them_whole_anyway() -> None:
    lines = printed(30)
    assert any("4915112345678" in line and "9876543" in line for line in lines), "\n".join(lines)


def test_a_shortened_column_can_take_a_shorter_header() -> None:
    markets = ["onlinesim", "smshub"]
    shown, dropped = fit(
        [Field("phone", PHONES), Field("marketplace", markets, short=("market", markets))],
        width=30,
        steps=[Shorten("marketplace"), Drop("market")],
    )
    assert [f.header for f in shown] == ["phone", "market"]
    assert dropped == []
