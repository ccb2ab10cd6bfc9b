"""Shared command helpers: misspelt variables, one-line errors, the database the owner reads."""

from __future__ import annotations

from simgate.commands.common import OTHER_VARIABLES, describe_error, hide_password, misspelt_variables


def test_a_misspelt_variable_is_named_with_the_closest_real_one() -> None:
    environ = {
        "SIMGATE_ONLINESIM_PUSHURL": "http://x",
        "SIMGATE_PUSH_RETRY_SECONDS": "5",
        "SIMGATE_CONFIG": "/etc/simgate.toml",
        "SIMGATE_ZZZZZZZZZZZZZZZZ": "1",
        "PATH": "/bin",
    }
    assert misspelt_variables(environ) == [
        "SIMGATE_ONLINESIM_PUSHURL is not a simgate setting; did you mean SIMGATE_ONLINESIM_PUSH_URL?",
        "SIMGATE_ZZZZZZZZZZZZZZZZ is not a simgate setting",
    ]


def test_the_known_names_are_easy_to_extend() -> None:
    assert "SIMGATE_DEBUG" in OTHER_VARIABLES
    environ = {"SIMGATE_SMSHUB_KEY": "k", "SIMGATE_SMSHUB_PUSHURL": "http://x"}
    assert misspelt_variables(environ, {"SIMGATE_SMSHUB_KEY", "SIMGATE_SMSHUB_PUSH_URL"}) == [
        "SIMGATE_SMSHUB_PUSHURL is not a simgate setting; did you mean SIMGATE_SMSHUB_PUSH_URL?"
    ]


def test_a_password_never_reaches_the_owner_s_terminal() -> None:
    assert (
        hide_password("postgresql://farm:s3cret@db:5432/simgate") == "postgresql://farm:***@db:5432/simgate"
    )
    assert hide_password("postgresql://farm@db/simgate") == "postgresql://farm@db/simgate"


def test_a_driver_error_becomes_one_line_without_a_library_link() -> None:
    class OperationalError(Exception):
        pass

    class Wrapped(Exception):
        orig = OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 1 failed: Connection refused\n'
            "\tIs the server running on that host and accepting TCP/IP connections?"
        )

    line = describe_error(
        Wrapped("(psycopg.OperationalError) ... (Background on this error at: https://sqlalche.me/e/20/e3q8)")
    )
    assert "\n" not in line
    assert line.startswith("cannot use the database")
    assert line.endswith('connection to server at "127.0.0.1", port 1 failed: Connection refused')
    assert "sqlalche.me" not in line
