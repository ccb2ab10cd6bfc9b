"""SIGTERM stops `simgate serve` cleanly: the store closed and every log line written.

uvicorn hands a SIGTERM it caught back to the handler it found, once it has shut down: with
the default one the process died at once, before the log thread wrote its last lines (the
shutdown's own, a delivery worker's stop, the requests finished in the meantime) and before
the store was closed."""

from __future__ import annotations

import signal
from pathlib import Path

import httpx

from simgate.storage import schema
from tests.conftest import KEY
from tests.e2e.processes import processes, simgate_env


def test_sigterm_writes_every_line_and_exits_0(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    schema.upgrade(url)
    env = simgate_env(url, log_format="text")
    with processes(tmp_path) as group:
        served = group.serve(env, "serve")
        answer = httpx.post(f"{served}/onlinesim/getServices", json={"key": KEY}, timeout=10)
        assert answer.status_code == 200
        (process,) = group.started
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    log = (tmp_path / "serve.log").read_text()
    assert "onlinesim getServices -> 200" in log
    assert "Finished server process" in log, log[-2000:]
