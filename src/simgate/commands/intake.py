"""`simgate intake ...`: hand SMS received by other software to the running server."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from simgate.config import Settings

intake_app = typer.Typer(no_args_is_help=True, help="Hand SMS received by other software to the server.")


def _reserve_standard_fds() -> None:
    """gammu-smsd starts us with stdin/stdout/stderr closed; park /dev/null on them.

    Otherwise the first socket opened takes descriptor 1 or 2 and a stray print would be
    written into the HTTP request.
    """
    for fd in (0, 1, 2):
        try:
            os.fstat(fd)
        except OSError:
            os.open(os.devnull, os.O_RDWR)


def _say(text: str, err: bool = False) -> None:
    stream = sys.stderr if err else sys.stdout
    if stream is None:
        return
    with contextlib.suppress(OSError):  # nobody listens (gammu closed it): the exit status speaks
        print(text, file=stream)


def _settings(ctx: typer.Context) -> Settings:
    """The settings `simgate --config FILE` names: the option belongs to the root command."""
    from simgate.config import SettingsError, load_settings

    try:
        return load_settings(config_file=ctx.find_root().params.get("config"))
    except SettingsError as error:
        _say(f"simgate: {error}", err=True)
        raise typer.Exit(2) from None


@intake_app.command("gammu")
def gammu(
    ctx: typer.Context,
    ids: Annotated[
        list[str] | None, typer.Argument(help="Message ids gammu-smsd appends (file names or row ids)")
    ] = None,
    url: Annotated[str | None, typer.Option(help="simgate server URL (default: hardware.gammu.url)")] = None,
    token: Annotated[
        str | None, typer.Option(help="Intake bearer token (default SIMGATE_INTAKE_TOKEN)")
    ] = None,
    phone: Annotated[
        str | None, typer.Option(help="The receiving SIM's number (default: hardware.gammu.phone)")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option(help="Seconds to keep retrying an unreachable server")
    ] = None,
) -> None:
    """RunOnReceive for gammu-smsd: post the SMS in gammu's environment to /intake/sms.

    Exits 0 once the server stored it (or already had it), non-zero otherwise.
    """
    _reserve_standard_fds()
    from simgate.hardware.gammu import (
        GammuConfig,
        GammuError,
        choose_phone,
        hand_over,
        message_id,
        read_environment,
    )
    from simgate.hardware.settings_table import Table
    from simgate.settings_error import SettingsError

    current = _settings(ctx)
    try:
        config = GammuConfig.parse(Table("hardware.gammu", current.hardware.get("gammu", {})))
    except SettingsError as error:
        _say(f"simgate: {error}", err=True)
        raise typer.Exit(2) from None
    target = (url or config.url).rstrip("/")
    if not target.startswith(("http://", "https://")):
        _say("simgate: --url must be an http:// or https:// address", err=True)
        raise typer.Exit(2)
    secret = token or (current.intake_token.get_secret_value() if current.intake_token else None)
    if not secret:
        _say("simgate: no intake token: set SIMGATE_INTAKE_TOKEN or pass --token", err=True)
        raise typer.Exit(2)
    try:
        message = read_environment(os.environ)
        body: dict[str, object] = {
            "phone": choose_phone(config, message, phone),
            "sender": message.sender,
            "text": message.text,
            "message_id": message_id(message, ids or []),
        }
    except GammuError as error:
        _say(f"simgate: {error}", err=True)
        raise typer.Exit(1) from None
    status, answer = hand_over(target, secret, body, config.timeout if timeout is None else timeout)
    if status in (200, 202):
        try:
            stored = json.loads(answer)
        except ValueError:
            stored = {}
        verdict = "already stored" if stored.get("duplicate") else "stored"
        _say(f"{verdict} as SMS {stored.get('id')} ({message.parts} part(s) from {message.sender})")
        return
    reason = answer.strip().replace("\n", " ")[:300] or f"HTTP {status}"
    _say(f"simgate: the server did not take the SMS (HTTP {status}): {reason}", err=True)
    raise typer.Exit(1)
