"""`numbers list`, `sms list` and `operations list` at 80 and 120 columns: nothing cut but SMS text."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest
from rich.cells import cell_len

from simgate.domain.messages import Attempt, IncomingMessage, Verdict
from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.services.intake import accept_sms
from simgate.services.inventory import import_numbers
from simgate.services.operations import issue_number
from simgate.storage import schema
from simgate.storage.ports import UnitOfWork
from tests.factories import make_order
from tests.integration.test_cli import open_db, run

pytestmark = pytest.mark.slow

KZ, DE, RU = "77085116372", "4915752427316", "79281234567"
LONG = (
    "Your Telegram code is 48213. Do not give this code to anyone, even if they say they are from Telegram!"
)
MARKUP = "code [/] 5555 [bold]"
COMMANDS = (("numbers", "list"), ("sms", "list"), ("operations", "list"))


@dataclass(frozen=True)
class Farm:
    folder: Path
    operation: int
    outputs: dict[tuple[str, int], str]


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Farm:
    folder = tmp_path_factory.mktemp("tables")
    schema.upgrade(f"sqlite:///{folder / 'simgate.db'}")
    store = open_db(folder)
    try:
        now = time.time()
        specs = [
            NumberSpec(PhoneNumber(KZ), CountryName("kazakhstan"), OperatorName("altel"), "bank1/19"),
            NumberSpec(PhoneNumber(DE), CountryName("germany"), OperatorName("vodafone"), "bank2/2"),
            NumberSpec(PhoneNumber(RU), CountryName("russia"), OperatorName("beeline"), "bank1/3"),
        ]
        store.run(lambda uow: import_numbers(uow, specs, now))
        order = make_order(country=CountryName("kazakhstan"))
        operation = store.run(lambda uow: issue_number(uow, "onlinesim", order, now))
        assert operation is not None
        for text in (LONG, MARKUP):
            store.run(
                lambda uow, t=text: accept_sms(uow, IncomingMessage(PhoneNumber(KZ), "Telegram", t), now)
            )
    finally:
        store.close()

    def table(command: tuple[str, ...], width: int) -> tuple[tuple[str, int], str]:
        result = run(folder, *command, env={"COLUMNS": str(width)})
        # A failure is one line on stderr: the tests then find it instead of a table.
        return (command[0], width), result.stdout or result.stderr

    jobs = [(command, width) for command in COMMANDS for width in (80, 120)]
    with ThreadPoolExecutor(max_workers=3) as pool:
        outputs = dict(pool.map(lambda job: table(*job), jobs))
    return Farm(folder, operation.id, outputs)


@pytest.mark.parametrize("width", [80, 120])
@pytest.mark.parametrize("command", [c[0] for c in COMMANDS])
def test_every_row_fits_on_one_line_and_no_id_is_cut(farm: Farm, command: str, width: int) -> None:
    out = farm.outputs[command, width]
    assert all(cell_len(line) <= width for line in out.splitlines()), out
    rows = [line for line in out.splitlines() if line.startswith("│")]
    # One line per row: a wrapped row would start a line with an empty first cell.
    assert all(line.split("│")[1].strip() for line in rows), out
    assert any(KZ in line and str(farm.operation) in line for line in rows), out


def test_numbers_list_keeps_country_operator_and_the_operation_at_80(farm: Farm) -> None:
    narrow = farm.outputs["numbers", 80]
    busy = next(line for line in narrow.splitlines() if KZ in line)
    assert all(value in busy for value in ("kazakhstan", "altel", f"{farm.operation} (onlinesim)"))
    assert narrow.splitlines()[-1].startswith("3 number(s); hidden at 80 columns: sells on, csv, owner")
    wide = farm.outputs["numbers", 120]
    header = next(line for line in wide.splitlines() if "phone" in line)
    assert all(name in header for name in ("port", "rent", "csv", "owner", "lane"))


def test_sms_list_cuts_the_text_with_an_ellipsis_and_shows_markup_as_written(farm: Farm) -> None:
    narrow, wide = farm.outputs["sms", 80], farm.outputs["sms", 120]
    long_80 = next(line for line in narrow.splitlines() if "Your Telegram code" in line)
    long_120 = next(line for line in wide.splitlines() if "Your Telegram code" in line)
    assert all("…" in line for line in (long_80, long_120))
    shown = [
        next(cell.strip().rstrip("…") for cell in line.split("│") if "Your" in cell)
        for line in (long_80, long_120)
    ]
    assert all(LONG.startswith(text) for text in shown)
    assert len(shown[1]) > len(shown[0]), "120 columns show more of the SMS"
    assert MARKUP in narrow
    assert narrow.splitlines()[-1] == "2 SMS; hidden at 80 columns: tries, sender, stored"
    assert "sender" in wide


def test_operations_list_keeps_the_marketplace_and_shows_the_currency_earned(farm: Farm) -> None:
    narrow = farm.outputs["operations", 80]
    assert "0.00 RUB" in narrow
    assert any(KZ in line and "onlinesim" in line for line in narrow.splitlines())
    assert narrow.splitlines()[-1] == "1 of 1 operation(s)"


def test_outbox_retry_names_a_long_sms_with_an_ellipsis(tmp_path: Path) -> None:
    schema.upgrade(f"sqlite:///{tmp_path / 'simgate.db'}")
    store = open_db(tmp_path)
    try:
        now = time.time()
        spec = NumberSpec(PhoneNumber(RU), CountryName("russia"), OperatorName("beeline"), "bank1/3")
        store.run(lambda uow: import_numbers(uow, [spec], now))
        assert store.run(lambda uow: issue_number(uow, "onlinesim", make_order(), now)) is not None
        store.run(lambda uow: accept_sms(uow, IncomingMessage(PhoneNumber(RU), "Telegram", LONG), now))

        def refuse(uow: UnitOfWork) -> int:
            (item,) = uow.outbox.claim_due("test", now, 30.0, 10)
            attempt = Attempt(now, 1.0, 200, "{}", None, Verdict.REJECTED)
            uow.outbox.record(item.id, "test", attempt, "rejected", now + 10, "NO_OPERATION")
            return item.id

        push = store.run(refuse)
    finally:
        store.close()
    result = run(tmp_path, "outbox", "retry", str(push))
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith(f"to {RU}: 'Your Telegram code is 48213. Do not giv…'\n"), result.stdout
