"""PostgreSQL that hangs rather than goes: two layers, so a request is answered in time.

A server that is *gone* refuses or resets connections, and psycopg fails at once. One that
stops answering (a frozen host, a firewall that drops packets, a half-open connection after a
NAT reset, a backend process that is stopped) leaves a thread blocked on its socket for ever:
`statement_timeout` runs on the server, which is not answering, and each such thread holds a
pool connection until every request waits.

1. TCP, in the kernel (`TCP_SETTINGS`, on every connection simgate opens): keepalive probes
   once a connection has been silent for 2 s, and `tcp_user_timeout` drops it when its peer
   acknowledges nothing (neither our data nor the probes) for 5 s. That covers a peer whose
   *machine or network* is gone silent, idle pool connections included, at about 5 s
   (measured across a veth pair dropping every packet: 5.1-5.6 s; libpq's defaults: still
   waiting after 40 s; docs/deployment.md).
2. A bound in simgate (`AnswerWatch`): a round trip to the server that has waited longer than
   the server's own `statement_timeout` plus a second has its socket shut down from another
   thread; the waiting unit of work fails with StoreUnavailable (503, nothing changed; or
   OutcomeUnknown if what it waited on was its commit) and the pool replaces the connection.
   This is what bounds a peer whose *kernel* still answers: a stopped backend, a proxy or
   relay that hangs (pgbouncer, an SSH tunnel, a userspace relay on the same host: there the
   kernel acknowledges every byte the relay's buffers take, so TCP never sees a problem;
   through tests/pg_proxy.py frozen, a query with our TCP settings still waited after 25 s).
   It is the only bound on loopback, and TCP's backstop elsewhere.
   A cut during a COMMIT leaves its outcome unknown, as any connection lost then does: the
   unit fails with OutcomeUnknown, whose answer says so (storage/pg_units.py, `_committing`).

Connecting is bounded by psycopg's `connect_timeout` (the whole handshake, not only TCP).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from itertools import count
from typing import Any

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

log = logging.getLogger("simgate.postgres")

TCP_SETTINGS: dict[str, str] = {
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "3",
    # Milliseconds. Linux also applies it to keepalives: a connection whose probes go
    # unanswered is dropped once it has heard nothing for this long, whatever the count.
    "tcp_user_timeout": "5000",
}
"""libpq's TCP parameters: a dead peer noticed in about 5 s, well inside the marketplace's
10-second deadline. A healthy server's kernel answers the probes, so a long statement on it is
never cut; only a peer that acknowledges nothing is."""

ANSWER_GRACE = 1.0
"""Seconds a round trip may outlast the server's statement_timeout before we give up on it:
the server's own timeout fires first, so only a peer that does not answer at all reaches it."""
CHECK_BOUND = 1.0
"""Seconds the pool's check of an idle connection (an empty query) may take: the probe checks
them one after another while the store is held down, so after a hang that left N idle
connections silent, writes return within about N x this, not N x the statement bound."""
TICK = 0.25
"""How often the watch looks; a hang is noticed at most this late."""


def tcp_settings(url: str) -> dict[str, str]:
    """Our TCP parameters, less any the owner set in the URL (`?keepalives_idle=30`): psycopg
    lets keyword arguments override the URL, and the owner's values must win."""
    try:
        theirs = conninfo_to_dict(url)
    except psycopg.ProgrammingError:
        theirs = {}  # psycopg will refuse the URL itself, with its own message
    return {name: value for name, value in TCP_SETTINGS.items() if name not in theirs}


def with_tcp_settings(url: str) -> str:
    """The URL as a libpq conninfo string, with `tcp_settings` added."""
    return make_conninfo(url, **tcp_settings(url))


class Unanswered(psycopg.OperationalError):
    """The server did not answer a round trip within the watch's bound; its connection is cut."""


class AnswerWatch:
    """Round trips in flight, and a thread that cuts the connection of any that waited longer
    than `bound` seconds for the server's answer."""

    def __init__(self, bound: float) -> None:
        self.bound = bound
        self.cuts = 0
        """Connections cut for silence (a number to test and to log, never a control)."""
        self._waiting: dict[int, tuple[psycopg.Connection[Any], float, float]] = {}
        self._cut: set[int] = set()
        self._tokens = count()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="postgres-watch", daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def round_trip(self, conn: psycopg.Connection[Any], bound: float | None = None) -> Iterator[None]:
        """`bound`: this round trip's own limit, if shorter work than a statement is waited for."""
        token = next(self._tokens)
        limit = self.bound if bound is None else bound
        with self._lock:
            self._waiting[token] = (conn, time.monotonic(), limit)
        try:
            yield
        except psycopg.Error as error:
            if token in self._cut:  # the error is our cut, as libpq saw it: say what happened
                raise Unanswered(f"PostgreSQL did not answer within {limit:g} s") from error
            raise
        finally:
            with self._lock:
                self._waiting.pop(token, None)
                cut = token in self._cut
                self._cut.discard(token)
            if cut and not conn.closed:
                # Cut just as its answer came in: the round trip succeeded, but the socket is
                # shut; closed here, the pool discards it instead of handing it to a later unit
                # that would fail (503) for nothing.
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(TICK):
            self.cut_silent()

    def cut_silent(self) -> None:
        now = time.monotonic()
        with self._lock:  # held while cutting: a finished round trip's socket may be reused
            late = [token for token, (_, since, limit) in self._waiting.items() if now - since > limit]
            for token in late:
                conn, since, _ = self._waiting.pop(token)
                if _shut_down(conn):
                    self._cut.add(token)
                    self.cuts += 1
                    log.warning("PostgreSQL did not answer for %.1f s: connection cut", now - since)


def _shut_down(conn: psycopg.Connection[Any]) -> bool:
    """Shut the socket down under the thread blocked on it: its read returns at once, libpq
    reports the connection lost, and psycopg marks it broken (the pool discards it). Closing
    the descriptor instead would leave that thread polling a number the system may reuse."""
    try:
        fd = conn.pgconn.socket
    except psycopg.OperationalError:
        return False  # closed already
    try:
        sock = socket.socket(fileno=os.dup(fd))
    except OSError:
        return False
    with sock:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            return False
    return True
