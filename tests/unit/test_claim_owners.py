"""Whose claim is it, and is its process alive (delivery/owners.py; issue 12.4)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from simgate.config import Settings
from simgate.delivery.owners import dead_on_this_host, host_identity, pid_alive, worker_name
from simgate.delivery.worker import lease_for


def finished_pid() -> int:
    done = subprocess.Popen([sys.executable, "-c", "pass"])
    done.wait()
    return done.pid


def test_the_worker_name_is_host_pid_random_and_names_this_process() -> None:
    host, pid, rand = worker_name().split(":")
    assert host == host_identity()
    assert pid == str(os.getpid())
    assert len(rand) == 4


@pytest.mark.skipif(not os.path.exists("/proc/self/ns/pid"), reason="needs /proc")
def test_only_a_dead_worker_of_this_host_and_namespace_is_judged_dead() -> None:
    host = host_identity()
    me = worker_name()
    dead, alive = f"{host}:{finished_pid()}:beef", f"{host}:{os.getppid()}:cafe"
    elsewhere = f"otherhost/4026531836:{finished_pid()}:0001"
    other_namespace = f"{host.split('/')[0]}/1:{finished_pid()}:0002"
    odd = [f"{host}:notapid:0003", "legacy-name", f"{host}:{os.getpid()}:0004"]
    claimants = [me, dead, alive, elsewhere, other_namespace, *odd]
    assert dead_on_this_host(claimants, me) == [dead]


def test_a_killed_process_not_yet_reaped_counts_as_dead() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert pid_alive(child.pid)
        child.kill()
        import time

        deadline = time.monotonic() + 10
        while pid_alive(child.pid):  # a zombie until waited for
            assert time.monotonic() < deadline
            time.sleep(0.02)
    finally:
        child.kill()
        child.wait()


def test_the_lease_outlasts_an_attempt_with_a_wide_margin() -> None:
    for timeout in (0.5, 1.0, 10.0, 30.0, 120.0):
        assert lease_for(timeout) >= timeout + 10 + timeout


def test_the_default_push_timeout_is_generous() -> None:
    # Onlinesim's own deadline is 10 s; an answer slower than our timeout means a second copy.
    assert Settings().push_timeout_seconds >= 30
