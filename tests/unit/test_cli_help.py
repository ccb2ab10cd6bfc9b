"""`--help` as an owner reads it: nothing swallowed, and each command's summary on its own line."""

from __future__ import annotations

from typer.testing import CliRunner

from simgate.cli import app

WIDE = {"COLUMNS": "200"}  # one line per entry, so a line can be asserted whole


def test_an_option_help_keeps_its_default_in_words() -> None:
    # Square brackets are Rich markup: "[default: 8080, ...]" vanished from the help.
    result = CliRunner().invoke(app, ["demo", "--help"], env=WIDE)
    assert result.exit_code == 0
    assert "Port of the demo server (default: 8080, or a free one if taken)" in result.output


def test_command_summaries_are_one_sentence_not_a_broken_paragraph() -> None:
    listings = {
        ("numbers", "--help"): ("why", "Why a number is not offered on a marketplace (for a service)"),
        ("--help",): ("backup", "on PostgreSQL, print the pg_dump to run."),
    }
    for args, (command, summary) in listings.items():
        output = CliRunner().invoke(app, list(args), env=WIDE).output
        line = next(line for line in output.splitlines() if line.lstrip("│ ").startswith(command + " "))
        assert summary in line, output
        after = output.splitlines()[output.splitlines().index(line) + 1]
        # A continuation is indented to the help column; the next command starts at column 2.
        assert after[2:3].strip(), f"{command}'s summary runs onto a second line:\n{after}"
