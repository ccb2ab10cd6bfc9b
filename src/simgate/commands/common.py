"""What every `simgate` command shares: settings, the one-line failure, the database it reads.

Only `migrate` and `serve` create a database. Any other command run in the wrong directory
would otherwise create an empty `simgate.db` there and report "0 numbers" as if the farm were
empty; instead it refuses, naming the path, and a command that reads says which database.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console

from simgate import config
from simgate.config import PREFIX, Settings, SettingsError, load_settings
from simgate.storage.ports import Store

console = Console()

# Variables simgate reads that are not fields of Settings. A marketplace or driver with its
# own SIMGATE_* variables adds them here (or passes them to misspelt_variables).
OTHER_VARIABLES: set[str] = {"SIMGATE_CONFIG", "SIMGATE_DEBUG"}


class State:
    config: Path | None = None


class DatabaseMissing(RuntimeError):
    """A command that only reads or changes a farm was pointed at a database that is not there."""


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"simgate: {message}", err=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    typer.echo(f"simgate: warning: {message}", err=True)


def known_variables(extra: set[str] | frozenset[str] = frozenset()) -> set[str]:
    return config.known_variables() | OTHER_VARIABLES | set(extra)


def misspelt_variables(
    environ: Mapping[str, str], extra: set[str] | frozenset[str] = frozenset()
) -> list[str]:
    """One sentence per SIMGATE_* variable simgate does not read, with the closest real name.

    A typo in a unit file (SIMGATE_ONLINESIM_PUSHURL) otherwise leaves the setting at its
    default without a word: SMS are stored and never pushed.
    """
    known = known_variables(extra)
    problems = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name.startswith("SIMGATE_TEST_"):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]}?" if close else ""
        problems.append(f"{name} is not a simgate setting{hint}")
    return problems


def load(warn_misspelt: bool = True) -> Settings:
    try:
        current = load_settings(config_file=State.config)
    except SettingsError as error:
        fail(str(error), 2)
    if warn_misspelt:
        for problem in misspelt_variables(os.environ):
            warn(problem)
    return current


def settings() -> Settings:
    return load()


def database_label(current: Settings) -> str:
    """The database as the owner can find it: an absolute file path, or the URL without password."""
    if current.is_sqlite:
        return str(sqlite_file(current))
    return hide_password(current.database_url)


def sqlite_file(current: Settings) -> Path:
    return Path(current.database.sqlite_path()).resolve()


def hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def require_database(current: Settings) -> None:
    """Refuse a SQLite file that does not exist (connecting would create an empty one)."""
    if current.is_sqlite and not sqlite_file(current).is_file():
        raise DatabaseMissing(
            f"no database at {sqlite_file(current)} (run `simgate migrate` to create it, "
            "or set SIMGATE_DATABASE_URL to the farm's database)"
        )


def require_folder(current: Settings) -> None:
    """`migrate` and `serve` create a SQLite file, never its folder: SQLite's own word for a
    missing folder ("unable to open database file") does not say what to do."""
    if current.is_sqlite and not sqlite_file(current).parent.is_dir():
        folder = sqlite_file(current).parent
        raise DatabaseMissing(
            f"cannot create the database {sqlite_file(current)}: the folder {folder} does not exist"
            f" (create it: mkdir -p {folder})"
        )


@contextmanager
def database(current: Settings | None = None, *, announce: bool = True) -> Iterator[Store]:
    """The farm's store for one command; refuses a missing or un-migrated database.

    `announce` writes the database's path to stderr first, so that `cd /tmp && simgate ...`
    can never be mistaken for the farm (stdout stays clean for --json and --csv).
    """
    from simgate.bootstrap import ensure_schema, open_store
    from simgate.storage.schema import SchemaMismatch

    current = current or settings()
    try:
        require_database(current)
        ensure_schema(current)
    except DatabaseMissing as error:
        fail(str(error))
    except SchemaMismatch as error:
        fail(f"{database_label(current)}: {error}")
    if announce:
        typer.echo(f"database: {database_label(current)}", err=True)
    store = open_store(current)
    try:
        yield store
    finally:
        store.close()


def describe_error(error: BaseException) -> str:
    """One line in the owner's words for an error no command handled (never a traceback).

    A database driver's message spans several lines and ends with a link to the library's
    documentation; the owner needs the first line and which database could not be reached.
    """
    original = getattr(error, "orig", None) or error
    lines = [line.strip() for line in str(original).strip().splitlines() if line.strip()]
    first = lines[0] if lines else type(error).__name__
    first = re.sub(r"\s*\(Background on this error at: [^)]*\)", "", first)
    kind = type(original).__name__
    if kind == "OperationalError":
        url = _database_url_or_none()
        where = f" {hide_password(url)}" if url else ""
        return f"cannot use the database{where}: {first.removeprefix('connection failed: ')}"
    return f"{kind}: {first}"


def _database_url_or_none() -> str | None:
    try:
        return load_settings(config_file=State.config).database_url
    except SettingsError:
        return None
