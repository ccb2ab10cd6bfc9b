"""A GSM modem on a pseudo-terminal: answers AT commands, stores PDUs, and misbehaves on demand.

It runs in its own thread, so a driver blocked on it behaves as with a real modem. Its port is
reached through a symlink, like /dev/serial/by-path/...: `unplug()` closes the terminal (the
driver's reads fail as with a pulled USB cable) and `replug()` makes a new one behind the same
link. The SIM storage survives the unplug, as a SIM's does.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from pathlib import Path

from tests.hardware.pdus import tpdu_length

NOISE = b"\x00\xff\x13\x1b[garbage\xfe\r\n#@!~line noise\r\n\x07"


class FakeModem:
    def __init__(
        self,
        link: Path,
        own_number: str | None = "+79281234567",
        iccid: str = "89701011234567890123",
        imsi: str = "250011234567890",
    ) -> None:
        self.link = link
        self.own_number = own_number
        self.iccid, self.imsi = iccid, imsi
        self.storage: dict[int, str] = {}
        self.registration = 1
        self.echo = True
        self.hang_until = 0.0
        self.garbage = False
        self.commands: list[str] = []
        self.deleted: list[int] = []
        self.lock = threading.RLock()
        self.master: int | None = None
        self.slave: int | None = None
        self.stopping = False
        self.replug()
        self.thread = threading.Thread(target=self._run, name="fake-modem", daemon=True)
        self.thread.start()

    # -- the test's handles ------------------------------------------------------------------

    def replug(self) -> None:
        with self.lock:
            master, slave = os.openpty()
            tty.setraw(slave)
            self.master, self.slave = master, slave
            self.echo = True
            temporary = self.link.with_suffix(".new")
            temporary.unlink(missing_ok=True)
            temporary.symlink_to(os.ttyname(slave))
            os.replace(temporary, self.link)

    def unplug(self) -> None:
        with self.lock:
            self.link.unlink(missing_ok=True)
            for fd in (self.master, self.slave):
                if fd is not None:
                    os.close(fd)
            self.master = self.slave = None

    def store(self, pdu: str, notify: bool = True) -> int:
        """The network delivers an SMS: into the lowest free slot, then +CMTI."""
        with self.lock:
            index = next(i for i in range(1, 1000) if i not in self.storage)
            self.storage[index] = pdu
            if notify:
                self._write(f'\r\n+CMTI: "SM",{index}\r\n'.encode())
            return index

    def hang(self, seconds: float) -> None:
        self.hang_until = time.monotonic() + seconds

    def stop(self) -> None:
        self.stopping = True
        self.thread.join(timeout=5)
        self.unplug()

    # -- the modem ---------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        with self.lock:
            if self.master is None:
                return
            with contextlib.suppress(OSError):
                os.write(self.master, data)

    def _run(self) -> None:
        pending = b""
        while not self.stopping:
            master = self.master
            if master is None:
                time.sleep(0.02)
                continue
            try:
                ready, _, _ = select.select([master], [], [], 0.05)
                if not ready:
                    continue
                chunk = os.read(master, 4096)
            except OSError:
                time.sleep(0.02)  # unplugged under us, or nobody has the port open
                continue
            pending += chunk
            while b"\r" in pending:
                raw, pending = pending.split(b"\r", 1)
                command = raw.strip(b"\n").decode("ascii", errors="replace").strip()
                if command:
                    self._handle(command)

    def _handle(self, command: str) -> None:
        self.commands.append(command)
        if time.monotonic() < self.hang_until:
            return  # hung: the command vanishes, as on a wedged module
        out = b""
        if self.echo:
            out += command.encode() + b"\r"
        if self.garbage:
            out += NOISE
        try:
            lines = self._answer(command)
            out += b"".join(b"\r\n" + line.encode() + b"\r\n" for line in lines) + b"\r\nOK\r\n"
        except LookupError:
            out += b"\r\nERROR\r\n"
        if self.garbage:
            out = out[:3] + b"\x00\xff" + out[3:] + NOISE
        self._write(out)

    def _answer(self, command: str) -> list[str]:
        upper = command.upper()
        if upper in ("AT", "AT+CMEE=1", "AT+CMGF=0") or upper.startswith(("AT+CNMI=", "AT+CPMS=")):
            return []
        if upper == "ATE0":
            self.echo = False
            return []
        if upper == "AT+CNUM":
            return [f'+CNUM: "","{self.own_number}",145'] if self.own_number else []
        if upper == "AT+CCID":
            return [f"+CCID: {self.iccid}"]
        if upper == "AT+CIMI":
            return [self.imsi]
        if upper == "AT+CREG?":
            return [f"+CREG: 0,{self.registration}"]
        if upper == "AT+CSQ":
            return ["+CSQ: 21,99"]
        if upper == "AT+CMGL=4":
            with self.lock:
                listing = sorted(self.storage.items())
            lines: list[str] = []
            for index, pdu in listing:
                lines += [f"+CMGL: {index},0,,{tpdu_length(pdu)}", pdu]
            return lines
        if upper.startswith("AT+CMGD="):
            index = int(upper.split("=", 1)[1].split(",")[0])
            with self.lock:
                self.storage.pop(index, None)
                self.deleted.append(index)
            return []
        raise LookupError(command)
