"""Gammu: `simgate intake gammu` is gammu-smsd's RunOnReceive program.

gammu-smsd runs it once per received message (all parts of a multipart SMS at once) with the
message in its environment (gammu-smsd-run(7)):

    SMS_MESSAGES=3  SMS_1_NUMBER=+79001112233  SMS_1_TEXT=...  SMS_2_TEXT=...  SMS_3_TEXT=...
    DECODED_PARTS=1 DECODED_1_TEXT=<the whole text, already reassembled and decoded>
    PHONE_ID=modem1 (gammu 1.38.2+, with several smsd instances)

and appends the ids the backend stored the parts under (file names or row ids) as arguments.
The command posts the SMS to the server's POST /intake/sms and exits 0 only when the server
has stored it; otherwise it retries for `timeout` seconds (gammu waits up to two minutes)
and exits non-zero, which gammu-smsd logs. The message id sent is built from gammu's own ids,
so running the command again for the same message is recognised as a resend.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from simgate.domain.types import PhoneNumber
from simgate.hardware.settings_table import Table

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from simgate.hardware.base import Background, Clock, Sink
    from simgate.hardware.status import DriverStatus

DEFAULT_URL = "http://127.0.0.1:8080"
MAX_PARTS = 255
"""A concatenated SMS has at most 255 parts (its header counts them in one byte)."""


class GammuError(Exception):
    """The command cannot hand this message over; the text says why."""


@dataclass(frozen=True, slots=True)
class GammuConfig:
    url: str = DEFAULT_URL
    phone: PhoneNumber | None = None
    phones: dict[str, PhoneNumber] | None = None
    """PHONE_ID -> the SIM's number, for several gammu-smsd instances on one machine."""
    timeout: float = 60.0

    @classmethod
    def parse(cls, table: Table) -> GammuConfig:
        url = table.string("url", DEFAULT_URL) or DEFAULT_URL
        if not url.startswith(("http://", "https://")):
            raise table.fail("url", "must be the simgate server's http:// or https:// address")
        config = cls(
            url=url.rstrip("/"),
            phone=table.phone("phone"),
            phones=table.phones("phones"),
            timeout=table.number("timeout", 60.0, 1.0, 110.0),
        )
        table.done()
        return config


@dataclass(frozen=True, slots=True)
class GammuMessage:
    sender: str
    text: str
    parts: int
    phone_id: str | None


def read_environment(environ: Mapping[str, str]) -> GammuMessage:
    """The SMS from gammu-smsd's RunOnReceive variables, preferring the decoded text."""
    try:
        count = int(environ.get("SMS_MESSAGES", "0") or "0")
        decoded = int(environ.get("DECODED_PARTS", "0") or "0")
    except ValueError as error:
        raise GammuError(f"SMS_MESSAGES / DECODED_PARTS are not numbers: {error}") from None
    if count < 1:
        raise GammuError("SMS_MESSAGES is missing or 0: run this from gammu-smsd's RunOnReceive")
    if count > MAX_PARTS or not 0 <= decoded <= MAX_PARTS:
        # A count of 10^8 walked 10^8 variable names: gammu-smsd's run never ended.
        raise GammuError(f"SMS_MESSAGES / DECODED_PARTS must be 0 to {MAX_PARTS} (the parts of one SMS)")
    sender = environ.get("SMS_1_NUMBER", "").strip()
    # DECODED_n_TEXT is the reassembled, decoded message: concatenated parts joined, UCS2 and
    # the GSM alphabet resolved. The raw SMS_n_TEXT is the fallback for older gammu.
    texts = [environ.get(f"DECODED_{index}_TEXT") for index in range(1, decoded + 1)]
    if any(texts):
        text = "".join(part for part in texts if part)
    else:
        text = "".join(environ.get(f"SMS_{index}_TEXT", "") for index in range(1, count + 1))
    return GammuMessage(sender=sender, text=text, parts=count, phone_id=environ.get("PHONE_ID") or None)


def message_id(message: GammuMessage, ids: Sequence[str]) -> str:
    """Stable across runs when gammu passed its ids; else unique to this run (its own retries)."""
    scope = f"{message.phone_id}:" if message.phone_id else ""
    if ids:
        return f"gammu:{scope}{','.join(ids)}"[:200]
    return f"gammu:{scope}{uuid.uuid4().hex}"


def choose_phone(config: GammuConfig, message: GammuMessage, override: str | None) -> str:
    if override:
        return override
    if message.phone_id and config.phones and message.phone_id in config.phones:
        return config.phones[message.phone_id]
    if config.phone:
        return config.phone
    raise GammuError(
        "the receiving number is unknown: set [hardware.gammu] phone (or phones.<PHONE_ID>) or pass --phone"
    )


def post(url: str, token: str, body: dict[str, object], timeout: float) -> tuple[int, str]:
    """(HTTP status, body text); raises OSError for connection failures."""
    request = urllib.request.Request(  # noqa: S310 - the URL's scheme is checked in GammuConfig/cli
        f"{url}/intake/sms",
        data=json.dumps(body, ensure_ascii=False).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json; charset=utf-8"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:  # noqa: S310
            return int(reply.status), reply.read().decode("utf-8", errors="replace")
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode("utf-8", errors="replace")


def hand_over(
    url: str,
    token: str,
    body: dict[str, object],
    timeout: float,
    sleep: float = 1.0,
) -> tuple[int, str]:
    """Post until the server answers for good (2xx or 4xx) or `timeout` runs out.

    A 5xx or a refused connection is worth another try: the server restarts in seconds, and
    the same message id makes a retry after a lost answer a recognised resend.
    """
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            status, text = post(url, token, body, timeout=max(1.0, min(10.0, remaining)))
        except OSError as error:
            status, text = 0, f"cannot reach {url}: {getattr(error, 'reason', error)}"
        if 200 <= status < 500 or time.monotonic() + sleep >= deadline:
            return status, text
        time.sleep(sleep)
        sleep = min(sleep * 2, 8.0)


@dataclass(frozen=True, slots=True)
class GammuDriver:
    """Nothing runs inside the server: gammu-smsd runs `simgate intake gammu` for each SMS,
    which posts it to /intake/sms (that source's status is on the Hardware page). `serve`
    still reads the table so that a typo in it stops the server at start."""

    config: GammuConfig
    idle_note: ClassVar[str] = (
        "gammu-smsd runs simgate intake gammu for each SMS, which posts it to /intake/sms;"
        " there is no connection to watch"
    )

    def routes(self) -> list[BaseRoute]:
        return []

    def background(self) -> list[Background]:
        return []

    def status(self) -> list[DriverStatus]:
        return []


def build(table: Table, sink: Sink, clock: Clock) -> GammuDriver:
    return GammuDriver(GammuConfig.parse(table))
