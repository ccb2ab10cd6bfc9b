"""Who holds a claim (`host:pid:random`), and whether that process is still alive.

A worker killed mid-push leaves its claims behind. Another host can only wait for the lease
to run out, but a worker on the same host can ask the kernel: if the pid is gone, so is the
push, and the claims are released at once instead of a lease later (a code SMS 30 s late).

"Same host" means same host name *and* same pid namespace: two containers sharing a host
name (`--network host`) see different processes under one pid, and must never judge each
other's workers. Where the namespace cannot be read, no claim is ever judged dead early.
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import Iterable
from pathlib import Path


def host_identity() -> str:
    """`hostname/pid-namespace`, or the bare host name where the namespace is unreadable."""
    host = socket.gethostname().replace(":", "_")
    try:
        namespace = os.readlink("/proc/self/ns/pid")  # "pid:[4026531836]"
    except OSError:
        return host
    return f"{host}/{namespace.removeprefix('pid:[').rstrip(']')}"


def worker_name() -> str:
    return f"{host_identity()}:{os.getpid()}:{secrets.token_hex(2)}"


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return True  # not a pid we can judge: assume alive, the lease decides
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    try:  # a zombie is dead for our purpose: killed, not yet reaped by its parent
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[-1].split()[:1] != ["Z"]


def dead_on_this_host(claimants: Iterable[str], me: str) -> list[str]:
    """The claimants that ran on this host (same pid namespace) and whose process is gone."""
    host = host_identity()
    if "/" not in host:
        return []
    dead = []
    for name in claimants:
        parts = name.split(":")
        if name == me or len(parts) != 3 or parts[0] != host or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid != os.getpid() and not pid_alive(pid):
            dead.append(name)
    return dead
