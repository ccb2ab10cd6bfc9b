"""A log message made late, by the log thread: its own leaf, so that http/ may make one
without importing the logging set-up (logs.py) that DESIGN.md places above it."""

from __future__ import annotations


class LateLine:
    """A log message made by the log thread rather than where it is logged: `str()` makes it.

    For a line logged so often that making it on the event loop shows in the server's CPU
    (a marketplace call's, http/requestlog.py). What it is made from must not change once
    logged. `LineQueue` queues it as it is; the writer thread makes the text once, before the
    filters (control escapes, secret redaction) and the formatter see the record.
    """

    __slots__ = ()
