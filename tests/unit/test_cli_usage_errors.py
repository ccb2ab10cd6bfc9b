"""A mistyped command or option is one line on stderr, exit 2, like every other simgate error;
help stays as it was."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from simgate.cli import app

MISTAKES = {
    ("serve", "--prot", "8081"): "simgate: no such option: --prot (did you mean --port?); "
    "see `simgate serve --help`",
    ("numbrs", "list"): "simgate: no such command: numbrs (did you mean numbers?); see `simgate --help`",
    ("numbers", "lst"): "simgate: no such command: lst (did you mean list?); see `simgate numbers --help`",
    ("--confg", "s.toml", "status"): "simgate: no such option: --confg (did you mean --config?); "
    "see `simgate --help`",
    ("numbers", "why"): "simgate: missing argument 'phone'; see `simgate numbers why --help`",
    ("operations", "list", "--frobnicate"): "simgate: no such option: --frobnicate; "
    "see `simgate operations list --help`",
}


@pytest.mark.parametrize("args", list(MISTAKES), ids=" ".join)
def test_a_mistake_is_one_line_on_stderr_and_exit_2(args: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, list(args), prog_name="simgate")
    assert result.exit_code == 2, result.output
    assert result.stderr == MISTAKES[args] + "\n"
    assert result.stdout == ""


def test_a_bad_value_names_the_option_on_one_line() -> None:
    result = CliRunner().invoke(app, ["sms", "list", "--limit", "many"], prog_name="simgate")
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("simgate: invalid value for '--limit': ")
    assert line.endswith("; see `simgate sms list --help`")
    assert "╭" not in result.output


def test_help_is_still_the_boxed_help() -> None:
    result = CliRunner().invoke(app, ["serve", "--help"], prog_name="simgate", env={"COLUMNS": "100"})
    assert result.exit_code == 0
    assert "Usage: simgate serve [OPTIONS]" in result.stdout
    assert "╭─ Options" in result.stdout
    bare = CliRunner().invoke(app, ["numbers"], prog_name="simgate")
    assert bare.exit_code == 2  # click's status for a group run without its command
    assert "Usage: simgate numbers" in bare.stdout
    assert bare.stderr == ""
