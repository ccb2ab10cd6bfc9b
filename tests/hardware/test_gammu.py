"""`simgate intake gammu` run as gammu-smsd runs it: environment in, exit status out."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from simgate.hardware.gammu import GammuError, read_environment
from tests.conftest import INTAKE_TOKEN, LiveServer, free_port
from tests.hardware.conftest import PHONES, open_operation, stored

TEXT = "Код подтверждения Telegram: 12345. Никому не сообщайте этот код, даже сотрудникам. " * 2


def gammu_environment(**extra: str) -> dict[str, str]:
    """What gammu-smsd sets for a three-part concatenated SMS (gammu-smsd-run(7))."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SMS_", "DECODED_", "SIMGATE_"))}
    return {
        **base,
        "SMS_MESSAGES": "3",
        "SMS_1_CLASS": "-1",
        "SMS_1_NUMBER": "+79001112233",
        "SMS_1_TEXT": TEXT[:67],
        "SMS_2_CLASS": "-1",
        "SMS_2_NUMBER": "+79001112233",
        "SMS_2_TEXT": TEXT[67:134],
        "SMS_3_CLASS": "-1",
        "SMS_3_NUMBER": "+79001112233",
        "SMS_3_TEXT": TEXT[134:],
        "DECODED_PARTS": "1",
        "DECODED_1_TEXT": TEXT,
        "PHONE_ID": "modem1",
        **extra,
    }


def run_gammu(config: Path, *args: str, **extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simgate", "--config", str(config), "intake", "gammu", *args],
        env=gammu_environment(SIMGATE_INTAKE_TOKEN=INTAKE_TOKEN, **extra),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_gammu_hands_a_multipart_sms_to_the_server_once(
    serve: Callable[..., LiveServer], tmp_path: Path
) -> None:
    server = serve(f'[hardware.gammu]\nurl = "http://127.0.0.1:{free_port()}"\n')
    assert server.store is not None
    operation = open_operation(server.store, PHONES[4])
    config = tmp_path / "gammu.toml"
    config.write_text(
        f'[hardware.gammu]\nurl = "{server.url}"\n[hardware.gammu.phones]\nmodem1 = "{PHONES[4]}"\n'
    )
    ids = ("IN20261130_100000_00_+79001112233_00.txt", "IN20261130_100000_00_+79001112233_01.txt")
    first = run_gammu(config, *ids)
    assert first.returncode == 0, first.stderr
    [(message, delivery)] = stored(server.store)
    assert message.text == TEXT  # the decoded, reassembled text
    assert (message.phone, message.sender, message.operation_id) == (PHONES[4], "+79001112233", operation)
    assert delivery is not None
    # gammu-smsd runs the program again for the same message (a restart): recognised.
    again = run_gammu(config, *ids)
    assert again.returncode == 0
    assert "already stored" in again.stdout
    assert len(stored(server.store)) == 1


def test_gammu_exits_non_zero_when_the_server_does_not_take_it(tmp_path: Path) -> None:
    config = tmp_path / "gammu.toml"
    config.write_text(f'[hardware.gammu]\nurl = "http://127.0.0.1:{free_port()}"\nphone = "{PHONES[4]}"\n')
    result = run_gammu(config, "IN1.txt", "--timeout", "1")
    assert result.returncode != 0
    assert "did not take the SMS" in result.stderr


def test_gammu_falls_back_to_the_raw_parts_and_refuses_a_non_gammu_environment() -> None:
    environ = gammu_environment(DECODED_PARTS="0")
    del environ["DECODED_1_TEXT"]
    assert read_environment(environ).text == TEXT
    with pytest.raises(GammuError, match="SMS_MESSAGES"):
        read_environment({})


@pytest.mark.parametrize(
    "counts",
    [
        {"SMS_MESSAGES": "100000000"},
        {"DECODED_PARTS": "100000000"},
        {"DECODED_PARTS": "-1"},
        {"SMS_MESSAGES": "9" * 5000},
        {"SMS_MESSAGES": "²"},
    ],
)
def test_an_impossible_part_count_is_refused_at_once(counts: dict[str, str]) -> None:
    started = time.monotonic()
    with pytest.raises(GammuError, match="SMS_MESSAGES"):
        read_environment(gammu_environment(**counts))
    assert time.monotonic() - started < 1
