"""AT-command modems: the driver against a simulated modem on a pseudo-terminal."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from simgate.domain.types import PhoneNumber
from simgate.hardware.modem import ModemDriver
from simgate.hardware.modem.assembly import MISSING, Assembler
from simgate.hardware.modem.pdu import Stored, decode, parse_listing
from simgate.hardware.modem.port import ModemConfig, PortConfig
from simgate.services.intake import Accepted
from simgate.storage.sqlite import SQLiteStore
from tests.conftest import LiveServer
from tests.hardware.conftest import PHONES, PushCounter, online, open_operation, sink, stored, until, wait_for
from tests.hardware.fake_modem import FakeModem
from tests.hardware.pdus import concatenated, deliver

OWN = PHONES[7]
SENDER = "+79001112233"
LONG = (
    "Ваш код для входа: 482910. Никому не сообщайте его, даже если звонят из банка. "  # noqa: RUF001
    "Код действует 10 минут. Если вы не запрашивали код, просто проигнорируйте это сообщение 🙂"
)
CUT_UCS2 = (
    "Код входа: 482910. Никому не говорите его, даже сотрудникам банка 🔐 Он действует 10 минут. "  # noqa: RUF001
    "Если вы не запрашивали этот код, проигнорируйте сообщение."
)
"""Cut every 67 UTF-16 code units, as phones cut: the first cut falls between the two halves of
🔐 (a surrogate pair), the second inside 'проигнори|руйте'."""
CUT_GSM = (
    "Payment of 25.00 to Spotify AB confirmed. Code 731 904: enter it on the merchant page within 5 "
    "minutes. Never share it, not even with bank staff. Paid: €25 {card *4417}. Questions? Call 900."
)
"""Cut after 153 septets: the escape of '€' (0x1B 0x65) ends part 1, its 0x65 begins part 2."""
FAST: dict[str, Any] = {
    "sweep_seconds": 30.0,
    "status_seconds": 30.0,
    "command_timeout": 0.4,
    "list_timeout": 0.8,
    "multipart_timeout": 30.0,
    "reopen_seconds": 0.1,
    "max_backoff": 0.3,
}


def three_ucs2_parts(text: str, reference: int = 0x5A) -> list[str]:
    size = -(-len(text) // 3)
    pieces = [text[i : i + size] for i in range(0, len(text), size)]
    return [deliver(SENDER, piece, ucs2=True, part=(reference, 3, n)) for n, piece in enumerate(pieces, 1)]


@pytest.fixture
def modem(tmp_path: Path) -> Iterator[FakeModem]:
    fake = FakeModem(tmp_path / "pci-0000:00:14.0-usb-0:1.4:1.0-port0", own_number=f"+{OWN}")
    yield fake
    fake.stop()


def driver_for(
    store: SQLiteStore, fake: FakeModem, phone: PhoneNumber | None = None, **changes: Any
) -> ModemDriver:
    port = PortConfig(device=str(fake.link), phone=phone)
    config = ModemConfig(ports=(port,), **{**FAST, **changes})
    return ModemDriver(config, sink(store), time.time)


async def test_stored_pdus_are_read_assembled_and_deleted_after_the_commit(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    operation = open_operation(sqlite_store, OWN)
    first, second, third = three_ucs2_parts(LONG)
    modem.store(deliver(SENDER, "Telegram code 55555 [x]"), notify=False)
    for pdu in (third, first, second):  # the network delivered the parts out of order
        modem.store(pdu, notify=False)
    driver = driver_for(sqlite_store, modem)  # no phone configured: AT+CNUM names it
    async with driver.running():
        await until(lambda: len(stored(sqlite_store)) == 2 and not modem.storage, what="both SMS stored")
        port = driver.health.ports[str(modem.link)]
        assert (port.phone, port.online, port.signal) == (OWN, True, 21)
        assert (port.iccid, port.imsi) == ("89701011234567890123", "250011234567890")
    texts = {message.text: (message, delivery) for message, delivery in stored(sqlite_store)}
    assert set(texts) == {"Telegram code 55555 [x]", LONG}
    message, delivery = texts[LONG]
    assert (message.phone, message.sender, message.operation_id) == (OWN, SENDER, operation)
    assert delivery is not None
    assert sorted(modem.deleted) == [1, 2, 3, 4]
    assert "AT+CMGF=0" in modem.commands  # PDU mode


async def test_a_cmti_notification_is_read_at_once(sqlite_store: SQLiteStore, modem: FakeModem) -> None:
    driver = driver_for(sqlite_store, modem, phone=OWN)
    async with driver.running():
        await until(lambda: "AT+CMGL=4" in modem.commands, what="the first sweep")
        started = time.monotonic()
        modem.store(deliver(SENDER, "code 777"))
        # Read on the notification, not by the next sweep 30 s on: 20 s tells the two apart
        # with room for a loaded machine (reading it takes milliseconds).
        await until(lambda: stored(sqlite_store), seconds=20, what="the notified SMS")
        assert time.monotonic() - started < 20
        await until(lambda: not modem.storage, what="the slot deleted")


async def test_the_driver_recovers_from_noise_a_hang_and_an_unplug(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    driver = driver_for(sqlite_store, modem, phone=OWN)
    modem.garbage = True
    async with driver.running():
        modem.store(deliver(SENDER, "code 1 through line noise"))
        await until(lambda: len(stored(sqlite_store)) == 1, what="the SMS read through noise")
        modem.garbage = False
        modem.hang(1.5)
        modem.store(deliver(SENDER, "code 2 after a hang"))
        await until(lambda: len(stored(sqlite_store)) == 2, seconds=15, what="the SMS after the hang")
        modem.unplug()
        await until(lambda: not online(sqlite_store, OWN), what="the SIM marked offline")
        modem.store(deliver(SENDER, "code 3 kept on the SIM while unplugged"), notify=False)
        await asyncio.sleep(0.3)
        modem.replug()
        await until(lambda: len(stored(sqlite_store)) == 3, seconds=15, what="the SMS after re-plugging")
        await until(lambda: online(sqlite_store, OWN) and not modem.storage, what="back online, SIM empty")
        assert driver.health.last_error is not None
    assert sorted(m.text for m, _ in stored(sqlite_store)) == [
        "code 1 through line noise",
        "code 2 after a hang",
        "code 3 kept on the SIM while unplugged",
    ]


async def test_a_missing_part_is_given_up_on_after_the_timeout(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    first, _, third = three_ucs2_parts(LONG, reference=7)
    modem.store(first, notify=False)
    modem.store(third, notify=False)
    driver = driver_for(sqlite_store, modem, phone=OWN, multipart_timeout=1.0)
    async with driver.running():
        [(message, _)] = await until(lambda: stored(sqlite_store), what="the incomplete SMS")
        await until(lambda: not modem.storage, what="its parts deleted")
    assert message.text.startswith(LONG[:20])
    assert MISSING in message.text


async def test_killed_between_commit_and_delete_the_sms_is_stored_and_pushed_once(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    open_operation(sqlite_store, OWN)
    modem.store(deliver(SENDER, "code 4242"), notify=False)
    first = driver_for(sqlite_store, modem, phone=OWN)
    committed = asyncio.Event()

    async def stall(accepted: Accepted) -> None:
        committed.set()
        await asyncio.Event().wait()  # killed here: after the commit, before AT+CMGD

    first.sink.after_commit = stall
    async with first.running():
        await asyncio.wait_for(committed.wait(), 10)
    assert modem.storage
    assert len(stored(sqlite_store)) == 1
    second = driver_for(sqlite_store, modem, phone=OWN)
    async with second.running():
        await until(lambda: not modem.storage, what="the resend deleted")
    [(message, delivery)] = stored(sqlite_store)
    assert message.text == "code 4242"
    assert delivery is not None
    assert (second.health.duplicates, second.health.received) == (1, 0)


async def test_losing_registration_takes_the_sim_off_sale(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    driver = driver_for(sqlite_store, modem, phone=OWN, status_seconds=0.3)
    async with driver.running():
        await until(lambda: driver.health.ports[str(modem.link)].online is True, what="registered")
        modem.registration = 0
        await until(lambda: not online(sqlite_store, OWN), what="offline after deregistration")
        assert driver.health.ports[str(modem.link)].registration == "not registered"


def test_a_modem_pool_in_serve_pushes_each_sms_once(
    serve: Callable[..., LiveServer], modem: FakeModem, push_counter: PushCounter
) -> None:
    toml = f"""
[hardware.modem]
command_timeout = 1
sweep_seconds = 30
[[hardware.modem.ports]]
device = "{modem.link}"
phone = "{OWN}"
"""
    server = serve(toml, onlinesim_push_url=push_counter.url)
    assert server.store is not None
    operation = open_operation(server.store, OWN)
    wait_for(lambda: "AT+CMGL=4" in modem.commands, what="the modem opened by serve")
    modem.store(deliver(SENDER, "Your WhatsApp code 123-456"))
    wait_for(lambda: push_counter.pushes, what="the push")
    wait_for(lambda: not modem.storage, what="the slot deleted")
    time.sleep(0.5)
    [push] = push_counter.pushes
    assert (push["smsId"], push["text"], push["phoneFrom"]) == (
        operation,
        "Your WhatsApp code 123-456",
        SENDER,
    )


def test_listings_tolerate_noise_and_a_missing_alpha_field() -> None:
    pdu = deliver(SENDER, "code 9")
    lines = ["+CMGL: 1,0,,24", pdu, "#@!noise", "+CMGL: 2,1,24", pdu, "+CMGL: 3,0,,24", "not hex"]
    assert [stored.index for stored in parse_listing(lines)] == [1, 2]


def test_status_reports_are_not_sms_and_parts_keep_their_place() -> None:
    report = "0006D60B911326880736F4111011719551401110117195714000"
    assert decode(Stored(5, report)) is None
    first, second, third = three_ucs2_parts(LONG)
    parts = [decode(Stored(i, pdu)) for i, pdu in enumerate((third, first, second), 1)]
    assembler = Assembler(timeout=60)
    [whole] = assembler.ready([part for part in parts if part is not None], now=0.0)
    assert whole.text == LONG
    assert whole.indices == (1, 2, 3)
    assert whole.key == assembler.ready([p for p in reversed(parts) if p is not None], now=1.0)[0].key


def test_the_sample_messages_are_cut_where_the_tests_need_it() -> None:
    units = CUT_UCS2.encode("utf-16-be")
    assert units[132:136].decode("utf-16-be") == "🔐"  # octets 132-133 end part 1, 134-135 begin part 2
    assert units[262:268].decode("utf-16-be") + "|" + units[268:274].decode("utf-16-be") == "ори|руй"
    assert len(concatenated(SENDER, CUT_UCS2, ucs2=True)) == 3
    assert CUT_GSM.index("€") == 152  # septet 152 is the escape, the last of part 1's 153
    assert len(concatenated(SENDER, CUT_GSM)) == 2


async def test_a_ucs2_sms_cut_inside_an_emoji_and_a_word_arrives_as_sent(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    operation = open_operation(sqlite_store, OWN)
    first, second, third = concatenated(SENDER, CUT_UCS2, ucs2=True, reference=0xC3)
    # The product's own command timeouts, not FAST's: an answer a loaded machine delays past
    # 0.4 s would be taken for a hang and leave the error this test says never happened.
    driver = driver_for(sqlite_store, modem, phone=OWN, command_timeout=5.0, list_timeout=20.0)
    async with driver.running():
        await until(lambda: "AT+CMGL=4" in modem.commands, what="the first sweep")
        for pdu in (second, third, first):  # out of order, each announced by +CMTI
            modem.store(pdu)
            await asyncio.sleep(0.3)
        await until(lambda: stored(sqlite_store) and not modem.storage, what="the SMS stored, slots freed")
        assert driver.health.last_error is None  # no part was ever unreadable
    [(message, delivery)] = stored(sqlite_store)
    assert message.text == CUT_UCS2
    assert (message.sender, message.operation_id) == (SENDER, operation)
    assert delivery is not None
    assert sorted(modem.deleted) == [1, 2, 3]


async def test_a_gsm_sms_cut_inside_an_escape_sequence_arrives_as_sent(
    sqlite_store: SQLiteStore, modem: FakeModem
) -> None:
    open_operation(sqlite_store, OWN)
    first, second = concatenated(SENDER, CUT_GSM, reference=0x44)
    modem.store(second, notify=False)
    modem.store(first, notify=False)
    driver = driver_for(sqlite_store, modem, phone=OWN)
    async with driver.running():
        await until(lambda: stored(sqlite_store) and not modem.storage, what="the SMS stored, slots freed")
    [(message, _)] = stored(sqlite_store)
    assert message.text == CUT_GSM
    assert sorted(modem.deleted) == [1, 2]
