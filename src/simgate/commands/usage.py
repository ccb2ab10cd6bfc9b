"""A mistyped command or option: one line on standard error, like every other simgate error.

Typer draws click's usage errors in a box after two lines of usage; an owner's script or
cron mail then holds five lines where every other failure holds one. The root command
catches them instead and prints `simgate: no such option: --prot (did you mean --port?);
see `simgate serve --help``, with click's exit status (2 for a usage error). Help itself
(`--help`, or a group run without a command) is untouched.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

import typer
from typer.core import TyperGroup

# Typer re-exports click's errors, or ships its own copy of click (0.20 on): BadParameter's
# ancestry names the ClickException class this typer raises, whichever it is.
ClickError: type[Exception] = next(
    kind for kind in typer.BadParameter.__mro__ if kind.__name__ == "ClickException"
)
NO_SUCH_COMMAND = re.compile(r"No such command '(?P<name>[^']*)'")


class OneLineErrors(TyperGroup):
    """The root command: its own options' errors and every subcommand's, one line each."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except ClickError as error:  # `simgate --confg x.toml status`
            raise typer.Exit(report(error)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except ClickError as error:
            raise typer.Exit(report(error)) from None


def report(error: Exception) -> int:
    """Print `error` as one line (or the help a bare group shows) and return its exit status."""
    code = int(getattr(error, "exit_code", 1))
    if type(error).__name__ == "NoArgsIsHelpError":
        # `simgate numbers`: rich has printed the help already; plain click carries it here.
        if error.format_message().strip():  # type: ignore[attr-defined]
            typer.echo(error.format_message(), err=True)  # type: ignore[attr-defined]
        return code
    typer.echo(f"simgate: {usage_line(error)}", err=True)
    return code


def usage_line(error: Exception) -> str:
    """`no such option: --prot (did you mean --port?); see `simgate serve --help``."""
    ctx = getattr(error, "ctx", None)
    name = getattr(error, "option_name", None)
    command = NO_SUCH_COMMAND.match(str(getattr(error, "message", error)))
    if name is not None and type(error).__name__ == "NoSuchOption":
        text = f"no such option: {name}" + _did_you_mean(name, getattr(error, "possibilities", None))
    elif command is not None and ctx is not None:
        known = ctx.command.list_commands(ctx) if hasattr(ctx.command, "list_commands") else []
        text = f"no such command: {command['name']}" + _did_you_mean(command["name"], known)
    else:
        message = getattr(error, "format_message", lambda: str(error))()
        text = " ".join(message.split()).rstrip(".")
        text = text[:1].lower() + text[1:]
    if ctx is not None and ctx.command.get_help_option(ctx) is not None:
        text += f"; see `{ctx.command_path} {ctx.help_option_names[0]}`"
    return text


def _did_you_mean(typed: str, known: Any) -> str:
    close = difflib.get_close_matches(typed, list(known or ()), n=1)
    return f" (did you mean {close[0]}?)" if close else ""
