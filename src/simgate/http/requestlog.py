"""One log line per marketplace call: what was asked, which operation, and the answer.

The route logs from the request the handler already decoded (decoding every body a second
time cost ~6 % of the server's CPU). Chosen fields only: the partner key travels in the body,
the header and the query string, and none of them is ever copied into the line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

import msgspec

log = logging.getLogger("simgate.requests")

REQUEST_FIELDS = (
    "action", "country", "operator", "service", "activationId", "status", "sum", "currency",
)  # fmt: skip


_LABELS = tuple("operation" if name == "activationId" else name for name in REQUEST_FIELDS)


def _scalar(value: object) -> str:
    # A decoded `sum` is a float: 40 was sent, so "40", not "40.0".
    text = value if type(value) is str else f"{value:g}" if isinstance(value, float) else str(value)
    return text if len(text) <= 40 and " " not in text else repr(text[:40])


def describe(
    marketplace: str,
    call: str,
    request: Mapping[str, Any] | object,
    status: int,
    answer: dict[str, Any],
    ms: float,
) -> str:
    """`onlinesim getNumber action=GET_NUMBER country=russia service=vk -> 200 SUCCESS operation=7`

    `request` is the decoded request (a Struct: its fields are read where they are, without
    copying it into a dict first) or a mapping of the same names.
    """
    if isinstance(request, Mapping):
        values = [request.get(name) for name in REQUEST_FIELDS]
    else:
        values = [getattr(request, name, None) for name in REQUEST_FIELDS]
    words = [marketplace, call]
    for label, value in zip(_LABELS, values, strict=True):
        if value is not None and not isinstance(value, dict | list):
            words.append(f"{label}={_scalar(value)}")
    words += ["->", str(status), str(answer.get("status", "-"))]
    if answer.get("activationId") is not None:
        words.append(f"operation={_scalar(answer['activationId'])}")
    if answer.get("number") is not None:
        words.append(f"number={_scalar(answer['number'])}")
    if answer.get("error"):
        words.append(f"error={str(answer['error'])[:200]!r}")
    words.append(f"({ms:.1f} ms)")
    return " ".join(word for word in words if word)


def log_call(
    marketplace: str,
    call: str,
    request: object | None,
    status: int,
    answer: dict[str, Any],
    started: float,
) -> None:
    """One line per marketplace call, from the request the handler already decoded."""
    level = logging.INFO if status < 500 else logging.ERROR
    if not log.isEnabledFor(level):
        return
    ms = (time.perf_counter() - started) * 1000
    line = describe(
        marketplace, call[:60], request if isinstance(request, msgspec.Struct) else {}, status, answer, ms
    )
    # The record made here rather than by log.log: that one walks the stack for the caller's
    # file and line (findCaller), which no log format prints, ~a fifth of this call's CPU.
    # No args: the line is the message as it is, a "%" in it included.
    log.handle(log.makeRecord(log.name, level, __file__, 0, line, (), None))
