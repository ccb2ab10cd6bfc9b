"""The server's log thread writes lines in batches, in order, and none is lost."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator

import pytest

from simgate import logs, logsecrets


@pytest.fixture
def queued_logs(monkeypatch: pytest.MonkeyPatch) -> Iterator[logging.Logger]:
    monkeypatch.setattr(logs, "BATCH_SECONDS", 0.001)
    monkeypatch.setattr(logs, "QUIET_ROUNDS", 3)  # goes quiet (blocks on the queue) fast
    logs.configure("text", queued=True)
    yield logging.getLogger("simgate.test")
    logs.configure("text")


def written(capsys: pytest.CaptureFixture[str]) -> list[str]:
    return [line.rsplit(": ", 1)[1] for line in capsys.readouterr().err.splitlines()]


def test_a_burst_of_lines_is_written_whole_and_in_order(
    queued_logs: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(500):
        queued_logs.info("line %d", i)
    logs.flush()
    assert written(capsys) == [f"line {i}" for i in range(500)]


def test_a_line_after_a_quiet_spell_wakes_the_thread(
    queued_logs: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    queued_logs.info("first")
    logs.flush()
    for _ in range(3):  # the thread has looked, found nothing, and blocks on the queue
        queued_logs.info("again")
        logs.flush()
    assert written(capsys) == ["first", "again", "again", "again"]


def test_stopping_writes_every_line_queued_before_it(
    queued_logs: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    for i in range(50):
        queued_logs.warning("last %d", i)
    logs.configure("text")  # closes the queue's handler, which stops its thread
    assert written(capsys) == [f"last {i}" for i in range(50)]


def test_the_text_format_reads_as_loggings_own() -> None:
    plain = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    cached = logs.LineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    for created in (1_700_000_000.0, 1_700_000_000.25, 1_700_000_000.999, 1_700_000_001.5, 1_700_000_000.5):
        record = logging.LogRecord("simgate.x", logging.INFO, __file__, 1, "hello %s", ("there",), None)
        record.created, record.msecs = created, (created - int(created)) * 1000
        assert cached.format(record) == plain.format(record)


def test_the_text_format_reads_as_loggings_own_with_a_traceback_and_a_stack() -> None:
    plain = logging.Formatter(logs.TEXT_FORMAT)
    cached = logs.LineFormatter(logs.TEXT_FORMAT)
    try:
        raise ValueError("boom")
    except ValueError:
        failure = sys.exc_info()
    for exc_info, stack in ((failure, None), (None, "Stack (most recent call last):\n  here")):
        record = logging.LogRecord("simgate.x", logging.ERROR, __file__, 1, "failed %d", (7,), exc_info)
        record.stack_info = stack
        assert cached.format(record) == plain.format(record)
        assert "\n" in cached.format(record)  # the traceback or the stack is there


class CountingStream:
    def __init__(self) -> None:
        self.writes: list[str] = []

    def write(self, text: str) -> None:
        self.writes.append(text)

    def flush(self) -> None:
        pass


def test_a_batch_of_lines_is_one_write(monkeypatch: pytest.MonkeyPatch) -> None:
    stream = CountingStream()
    monkeypatch.setattr("sys.stderr", stream)
    handler = logs.StderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    records = [logging.LogRecord("x", logging.INFO, __file__, 1, f"line {i}", (), None) for i in range(100)]
    handler.emit_batch(records)
    assert stream.writes == ["".join(f"line {i}\n" for i in range(100))]


class Traced(logs.LateLine):
    """A late line that notes the threads that made it (pytest's own capture handler on the
    root makes it too, where it is logged; the server has no such handler)."""

    __slots__ = ("made_on", "text")

    def __init__(self, text: str) -> None:
        self.text, self.made_on = text, set[str]()

    def __str__(self) -> str:
        self.made_on.add(threading.current_thread().name)
        return self.text


def test_a_late_line_is_made_and_filtered_on_the_log_thread(
    queued_logs: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # The marketplace call's line (http/requestlog.CallLine) is made off the event loop, and
    # the filters still see its text: a control character is escaped, a secret masked.
    # On the queue's handler only: pytest's own capture handler on the root stays unfiltered.
    front = next(h for h in logging.getLogger().handlers if isinstance(h, logs.LineQueue))
    front.addFilter(logsecrets.SecretRedactor(["s3cr3t-partner-key"]))
    late = Traced("asked with s3cr3t-partner-key\nERROR forged")
    queued_logs.info(late)
    queued_logs.info("plain %s", "args")
    logs.flush()
    assert late.made_on - {threading.current_thread().name}, "made only where it was logged"
    assert written(capsys) == [f"asked with {logsecrets.MASK}\\nERROR forged", "plain args"]


class Unmakeable(logs.LateLine):
    """A late line whose text cannot be made on the log thread (where it is logged, it can:
    pytest's capture handler makes it there too)."""

    __slots__ = ()

    def __str__(self) -> str:
        if threading.current_thread() is not threading.main_thread():
            raise ValueError("s3cr3t-partner-key cannot be made")
        return "made where logged"


def test_a_late_line_that_cannot_be_made_does_not_stop_the_log_thread(
    queued_logs: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    # The log thread makes every late line and runs every filter: one that raises there must
    # not end it (every later line lost, the queue growing, `flush` waiting for ever).
    queued_logs.info(Unmakeable())
    queued_logs.info("after")
    flushing = threading.Thread(target=logs.flush, daemon=True)
    flushing.start()
    flushing.join(5)
    assert not flushing.is_alive(), "the log thread has stopped"
    err = capsys.readouterr().err
    assert err.splitlines()[-1].endswith(": after")
    assert "s3cr3t" not in err  # what could not be filtered is not written either


class StalledStream:
    """stderr that takes nothing until released (a stalled journald, a pipe nobody reads)."""

    def __init__(self) -> None:
        self.release, self.writing = threading.Event(), threading.Event()
        self.text: list[str] = []

    def write(self, text: str) -> int:
        self.writing.set()
        self.release.wait(10)
        self.text.append(text)
        return len(text)

    def flush(self) -> None:
        pass


def test_lines_beyond_the_bound_are_counted_not_held_while_stderr_stalls(
    queued_logs: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(logs, "MAX_QUEUED_LINES", 10)
    stream = StalledStream()
    monkeypatch.setattr("sys.stderr", stream)
    front = next(h for h in logging.getLogger().handlers if isinstance(h, logs.LineQueue))
    queued_logs.info("before")
    assert stream.writing.wait(5)  # the log thread is stuck writing it
    for i in range(30):
        queued_logs.info("during %d", i)
    assert front._lines.qsize() == 10  # what waits is bounded
    stream.release.set()
    logs.flush()
    lines = [line.split(": ", 1)[1] for line in "".join(stream.text).splitlines()]
    assert lines == [
        "before",
        *(f"during {i}" for i in range(10)),
        "20 log line(s) dropped: stderr took none while 10 waited",
    ]
    queued_logs.info("after")
    logs.flush()
    assert "".join(stream.text).splitlines()[-1].endswith(": after")  # counted once, not again
