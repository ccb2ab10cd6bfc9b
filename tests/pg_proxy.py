"""A TCP relay in front of PostgreSQL that a test can take down and bring back: an outage of
the server as a client sees it (every session cut off, new ones refused) without restarting
the shared server, so tests of reconnection need not run alone.

It can also freeze: a server that hangs rather than goes (a frozen host, a firewall that drops
packets, a half-open connection after a NAT reset). Every session stays open and new ones are
accepted, but no byte moves either way until it thaws. On loopback the kernel still
acknowledges what the client sends (the relay's socket buffers take it), so TCP's own timeouts
(keepalives, tcp_user_timeout) never fire here: only a bound in the client notices."""

from __future__ import annotations

import contextlib
import socket
import threading
from urllib.parse import urlsplit, urlunsplit


class PgRelay:
    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self._target = (parts.hostname or "127.0.0.1", parts.port or 5432)
        self._listener = socket.create_server(("127.0.0.1", 0))
        port = self._listener.getsockname()[1]
        auth = f"{parts.username}@" if parts.username else ""
        self.url = urlunsplit((parts.scheme, f"{auth}127.0.0.1:{port}", parts.path, parts.query, ""))
        self.up = True
        self.connections = 0
        """Sessions opened through the relay while it was up."""
        self._links: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        self._flowing = threading.Event()
        self._flowing.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def down(self) -> None:
        """The server is gone: every session is cut, every new one refused."""
        with self._lock:
            self.up = False
            links, self._links = self._links, set()
        for link in links:
            with contextlib.suppress(OSError):
                link.shutdown(socket.SHUT_RDWR)
            link.close()

    def back(self) -> None:
        with self._lock:
            self.up = True

    def freeze(self) -> None:
        """The server hangs: sessions stay open, new ones are accepted, nothing is forwarded."""
        self._flowing.clear()

    def thaw(self) -> None:
        """Whatever was held moves on, and so does everything after it."""
        self._flowing.set()

    @property
    def frozen(self) -> bool:
        return not self._flowing.is_set()

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()
        self._flowing.set()  # pumps holding bytes find their sockets closed and end

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                if not self.up:
                    client.close()  # what a client sees of a server that is not there
                    continue
                try:
                    server = socket.create_connection(self._target, timeout=3)
                except OSError:
                    client.close()
                    continue
                server.settimeout(None)
                self._links |= {client, server}
                self.connections += 1
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                self._flowing.wait()  # frozen: hold it, and read nothing more
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
