"""Server subprocesses: start on a free loopback port, wait until ready, stop, read CPU time."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

ROOT = Path(__file__).resolve().parent.parent
"""The checkout: the subprocesses import `bench` (and `simgate` from the venv) from here."""

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_environment(**settings: str) -> dict[str, str]:
    """The caller's environment without its SIMGATE_* settings, plus `settings`.

    A developer's own SIMGATE_DATABASE_URL or SIMGATE_CONFIG must never point the benchmark
    at a real farm's database.
    """
    environ = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("SIMGATE_") and name != "PYTHONPATH"
    }
    # ROOT/src first: the server runs this checkout's simgate even when the venv's editable
    # install points at another one (an A/B of two checkouts sharing one venv).
    environ["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    environ.update(settings)
    return environ


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and all its threads (Linux), None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may contain spaces; the fields after its closing parenthesis do not.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class ServerProcess:
    """A server in its own process, so it does not share the load generator's GIL."""

    def __init__(
        self, name: str, argv: list[str], port: int, environ: dict[str, str], log_path: Path
    ) -> None:
        self.name = name
        self.argv = argv
        self.port = port
        self.environ = environ
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self._process is not None, f"{self.name} is not running"
        return self._process.pid

    def cpu_seconds(self) -> float | None:
        return cpu_seconds(self.pid)

    def __enter__(self) -> ServerProcess:
        with self.log_path.open("wb") as log:
            # The server's log goes to a file: a pipe nobody reads would block it under load.
            self._process = subprocess.Popen(
                self.argv, cwd=ROOT, env=self.environ, stdout=log, stderr=subprocess.STDOUT
            )
        self._wait_ready(timeout=30)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def _wait_ready(self, timeout: float) -> None:
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with status {self._process.returncode}:\n{self.log_tail()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/healthz", timeout=1) as answer:
                    ready = answer.status == 200
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                ready = False
            if ready:
                # Still ours? Had another process taken the port, ours dies failing to bind.
                time.sleep(0.3)
                if self._process.poll() is None:
                    return
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"{self.name} was not ready within {timeout:.0f} s:\n{self.log_tail()}")


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
