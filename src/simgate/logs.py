"""Logging set-up: plain lines by default, JSON lines with SIMGATE_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import re
import sys
import threading
import time

from simgate.lateline import LateLine

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPES = {
    code: _NAMED.get(chr(code), f"\\x{code:02x}") for code in (*range(0x20), 0x7F, *range(0x80, 0xA0))
} | {0x2028: "\\u2028", 0x2029: "\\u2029"}


_CONTROL = re.compile("[" + "".join(re.escape(chr(code)) for code in _ESCAPES) + "]")
"""Any character _ESCAPES rewrites: most lines have none, and a search costs a tenth of the
per-character translation (~3 us per marketplace call line)."""


def escape_controls(text: str) -> str:
    """Control characters as visible escapes: a value can never start a new log line."""
    return text.translate(_ESCAPES) if _CONTROL.search(text) else text


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

    def emit_batch(self, records: list[logging.LogRecord]) -> None:
        """`records` as one write and one flush: a write per line was a system call per
        marketplace call (docs/benchmarks.md, issue 14). The same lines as `handle` each."""
        lines = []
        for record in records:
            if not self.filter(record):
                continue
            try:
                lines.append(self.format(record))
            except Exception:
                self.handleError(record)
        if not lines:
            return
        with self.lock:  # type: ignore[union-attr]
            try:
                self.stream = sys.stderr
                self.stream.write(self.terminator.join(lines) + self.terminator)
                self.flush()
            except Exception:
                self.handleError(records[-1])


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LineFormatter(logging.Formatter):
    """The text format, its date string made once per second rather than once per line."""

    def __init__(self, fmt: str) -> None:
        super().__init__(fmt)
        self._second: tuple[int, str] = (-1, "")
        self._plain = fmt == TEXT_FORMAT

    def format(self, record: logging.LogRecord) -> str:
        if not self._plain or record.exc_info or record.exc_text or record.stack_info:
            return super().format(record)
        # TEXT_FORMAT put together directly: Formatter.format's checks and its %-style
        # substitution cost a fifth of a request line's time on the log thread.
        record.message = record.getMessage()
        return f"{self.formatTime(record)} {record.levelname} {record.name}: {record.message}"

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        if datefmt is not None:
            return super().formatTime(record, datefmt)
        second = int(record.created)
        if second != self._second[0]:
            self._second = (second, time.strftime(self.default_time_format, self.converter(second)))
        return f"{self._second[1]},{int(record.msecs):03d}"


class LineQueue(logging.handlers.QueueHandler):
    """Hands records to its own writer thread with the message merged, and nothing else done.

    This handler's filters (control escapes, secret redaction) run on the writer thread, just
    before the record is formatted, as do formatting and the write to stderr: none of it on
    the event loop (one line per marketplace call cost ~8 % of the server's CPU there, and
    then ~15 % with its filters; docs/benchmarks.md). The message is merged with its arguments
    here, where it is logged (they may change later), except a `LateLine`, queued as it is.
    Unlike the stdlib's `prepare`, the exception stays attached, so the JSON formatter still
    puts the traceback in its own field. The handler owns its thread: `close` (configure's, or
    logging's own at exit) writes what is queued, then ends it.
    """

    def __init__(self, writer: logging.Handler) -> None:
        # A SimpleQueue: its put takes no lock and notifies no condition (half the cost of
        # queue.Queue's on the event loop); `drain` waits for a marker instead of join().
        lines: queue.SimpleQueue[logging.LogRecord | Drained] = queue.SimpleQueue()
        super().__init__(lines)
        self._lines = lines
        self.dropped = 0
        """Lines not queued because MAX_QUEUED_LINES were waiting (see `handle`)."""
        self._listener: logging.handlers.QueueListener | None = BatchListener(lines, writer, front=self)
        self._listener.start()

    def handle(self, record: logging.LogRecord) -> bool:
        # Filters later, on the writer thread (`passes`); a SimpleQueue needs no lock.
        if self._lines.qsize() >= MAX_QUEUED_LINES:
            # stderr has not taken a line for a while (a stalled journald, a pipe nobody
            # reads): the queue would grow until the process runs out of memory. The line is
            # counted instead, and the writer thread says how many once stderr moves again.
            # (+= may lose a count when two threads drop at once: the notice is a floor.)
            self.dropped += 1
            return True
        self.emit(record)
        return True

    def take_dropped(self) -> int:
        """On the writer thread: the lines dropped since the last call."""
        dropped = self.dropped
        self.dropped -= dropped
        return dropped

    def passes(self, record: logging.LogRecord) -> bool:
        """On the writer thread: the late line made, then this handler's filters."""
        try:
            if isinstance(record.msg, LateLine):
                record.msg = str(record.msg)
            return bool(self.filter(record))
        except Exception as error:
            # Raised here it would end the writer thread: every later line lost, `drain`
            # waiting for ever. Nor is the unfiltered line or the error's text written: only
            # that a line was lost (the filters run first, before a handler's handleError).
            lost = f"a log line was lost: {type(error).__name__} while making or filtering it"
            record.msg, record.args, record.exc_info, record.exc_text = lost, None, None, None
            record.stack_info = None
            return True

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        if record.args or not isinstance(record.msg, str | LateLine):
            record.msg, record.args = record.getMessage(), None
        return record

    def drain(self) -> None:
        """Wait until every line queued so far is written."""
        if self._listener is not None:
            marker = Drained()
            self._lines.put(marker)
            marker.wait()

    def close(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            listener.stop()  # writes what is queued, then ends the thread
        super().close()


MAX_QUEUED_LINES = 50_000
"""Lines waiting for stderr at most (~25 MB of records), a few seconds of a busy server's
calls; beyond it lines are dropped and counted, never held until memory runs out."""
BATCH_SECONDS = 0.02
"""While lines keep coming, the writer thread looks for them this often instead of being woken
per line: a wake-up is a thread switch on the event loop's core, per push and per marketplace
call (docs/benchmarks.md, issue 14). A line reaches stderr at most this much later."""
QUIET_ROUNDS = 50
"""After this many empty looks (a second), the thread sleeps until the next line wakes it:
an idle server does not tick."""


class Drained(threading.Event):
    """Queued by `drain`: the writer thread sets it once every line before it is written."""


class BatchListener(logging.handlers.QueueListener):
    """A QueueListener that writes lines in batches: the event loop's `put` finds no thread
    waiting on the queue while lines flow, so it wakes none."""

    def __init__(
        self,
        lines: queue.SimpleQueue[logging.LogRecord | Drained],
        writer: logging.Handler,
        *,
        front: LineQueue,
    ) -> None:
        super().__init__(lines, writer)
        self.front = front
        """The queue handler whose filters each record passes here, before it is written."""

    def _monitor(self) -> None:
        lines: queue.SimpleQueue[logging.LogRecord | Drained] = self.queue  # type: ignore[assignment]
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
            batch: list[logging.LogRecord] = []
            markers: list[Drained] = []
            stopping = False
            while True:
                if record is self._sentinel:  # type: ignore[attr-defined]
                    stopping = True  # stop() queues it last: every line before it is written
                    break
                if isinstance(record, Drained):
                    markers.append(record)
                else:
                    batch.append(record)
                try:
                    record = lines.get_nowait()
                except queue.Empty:
                    break
            self.write(batch)
            for marker in markers:
                marker.set()
            if stopping:
                return

    def write(self, records: list[logging.LogRecord]) -> None:
        """What `handle` does for each record, with a stderr handler's lines written at once."""
        records = [record for record in records if self.front.passes(record)]
        dropped = self.front.take_dropped()
        if dropped:
            records.append(_dropped_notice(dropped))
        for handler in self.handlers:
            chosen = [r for r in records if not self.respect_handler_level or r.levelno >= handler.level]
            if isinstance(handler, StderrHandler):
                handler.emit_batch(chosen)
            else:
                for record in chosen:
                    handler.handle(record)


def _dropped_notice(count: int) -> logging.LogRecord:
    return logging.LogRecord(
        "simgate.logs",
        logging.WARNING,
        __file__,
        0,
        f"{count} log line(s) dropped: stderr took none while {MAX_QUEUED_LINES} waited",
        None,
        None,
    )


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
        handler.setFormatter(LineFormatter(TEXT_FORMAT))
    front: logging.Handler = handler
    if queued:
        front = LineQueue(handler)
    front.addFilter(ControlEscaper())
    root.handlers[:] = [front]
    root.setLevel(level)
    # Alembic narrates every start-up at INFO; our own line says which revision is served.
    logging.getLogger("alembic").setLevel(logging.WARNING)
