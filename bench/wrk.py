"""The HTTP rig: wrk (a C load generator) pinned to one core, the server to the other.

The Python load generator (bench/load.py) needs a whole core to drive ~2,700 pairs/s, so
on a 2-core machine it measured itself as much as the server. wrk drives ~16,000 requests/s
from one thread. Every scenario runs the same Lua script against the trivial app first, in
the same run, so its figures come with their own ceiling beside them.

Other scenarios plug in by calling `run_wrk` with their own script and servers.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench.procs import ROOT

LUA = ROOT / "bench" / "pairs.lua"
RESULT_PREFIX = "BENCH_RESULT "

SERVER_CPU = 0
LOAD_CPU = 1
"""With two or more CPUs the server runs on CPU 0 and the load generator on CPU 1."""


def find_wrk(say: Callable[[str], None]) -> str | None:
    """The wrk binary; installs Debian's package when we may (root with apt-get), else None."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt and os.geteuid() == 0:
        say("wrk is missing: apt-get install -y wrk")
        subprocess.run(
            [apt, "install", "-y", "-q", "wrk"],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            capture_output=True,
            check=False,
            timeout=300,
        )
        return shutil.which("wrk")
    return None


def can_pin() -> bool:
    return shutil.which("taskset") is not None and len(os.sched_getaffinity(0)) >= 2


def pinned(argv: Sequence[str], cpu: int) -> list[str]:
    """`argv` run on one CPU (taskset), or as is where that is not possible."""
    if not can_pin():
        return list(argv)
    return ["taskset", "-c", str(cpu), *argv]


@dataclasses.dataclass(frozen=True, slots=True)
class WrkRun:
    requests: int
    seconds: float
    gets: int
    finishes: int
    no_numbers: int
    failures: int
    socket_errors: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mean_ms: float
    server_cpu_percent: float | None

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    @property
    def pairs_per_second(self) -> float:
        return self.finishes / self.seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            **dataclasses.asdict(self),
            "requests_per_second": self.requests_per_second,
            "pairs_per_second": self.pairs_per_second,
        }


def lua_script(folder: Path, key: str, bodies: Sequence[bytes]) -> Path:
    """pairs.lua with the GET_NUMBER bodies and the key written in as Lua literals."""
    lines = ["bodies = {"]
    # ensure_ascii=False: LuaJIT knows no \u escapes; raw UTF-8 in a Lua string is fine.
    lines += [f"  {json.dumps(body.decode(), ensure_ascii=False)}," for body in bodies]
    lines += ["}", f"key = {json.dumps(key, ensure_ascii=False)}", ""]
    path = folder / "pairs-run.lua"
    path.write_text("\n".join(lines) + LUA.read_text())
    return path


def run_wrk(
    wrk: str,
    url: str,
    script: Path,
    *,
    connections: int,
    seconds: float,
    server_cpu: Callable[[], float | None] | None = None,
) -> WrkRun:
    """One wrk run, one thread, pinned; its Lua `done` prints one BENCH_RESULT JSON line."""
    argv = pinned(
        [wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
         "-s", str(script), url],
        LOAD_CPU,
    )  # fmt: skip
    before = server_cpu() if server_cpu else None
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    after = server_cpu() if server_cpu else None
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if done.returncode != 0 or not lines:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(lines[-1][len(RESULT_PREFIX) :])
    elapsed = raw["duration_us"] / 1e6
    return WrkRun(
        requests=raw["requests"],
        seconds=elapsed,
        gets=raw["gets"],
        finishes=raw["finishes"],
        no_numbers=raw["no_numbers"],
        failures=raw["failures"] + raw["non_2xx"],
        socket_errors=raw["socket_errors"],
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        p999_ms=raw["p999_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        server_cpu_percent=None if before is None or after is None else 100 * (after - before) / elapsed,
    )
