"""Running real `simgate` processes from tests: start, wait until ready, always clean up."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx

from tests.conftest import INTAKE_TOKEN, KEY, free_port

SIMGATE = str(Path(sys.executable).parent / "simgate")


def simgate_env(database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SIMGATE_")}
    env.update(
        SIMGATE_DATABASE_URL=database_url,
        SIMGATE_ONLINESIM_KEY=KEY,
        SIMGATE_INTAKE_TOKEN=INTAKE_TOKEN,
    )
    env.update({f"SIMGATE_{k.upper()}": v for k, v in settings.items()})
    return env


def run(args: list[str], env: Mapping[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SIMGATE, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )


class Processes:
    """Every process a test starts, killed at the end whatever happens."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, args: list[str], env: Mapping[str, str], name: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{name}.log").open("wb")
        process = subprocess.Popen([SIMGATE, *args], env=dict(env), stdout=log, stderr=log)
        self.started.append(process)
        return process

    def serve(self, env: Mapping[str, str], name: str, *extra: str) -> str:
        port = free_port()
        process = self.start(["serve", "--port", str(port), *extra], env, name)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, process, self.logs / f"{name}.log")
        return url

    def kill_all(self) -> None:
        for process in self.started:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url} exited {process.returncode}: {log.read_text()[-2000:]}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready after {timeout}s: {log.read_text()[-2000:]}")


@contextlib.contextmanager
def processes(logs: Path) -> Iterator[Processes]:
    group = Processes(logs)
    try:
        yield group
    finally:
        group.kill_all()
