"""One log line per marketplace call: what was asked, which operation, and the answer.

The route logs from the request the handler already decoded (decoding every body a second
time cost ~6 % of the server's CPU). Chosen fields only: the partner key travels in the body,
the header and the query string, and none of them is ever copied into the line.

The line itself is written out by the log thread (`CallLine`, logs.LateLine), not on the
event loop: made there, one after another in batches, it cost the server ~0.05 ms of CPU per
GET_NUMBER + FINISH less than made per call on the loop (docs/benchmarks.md, issue 14).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from simgate.lateline import LateLine

log = logging.getLogger("simgate.requests")

REQUEST_FIELDS = (
    "action", "country", "operator", "service", "activationId", "status", "sum", "currency",
)  # fmt: skip


ANSWER_FIELDS = ("status", "activationId", "number", "error")
"""What `describe` reads of an answer."""

_NAMED = tuple((name, "operation" if name == "activationId" else name) for name in REQUEST_FIELDS)
"""Each request field and its label in the line."""


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
    mapping = isinstance(request, Mapping)
    words = [marketplace, call]
    append = words.append
    for name, label in _NAMED:
        value = request.get(name) if mapping else getattr(request, name, None)  # type: ignore[union-attr]
        if value is None:
            continue
        # Most values are short words (an action, a country, a service): no copy, no quote.
        if type(value) is str and len(value) <= 40 and " " not in value:
            append(f"{label}={value}")
        elif not isinstance(value, dict | list):
            append(f"{label}={_scalar(value)}")
    words += ("->", str(status), str(answer.get("status", "-")))
    if (operation := answer.get("activationId")) is not None:
        append(f"operation={_scalar(operation)}")
    if (number := answer.get("number")) is not None:
        append(f"number={_scalar(number)}")
    if error := answer.get("error"):
        append(f"error={str(error)[:200]!r}")
    append(f"({ms:.1f} ms)")
    return " ".join(filter(None, words))


class CallLine(LateLine):
    """The call's line, made when a handler first needs the text (`str`): on the log thread
    in the server. Holds what `describe` reads; none of it changes once the call is answered
    (the decoded request is never modified; the answer's few quoted fields are copied)."""

    __slots__ = ("answer", "call", "marketplace", "ms", "request", "status")

    def __init__(
        self, marketplace: str, call: str, request: object, status: int, answer: dict[str, Any], ms: float
    ) -> None:
        self.marketplace, self.call, self.request = marketplace, call, request
        # Only what the line quotes: a queued line must not hold a whole GET_SERVICES answer.
        self.status, self.ms = status, ms
        self.answer = {name: answer[name] for name in ANSWER_FIELDS if name in answer}

    def __str__(self) -> str:
        return describe(self.marketplace, self.call, self.request, self.status, self.answer, self.ms)


class _Records:
    """Log records for the request line, made from one kept record of this process.

    `Logger.makeRecord` spends most of its time on what never changes between two request
    lines of one process: the source file's name split twice, the process id (a system call
    each time) and the process and thread names. A copy of a record made once, with the time,
    level, message and thread set, is the same record for every formatter and filter.
    """

    def __init__(self) -> None:
        self._kept: dict[str, Any] | None = None
        os.register_at_fork(after_in_child=self._forget)

    def _forget(self) -> None:
        self._kept = None

    def make(self, level: int, line: str | LateLine) -> logging.LogRecord:
        kept = self._kept
        if kept is None:
            kept = self._kept = log.makeRecord(log.name, logging.INFO, __file__, 0, "", (), None).__dict__
        record = logging.LogRecord.__new__(logging.LogRecord)
        record.__dict__ = fields = kept.copy()  # half the cost of update() into a new dict
        created = time.time()
        fields["created"] = created
        fields["msecs"] = int((created - int(created)) * 1000) + 0.0
        fields["relativeCreated"] = (created - kept["created"]) * 1000 + kept["relativeCreated"]
        fields["levelno"], fields["levelname"] = level, logging.getLevelName(level)
        fields["msg"] = line
        thread = threading.current_thread()
        fields["thread"], fields["threadName"] = thread.ident, thread.name
        return record


_records = _Records()


def log_call(
    marketplace: str,
    call: str,
    request: object | None,
    status: int,
    answer: dict[str, Any],
    started: float,
) -> None:
    """One line per marketplace call, from the request the handler already decoded."""
    # A 503 is the database being away (its own alert says so), not a fault in simgate.
    level = logging.INFO if status < 500 else logging.WARNING if status == 503 else logging.ERROR
    if not log.isEnabledFor(level):
        return
    ms = (time.perf_counter() - started) * 1000
    line = CallLine(
        marketplace, call[:60], request if isinstance(request, msgspec.Struct) else {}, status, answer, ms
    )
    # No args: the line is the message as it is, a "%" in it included.
    log.handle(_records.make(level, line))
