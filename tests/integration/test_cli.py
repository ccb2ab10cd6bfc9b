"""The real `simgate` console script (CONTRACT.md): exit 0, or non-zero with one line on stderr.

Each run starts a Python process (about a second), so the independent failure cases run side by
side once per module and the tests then read their results.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import simgate
from simgate.domain.model import Number
from simgate.services.inventory import import_numbers
from simgate.services.operations import issue_number
from simgate.storage import schema
from simgate.storage.ports import Store
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import free_port
from tests.factories import make_order, make_spec

SIMGATE = str(Path(sys.executable).with_name("simgate"))
pytestmark = pytest.mark.slow

GOOD_CSV = (
    "phone,country,operator,port,rent\n"
    "79281234567,russia,beeline,goip1/1,1\n"
    "+49 151 12345678,germany,vodafone,goip1/2,0\n"
)
REJECTS_CSV = (
    "phone,country,operator\n"
    "79281234567,russia,beeline\n"
    "4915112345678,russia,mts\n"
    "79281234567,russia,mts\n"
    "79281234599,atlantis,x\n"
)


def environment(tmp_path: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    # No COLUMNS: a cron job or a pipe has none, and that is how operators' scripts run us.
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith("SIMGATE_") and k not in ("COLUMNS", "LINES")
    }
    environ["SIMGATE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'simgate.db'}"
    environ.update(env or {})
    return environ


def run(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIMGATE, *args],
        cwd=tmp_path,
        env=environment(tmp_path, env),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def write(folder: Path, name: str, data: str | bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def open_db(folder: Path) -> Store:
    return SQLiteStore(str(folder / "simgate.db"))


def numbers_in(folder: Path) -> dict[str, Number]:
    if not (folder / "simgate.db").exists():
        return {}
    store = open_db(folder)
    try:
        return {n.phone: n for n in store.run(lambda uow: uow.numbers.search())}
    finally:
        store.close()


def one_line_reason(result: subprocess.CompletedProcess[str]) -> str:
    """The last stderr line is the one-line reason; anything before it is a log record."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines, "no reason on stderr"
    reason = lines[-1]
    assert reason.startswith("simgate: "), result.stderr
    assert "Traceback" not in result.stderr
    return reason


# --- the failure cases, run side by side --------------------------------------------------------


@dataclass(frozen=True)
class Case:
    args: tuple[str, ...]
    env: dict[str, str]
    files: dict[str, str | bytes]
    migrated: bool = False


CASES: dict[str, Case] = {
    "rejected rows": Case(("numbers", "import", "n.csv"), {}, {"n.csv": REJECTS_CSV}, migrated=True),
    "missing column": Case(
        ("numbers", "import", "n.csv"), {}, {"n.csv": "phone,country\n79281234567,russia\n"}
    ),
    "bad retry": Case(("migrate",), {"SIMGATE_PUSH_RETRY_SECONDS": "soon"}, {}),
    "serve without key": Case(("serve", "--port", str(free_port()), "--no-worker"), {}, {}),
    "no database": Case(("numbers", "list"), {}, {}),
    "misspelt variable": Case(("services",), {"SIMGATE_ONLINESIM_PUSHURL": "http://x"}, {}),
    "import without database": Case(("numbers", "import", "n.csv"), {}, {"n.csv": GOOD_CSV}),
    "worker without database": Case(
        ("worker",), {"SIMGATE_ONLINESIM_KEY": "k", "SIMGATE_ONLINESIM_PUSH_URL": "http://127.0.0.1:9"}, {}
    ),
    "bad toml value": Case(
        ("--config", "s.toml", "migrate"), {}, {"s.toml": 'push_retry_seconds = "soon"\n'}
    ),
    "broken toml": Case(("--config", "s.toml", "migrate"), {}, {"s.toml": "push_retry_seconds = \n"}),
    "toml unreadable": Case(("--config", "missing.toml", "migrate"), {}, {}),
    "bad setting for serve": Case(("serve", "--no-worker"), {"SIMGATE_PUSH_RETRY_SECONDS": "soon"}, {}),
    "migrate into no folder": Case(
        ("migrate",), {"SIMGATE_DATABASE_URL": "sqlite:///{folder}/no/such/simgate.db"}, {}
    ),
    "mistyped option": Case(("numbers", "list", "--jsn"), {}, {}, migrated=True),
    "serve on no port": Case(("serve", "--port", "99999"), {"SIMGATE_ONLINESIM_KEY": "k"}, {}),
    "demo on no port": Case(("demo", "--port", "70000", "--duration", "1"), {}, {}),
    "demo with no SIMs": Case(("demo", "--numbers", "0"), {}, {}),
    "simulated buyer without its farm": Case(
        ("simulate", "marketplace", "--key", "k", "--farm", "missing.csv", "--duration", "1"), {}, {}
    ),
    "simulated bank writes nowhere": Case(
        ("simulate", "simbank", "--numbers", "2", "--write-csv", "no/such/folder/farm.csv", "--csv-only"),
        {},
        {},
    ),
}


@dataclass(frozen=True)
class Outcome:
    folder: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    def launch(name: str) -> Outcome:
        case = CASES[name]
        folder = tmp_path_factory.mktemp(re.sub(r"\W", "_", name))
        for file_name, data in case.files.items():
            write(folder, file_name, data)
        if case.migrated:
            schema.upgrade(f"sqlite:///{folder / 'simgate.db'}")
        env = {key: value.replace("{folder}", str(folder)) for key, value in case.env.items()}
        return Outcome(folder, run(folder, *case.args, env=env))

    with ThreadPoolExecutor(max_workers=4) as pool:
        return dict(zip(CASES, pool.map(launch, CASES), strict=True))


def test_rejected_rows_exit_1_with_one_line_on_stderr(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["rejected rows"]
    result = outcome.result
    assert result.returncode == 1
    database = f"database: {outcome.folder / 'simgate.db'}\n"
    assert re.fullmatch(re.escape(database) + r"simgate: 3 row\(s\) rejected[^\n]*\n", result.stderr), (
        result.stderr
    )
    assert "added 1, updated 0, unchanged 0, rejected 3" in result.stdout
    for line in ("line 3: 4915112345678", "line 4: 79281234567", "line 5: 79281234599"):
        assert line in result.stdout
    assert "duplicate of line 2" in result.stdout
    assert "atlantis" in result.stdout
    assert list(numbers_in(outcome.folder)) == ["79281234567"]


def test_each_rejected_row_is_reported_on_one_line(outcomes: dict[str, Outcome]) -> None:
    stdout = outcomes["rejected rows"].result.stdout
    report = [line for line in stdout.splitlines() if "line 3" in line]
    assert len(report) == 1
    assert report[0].rstrip().endswith("+7"), stdout


def test_a_file_without_a_required_column_fails_with_one_line(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["missing column"]
    reason = one_line_reason(outcome.result)
    assert outcome.result.stderr.count("\n") == 1
    assert "n.csv" in reason
    assert "operator" in reason
    assert numbers_in(outcome.folder) == {}


def test_a_bad_setting_stops_the_command_naming_it(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["bad retry"]
    reason = one_line_reason(outcome.result)
    assert outcome.result.returncode == 2
    assert outcome.result.stderr.count("\n") == 1
    assert reason.startswith("simgate: SIMGATE_PUSH_RETRY_SECONDS:")
    assert not (outcome.folder / "simgate.db").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("serve on no port", "simgate: --port must be between 1 and 65535"),
        ("demo on no port", "simgate: demo: --port must be between 1 and 65535"),
        ("demo with no SIMs", "simgate: demo: --numbers must be at least 1"),
        ("simulated buyer without its farm", "simgate: cannot read missing.csv: No such file or directory"),
        (
            "simulated bank writes nowhere",
            "simgate: cannot write no/such/folder/farm.csv: No such file or directory",
        ),
    ],
)
def test_a_bad_port_or_file_is_one_line_on_stderr_exit_2(
    outcomes: dict[str, Outcome], case: str, expected: str
) -> None:
    result = outcomes[case].result
    assert one_line_reason(result) == expected
    assert result.stderr.count("\n") == 1, result.stderr  # the reason alone, nothing on stdout for it
    assert expected not in result.stdout
    assert result.returncode == 2


def test_a_mistyped_option_is_one_line_naming_the_right_one(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["mistyped option"].result
    assert result.returncode == 2
    assert result.stderr == (
        "simgate: no such option: --jsn (did you mean --json?); see `simgate numbers list --help`\n"
    )


def test_migrate_names_a_missing_folder_and_how_to_create_it(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["migrate into no folder"]
    folder = outcome.folder / "no" / "such"
    assert one_line_reason(outcome.result) == (
        f"simgate: cannot create the database {folder / 'simgate.db'}: the folder {folder} does not exist"
        f" (create it: mkdir -p {folder})"
    )
    assert outcome.result.returncode == 1
    assert not folder.exists()


def test_serve_without_the_partner_key_refuses_to_start(outcomes: dict[str, Outcome]) -> None:
    assert "SIMGATE_ONLINESIM_KEY" in one_line_reason(outcomes["serve without key"].result)


@pytest.mark.parametrize("case", ["no database", "import without database", "worker without database"])
def test_only_migrate_and_serve_create_a_database(outcomes: dict[str, Outcome], case: str) -> None:
    outcome = outcomes[case]
    reason = one_line_reason(outcome.result)
    assert outcome.result.stderr.count("\n") == 1
    assert reason.startswith(f"simgate: no database at {outcome.folder / 'simgate.db'} ")
    assert "simgate migrate" in reason
    assert not (outcome.folder / "simgate.db").exists()


def test_a_misspelt_variable_is_a_warning_naming_the_real_one(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["misspelt variable"].result
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "simgate: warning: SIMGATE_ONLINESIM_PUSHURL is not a simgate setting; "
        "did you mean SIMGATE_ONLINESIM_PUSH_URL?\n"
    )


def test_version(tmp_path: Path) -> None:
    result = run(tmp_path, "--version")
    assert (result.returncode, result.stdout) == (0, f"simgate {simgate.__version__}\n")


def test_a_bad_toml_value_is_named_as_written_in_the_file(outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes["bad toml value"]
    assert outcome.result.returncode == 2
    assert outcome.result.stderr.count("\n") == 1
    assert one_line_reason(outcome.result).startswith("simgate: s.toml: push_retry_seconds: ")


def test_a_config_file_error_blames_the_file_or_the_option(outcomes: dict[str, Outcome]) -> None:
    broken, missing = outcomes["broken toml"].result, outcomes["toml unreadable"].result
    assert (broken.returncode, missing.returncode) == (2, 2)
    assert one_line_reason(broken).startswith("simgate: s.toml is not valid TOML")
    assert one_line_reason(missing).startswith("simgate: --config: cannot read missing.toml")
    assert "SIMGATE_CONFIG" not in broken.stderr + missing.stderr


def test_a_bad_setting_stops_serve_with_one_line_and_exit_2(outcomes: dict[str, Outcome]) -> None:
    result = outcomes["bad setting for serve"].result
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1, result.stderr
    assert one_line_reason(result).startswith("simgate: SIMGATE_PUSH_RETRY_SECONDS:")


# --- sequences on one database ----------------------------------------------------------------


def test_import_then_reimport_reports_added_unchanged_updated(tmp_path: Path) -> None:
    # As a spreadsheet saves it: a byte-order mark and CRLF line ends.
    csv = write(tmp_path, "numbers.csv", ("\ufeff" + GOOD_CSV).replace("\n", "\r\n"))
    assert run(tmp_path, "migrate").returncode == 0
    first = run(tmp_path, "numbers", "import", str(csv))
    assert first.returncode == 0, first.stderr
    assert "added 2, updated 0, unchanged 0, rejected 0" in first.stdout
    assert first.stderr == f"database: {tmp_path / 'simgate.db'}\n"
    loaded = numbers_in(tmp_path)
    assert set(loaded) == {"79281234567", "4915112345678"}
    assert (loaded["4915112345678"].rentable, loaded["79281234567"].port) == (False, "goip1/1")

    again = run(tmp_path, "numbers", "import", str(csv))
    assert again.returncode == 0, again.stderr
    assert "added 0, updated 0, unchanged 2, rejected 0" in again.stdout
    assert numbers_in(tmp_path) == loaded

    moved = write(
        tmp_path, "moved.csv", GOOD_CSV.replace("goip1/1", "goip9/9") + "46701234567,sweden,telia,,\n"
    )
    changed = run(tmp_path, "numbers", "import", str(moved))
    assert changed.returncode == 0, changed.stderr
    assert "added 1, updated 1, unchanged 1, rejected 0" in changed.stdout
    after = numbers_in(tmp_path)
    assert after["79281234567"].port == "goip9/9"
    assert after["79281234567"].id == loaded["79281234567"].id
    assert len(after) == 3


def test_numbers_list_shows_state(tmp_path: Path) -> None:
    schema.upgrade(f"sqlite:///{tmp_path / 'simgate.db'}")
    store = open_db(tmp_path)
    try:
        specs = [make_spec(port="goip1/1"), make_spec(enabled=False, operator=""), make_spec()]
        store.run(lambda uow: import_numbers(uow, specs, time.time()))
        operation = store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), 1.0))
    finally:
        store.close()
    assert operation is not None
    assert operation.phone == specs[0].phone

    result = run(tmp_path, "numbers", "list", "--json")
    assert result.returncode == 0, result.stderr
    payload: list[dict[str, Any]] = json.loads(result.stdout)
    rows = {row["phone"]: row for row in payload}
    assert rows[specs[0].phone] == {
        "phone": specs[0].phone,
        "country": "russia",
        "operator": "beeline",
        "port": "goip1/1",
        "rent": True,
        "enabled": True,
        "file_enabled": True,
        "operator_enabled": True,
        "online": True,
        "state": "busy",
        "operation_id": operation.id,
        "operation_marketplace": "onlinesim",
        "lane": "onlinesim",
        "lane_target": None,
        "marketplaces": [],
    }
    assert (rows[specs[1].phone]["state"], rows[specs[1].phone]["operator"]) == ("disabled", "")
    assert rows[specs[2].phone]["state"] == "free"
    assert rows[specs[2].phone]["operation_marketplace"] is None

    table = run(tmp_path, "numbers", "list")
    assert table.returncode == 0, table.stderr
    assert "3 number(s)" in table.stdout
    wide = run(tmp_path, "numbers", "list", env={"COLUMNS": "250"})
    assert f"{operation.id} (onlinesim)" in wide.stdout
    assert specs[0].phone in table.stdout


def test_migrate_twice(tmp_path: Path) -> None:
    first = run(tmp_path, "migrate")
    assert first.returncode == 0, first.stderr
    assert "migrated" in first.stdout
    assert schema.current_revision(f"sqlite:///{tmp_path / 'simgate.db'}") == schema.head_revision()
    second = run(tmp_path, "migrate")
    assert second.returncode == 0, second.stderr
    assert f"schema is current (revision {schema.head_revision()})" in second.stdout


@pytest.mark.parametrize(
    ("url", "words"),
    [
        (
            "sqlite:////nonexistent-simgate-dir/sub/x.db",
            "the folder /nonexistent-simgate-dir/sub does not exist",
        ),
        ("postgresql://nobody:secret@127.0.0.1:1/none", "Connection refused"),
    ],
)
def test_an_unreachable_database_is_one_line_not_a_traceback(tmp_path: Path, url: str, words: str) -> None:
    for command in (["migrate"], ["numbers", "list"]):
        result = run(tmp_path, *command, env={"SIMGATE_DATABASE_URL": url})
        assert result.stderr.strip().count("\n") == 0, result.stderr
        reason = one_line_reason(result)
        if url.startswith("sqlite") and command != ["migrate"]:
            assert "no database at /nonexistent-simgate-dir/sub/x.db" in reason
        else:
            assert words in reason
        assert "secret" not in reason
        assert "http" not in reason  # no link to a library's documentation


def test_an_operator_s_disable_and_block_survive_a_reimport(tmp_path: Path) -> None:
    csv = write(tmp_path, "numbers.csv", GOOD_CSV)
    assert run(tmp_path, "migrate").returncode == 0
    assert run(tmp_path, "numbers", "import", str(csv)).returncode == 0
    disabled = run(tmp_path, "numbers", "disable", "+7 928 123-45-67")
    assert disabled.returncode == 0, disabled.stderr
    assert disabled.stdout == "79281234567: disabled; switched off by the owner\n"
    blocked = run(tmp_path, "numbers", "block", "79281234567", "WhatsApp")
    assert blocked.stdout == "79281234567: blocked for whatsapp\n", blocked.stderr
    typo = run(tmp_path, "numbers", "block", "79281234567", "telegramm")
    assert one_line_reason(typo) == "simgate: unknown service 'telegramm'; did you mean telegram?"
    unknown = run(tmp_path, "numbers", "disable", "79990000000")
    assert "79990000000 is not in the inventory" in one_line_reason(unknown)

    again = run(tmp_path, "numbers", "import", str(csv))
    assert "added 0, updated 0, unchanged 2" in again.stdout, again.stdout
    rows = {r["phone"]: r for r in json.loads(run(tmp_path, "numbers", "list", "--json").stdout)}
    off = rows["79281234567"]
    assert (off["state"], off["enabled"], off["file_enabled"], off["operator_enabled"]) == (
        "disabled", False, True, False,
    )  # fmt: skip
    table = run(tmp_path, "numbers", "list", env={"COLUMNS": "200"}).stdout
    (line,) = [row for row in table.splitlines() if "79281234567" in row]
    assert line.split("│")[6:9] == [" on  ", " off   ", " disabled "], line

    enabled = run(tmp_path, "numbers", "enable", "79281234567")
    assert enabled.stdout == "79281234567: free\n", enabled.stderr
    assert run(tmp_path, "numbers", "unblock", "79281234567", "whatsapp").stdout == (
        "79281234567: blocked for nothing\n"
    )


def test_operations_list(tmp_path: Path) -> None:
    schema.upgrade(f"sqlite:///{tmp_path / 'simgate.db'}")
    store = open_db(tmp_path)
    try:
        store.run(lambda uow: import_numbers(uow, [make_spec()], time.time()))
        operation = store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), time.time()))
    finally:
        store.close()
    assert operation is not None
    listed = run(tmp_path, "operations", "list", "--json", "--state", "open")
    assert listed.returncode == 0, listed.stderr
    (record,) = json.loads(listed.stdout)
    assert (record["id"], record["marketplace"], record["status"], record["service"]) == (
        operation.id, "onlinesim", "open", "telegram",
    )  # fmt: skip
    assert json.loads(run(tmp_path, "operations", "list", "--json", "--state", "finished").stdout) == []
    table = run(tmp_path, "operations", "list", env={"COLUMNS": "200"})
    assert "1 of 1 operation(s)" in table.stdout
    narrow = run(tmp_path, "operations", "list")  # 80 columns, as a pipe or cron has
    assert operation.phone in narrow.stdout, narrow.stdout  # whole, so it can be copied
    assert run(tmp_path, "operations", "list", "--state", "closed").returncode == 2


def test_serve_on_a_busy_port_fails_before_serving_or_migrating(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {"SIMGATE_ONLINESIM_KEY": "k", "SIMGATE_ONLINESIM_PUSH_URL": "http://127.0.0.1:9"}
        result = run(tmp_path, "serve", "--port", str(port), env=env)
    assert result.returncode == 1
    assert result.stderr == f"simgate: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert not (tmp_path / "simgate.db").exists()  # nothing started, nothing created
