"""What the figures were measured on: they mean little without the machine beside them."""

from __future__ import annotations

import datetime
import os
import platform
import sqlite3
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from bench.procs import ROOT

PACKAGES = ("uvicorn", "starlette", "uvloop", "httptools", "msgspec", "aiohttp")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cpus() -> int:
    """What `nproc` prints: the CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def git_revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{head}{'+dirty' if dirty else ''}" if head else "unknown"


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "not installed"


def load_average() -> float | None:
    """The 1-minute load average: above ~0.5 on 2 cores, something else shared the machine."""
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return None


def describe() -> dict[str, object]:
    return {
        "load_average_at_start": load_average(),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "nproc": usable_cpus(),
        "cpu": cpu_model(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "platform": platform.platform(),
        "git": git_revision(),
        "packages": {name: _version(name) for name in PACKAGES},
    }
