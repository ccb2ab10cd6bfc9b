"""A value with a line break cannot forge a log line (issue 12, item 9)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator

import pytest

from simgate import logs


@pytest.fixture
def captured(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], str]]:
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield lambda: capsys.readouterr().err
    root.handlers[:], root.level = saved[0], saved[1]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_control_characters_in_logged_values_are_escaped(
    captured: Callable[[], str], log_format: str
) -> None:
    logs.configure(log_format)
    forged = "/onlinesim\n2026-12-03 10:00:00 ERROR simgate: FORGED\r\x1b[2J\u2028x"
    logging.getLogger("simgate.test").warning("call %s from %r", forged, "peer\nname")
    lines = captured().splitlines()
    assert len(lines) == 1, lines
    message = lines[0] if log_format == "text" else json.loads(lines[0])["message"]
    assert "\\n2026-12-03 10:00:00 ERROR simgate: FORGED\\r\\x1b[2J\\u2028x" in message


def test_tracebacks_keep_their_lines(captured: Callable[[], str]) -> None:
    logs.configure("text")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("simgate.test").exception("failed")
    err = captured()
    assert "Traceback" in err
    assert len(err.splitlines()) > 2


def test_queued_lines_are_escaped_and_keep_their_traceback(captured: Callable[[], str]) -> None:
    # The server logs through a queue (logs.configure(queued=True)): the filters run on its
    # writer thread now (logs.LineQueue.passes), and the JSON line still carries the traceback apart.
    logs.configure("json", queued=True)
    try:
        logging.getLogger("simgate.test").warning("call %s", "a\nb")
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("simgate.test").exception("failed")
        logs.flush()
        lines = [json.loads(line) for line in captured().splitlines()]
    finally:
        logs.configure("text")
    assert lines[0]["message"] == "call a\\nb"
    assert lines[1]["message"] == "failed"
    assert "ValueError: boom" in lines[1]["error"]


def test_reconfiguring_writes_the_queued_lines_and_ends_their_thread(captured: Callable[[], str]) -> None:
    # The queue's writer thread belongs to its handler, not to the module: replacing the
    # handler (or logging's shutdown at exit) closes it, and closing writes what is queued.
    logs.configure("text", queued=True)
    (front,) = logging.getLogger().handlers
    assert isinstance(front, logs.LineQueue)
    writer = front._listener
    assert writer is not None
    logging.getLogger("simgate.test").warning("queued before the switch")
    logs.configure("text")
    assert "queued before the switch" in captured()
    assert front._listener is None
    assert writer._thread is None  # type: ignore[attr-defined]
