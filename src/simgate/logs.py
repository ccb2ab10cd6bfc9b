"""Logging set-up: plain lines by default, JSON lines with SIMGATE_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys
import time

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


def escape_controls(text: str) -> str:
    """Control characters as visible escapes: a value can never start a new log line."""
    return text.translate(_ESCAPES)


class ControlEscaper(logging.Filter):
    """On the root handlers, before any formatter: escapes control characters in the message.

    A path, a field or a sender name with "\\n" would otherwise print a second, forged line
    in the text log (and a fake "ERROR" line can page an operator or hide an attack).
    Tracebacks keep their lines: they come from our code, not from the request.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: leave it to the handler to report
            return True
        clean = escape_controls(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is now, not what it was when logging was set up
    (a test runner or a daemoniser may swap it; a closed old one would lose lines)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


class LineQueue(logging.handlers.QueueHandler):
    """Hands records to its own writer thread with the message merged, and nothing else done.

    The filters (control escapes, secret redaction) stay on this handler, so they run where
    the line is logged, as before; formatting and the write to stderr move off the event loop
    (one line per marketplace call cost ~8 % of the server's CPU there; docs/benchmarks.md).
    Unlike the stdlib's `prepare`, the exception stays attached, so the JSON formatter still
    puts the traceback in its own field. The handler owns its thread: `close` (configure's, or
    logging's own at exit) writes what is queued, then ends it.
    """

    def __init__(self, writer: logging.Handler) -> None:
        lines: queue.Queue[logging.LogRecord] = queue.Queue()
        super().__init__(lines)
        self._lines = lines
        self._listener: logging.handlers.QueueListener | None = BatchListener(lines, writer)
        self._listener.start()

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        record.msg, record.args = record.getMessage(), None
        return record

    def drain(self) -> None:
        """Wait until every line queued so far is written."""
        if self._listener is not None:
            self._lines.join()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()  # writes what is queued, then ends the thread
        super().close()


BATCH_SECONDS = 0.02
"""While lines keep coming, the writer thread looks for them this often instead of being woken
per line: a wake-up is a thread switch on the event loop's core, per push and per marketplace
call (docs/benchmarks.md, issue 14). A line reaches stderr at most this much later."""
QUIET_ROUNDS = 50
"""After this many empty looks (a second), the thread sleeps until the next line wakes it:
an idle server does not tick."""


class BatchListener(logging.handlers.QueueListener):
    """A QueueListener that writes lines in batches: the event loop's `put` finds no thread
    waiting on the queue while lines flow, so it wakes none."""

    def _monitor(self) -> None:
        lines: queue.Queue[logging.LogRecord] = self.queue  # type: ignore[assignment]
        quiet = QUIET_ROUNDS
        while True:
            if quiet >= QUIET_ROUNDS:
                record = lines.get()
            else:
                time.sleep(BATCH_SECONDS)
                try:
                    record = lines.get_nowait()
                except queue.Empty:
                    quiet += 1
                    continue
            quiet = 0
            while True:
                if record is self._sentinel:  # type: ignore[attr-defined]
                    lines.task_done()
                    return  # stop() queues it last: every line before it is written
                self.handle(record)
                lines.task_done()
                try:
                    record = lines.get_nowait()
                except queue.Empty:
                    break


def flush() -> None:
    """Wait until every queued line is written (tests, and before the process exits)."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, LineQueue):
            handler.drain()


def configure(log_format: str, level: int = logging.INFO, *, queued: bool = False) -> None:
    """Root logging to stderr. `queued` (the server): lines are written by their own thread."""
    root = logging.getLogger()
    for old in root.handlers:
        if isinstance(old, LineQueue):
            old.close()  # what it queued is written first
    handler = StderrHandler()
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    front: logging.Handler = handler
    if queued:
        front = LineQueue(handler)
    front.addFilter(ControlEscaper())
    root.handlers[:] = [front]
    root.setLevel(level)
    # Alembic narrates every start-up at INFO; our own line says which revision is served.
    logging.getLogger("alembic").setLevel(logging.WARNING)
