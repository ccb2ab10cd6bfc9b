"""A fake Onlinesim PUSH_SMS receiver, in a thread or as its own process.

In a test::

    with FakeReceiver(script=[(500, {}), (200, {"status": "SUCCESS"})]) as receiver:
        ...  # point SIMGATE_ONLINESIM_PUSH_URL at receiver.url
        receiver.wait_for(2, timeout=5)

As a process (for tests that SIGKILL the server and need the receiver to outlive it)::

    python -m tests.fakes --port 8765 --delay 0.1 --log received.jsonl

writes one JSON line per request as it arrives (flushed at once, so a reader sees every
request the receiver got even if the test kills the receiver right after).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TextIO

Answer = tuple[int, Any]
"""(HTTP status, body): a dict or list is sent as JSON, str as UTF-8 text, bytes as they are."""

SUCCESS: Answer = (200, {"status": "SUCCESS"})


@dataclass
class Received:
    """One request as the receiver saw it."""

    path: str
    headers: dict[str, str]
    raw: bytes
    body: Any
    """The parsed JSON body, or None if it was not JSON."""
    at: float
    """time.time() when the request was read (before any delay)."""
    status: int = 0
    """The HTTP status answered (0 until the answer is written)."""
    answered_at: float | None = None
    """time.time() once the answer was written, None if it never was."""

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers.items() if k.lower() == name.lower()), None)

    def as_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["raw"] = self.raw.decode("utf-8", "replace")
        return record


def encode_answer(body: Any) -> tuple[bytes, str]:
    if isinstance(body, bytes):
        return body, "application/octet-stream"
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return json.dumps(body, ensure_ascii=False).encode(), "application/json; charset=utf-8"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 256  # the default 5 drops bursts of connections (the client times out)
    receiver: FakeReceiver

    def __init__(self, address: tuple[str, int], receiver: FakeReceiver) -> None:
        self.receiver = receiver
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def drop_connections(self) -> None:
        """Cut kept-alive connections too: a stopped receiver must look down to the client."""
        with self.connections_lock:
            connections = list(self.connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server: _Server

    def do_POST(self) -> None:
        self._handle()

    def do_GET(self) -> None:
        self._handle()

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw.decode("utf-8")) if raw else None
        except (UnicodeDecodeError, json.JSONDecodeError):
            body = None
        item = Received(self.path, dict(self.headers.items()), raw, body, time.time())
        receiver = self.server.receiver
        status, answer = receiver._arrived(item)
        if receiver.delay > 0:
            time.sleep(receiver.delay)
        payload, content_type = encode_answer(answer)
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            self.wfile.flush()
        except OSError:
            return
        item.status, item.answered_at = status, time.time()

    def log_message(self, format: str, *args: Any) -> None:
        pass


class FakeReceiver:
    """Records every request; answers from `script` in order, then `default`."""

    def __init__(
        self,
        script: Iterable[Answer] = (),
        *,
        default: Answer = SUCCESS,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        on_request: Callable[[Received], None] | None = None,
    ) -> None:
        self.script: list[Answer] = list(script)
        self.default = default
        self.delay = delay
        self.host = host
        self.port = port
        self.on_request = on_request
        self._requests: list[Received] = []
        self._cond = threading.Condition()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def requests(self) -> list[Received]:
        with self._cond:
            return list(self._requests)

    def set_script(self, script: Iterable[Answer], default: Answer | None = None) -> None:
        with self._cond:
            self.script = list(script)
            if default is not None:
                self.default = default

    def _arrived(self, item: Received) -> Answer:
        with self._cond:
            answer = self.script.pop(0) if self.script else self.default
            self._requests.append(item)
            self._cond.notify_all()
        if self.on_request is not None:
            self.on_request(item)
        return answer

    def wait_for(self, n: int, timeout: float) -> list[Received]:
        """Block until at least `n` requests arrived; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self._requests) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"fake receiver got {len(self._requests)} request(s) in {timeout}s, expected {n}"
                    )
                self._cond.wait(left)
            return list(self._requests)

    def start(self) -> FakeReceiver:
        self._server = _Server((self.host, self.port), self)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.drop_connections()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> FakeReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def read_log(path: Path) -> list[dict[str, Any]]:
    """The requests a standalone receiver logged so far (a half-written last line is skipped)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        with contextlib.suppress(json.JSONDecodeError):
            records.append(json.loads(line))
    return records


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds to wait before each answer")
    parser.add_argument("--log", type=Path, required=True, help="one JSON line per request")
    parser.add_argument(
        "--script", default="[]", help='JSON list of [status, body] answers, e.g. [[500, {}], [200, ""]]'
    )
    args = parser.parse_args(argv)
    lock = threading.Lock()
    log: TextIO = args.log.open("a", encoding="utf-8")

    def write(item: Received) -> None:
        with lock:
            log.write(json.dumps(item.as_json(), ensure_ascii=False) + "\n")
            log.flush()

    script = [(int(status), body) for status, body in json.loads(args.script)]
    receiver = FakeReceiver(script, delay=args.delay, host=args.host, port=args.port, on_request=write)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    receiver.start()
    print(f"listening on {receiver.url}", flush=True)
    try:
        stop.wait()
    finally:
        receiver.stop()
        log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
