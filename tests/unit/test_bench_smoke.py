"""The benchmark's own arithmetic, on fixed data: `make bench` figures are only as good as it.

No timing is asserted anywhere in tests/: the figures live in docs/benchmarks.md.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from bench import farm
from bench.pairs_wrk import combined
from bench.stats import percentile, ratio, summarise
from bench.tables import verdicts
from bench.wrk import WrkRun


def test_percentile_interpolates_between_closest_ranks_like_numpy() -> None:
    values = [15.0, 20.0, 35.0, 40.0, 50.0]
    assert percentile(values, 0) == 15.0
    assert percentile(values, 50) == 35.0
    assert percentile(values, 100) == 50.0
    assert percentile(values, 40) == pytest.approx(29.0)  # numpy.percentile(values, 40)
    assert percentile(values, 99) == pytest.approx(49.6)


def test_percentile_ignores_input_order_and_leaves_it_alone() -> None:
    values = [float(v) for v in range(1, 101)]
    shuffled = values[:]
    random.Random(1).shuffle(shuffled)
    before = shuffled[:]
    assert percentile(shuffled, 50) == pytest.approx(50.5)
    assert percentile(shuffled, 99) == pytest.approx(99.01)
    assert shuffled == before


@pytest.mark.parametrize("q", [-1, 100.5])
def test_percentile_refuses_out_of_range(q: float) -> None:
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], q)


def test_percentile_of_nothing_is_an_error_not_zero() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


def test_summarise_reports_milliseconds() -> None:
    latency = summarise([0.001, 0.002, 0.003, 0.004])
    assert latency.count == 4
    assert latency.p50_ms == pytest.approx(2.5)
    assert latency.mean_ms == pytest.approx(2.5)
    assert latency.max_ms == pytest.approx(4.0)
    assert latency.as_dict()["p99_ms"] == pytest.approx(3.97)


def test_ratio_against_a_zero_baseline_is_none() -> None:
    assert ratio(3.0, 1.5) == 2.0
    assert ratio(1.0, 0.0) is None


def test_service_names_pad_the_catalogue_to_the_asked_count() -> None:
    names = farm.service_names(300)
    assert len(names) == len(set(names)) == 300


def test_generated_farm_is_deterministic_and_distinct() -> None:
    shape = farm.FarmShape(numbers=500)
    first, second = farm.generate(shape), farm.generate(shape)
    assert first == second
    assert len({spec.phone for spec in first}) == 500


def test_verdicts_compare_with_the_issue_targets() -> None:
    latency = {"p99_ms": 20.0}
    results = {
        "pairs": {"simgate": {"pairs_per_second": 2600.0, "requests": latency}},
        "services": {"sizes": [{"numbers": 100_000, "http": {"p99_ms": 120.0}}]},
    }
    assert verdicts(results) == {
        "pairs_per_second >= 2500": True,
        "request p99 < 25 ms": True,
        "GET_SERVICES p99 over 100000 numbers < 100 ms": False,
    }


def test_wrk_script_carries_the_orders_and_key_as_lua_literals(tmp_path: Path) -> None:
    from bench.wrk import lua_script

    script = lua_script(tmp_path, 'k"1', [b'{"action":"GET_NUMBER","key":"k\\"1"}'])
    text = script.read_text()
    assert text.startswith('bodies = {\n  "{\\"action\\":\\"GET_NUMBER\\",\\"key\\":\\"k\\\\\\"1\\"}",\n}')
    assert 'key = "k\\"1"' in text
    assert "function response(" in text
    assert "BENCH_RESULT" in text


def test_wrk_verdicts_read_the_tail_against_the_same_runs_median() -> None:
    from bench.tables_wrk import verdicts as wrk_verdicts

    run = {"pairs_per_second": 2_600.0, "p50_ms": 10.0, "p99_ms": 31.0}
    found = wrk_verdicts({"simgate": run, "ratio_requests": 0.31})
    assert found == {
        "wrk: pairs/s >= 2500": True,
        "wrk: req/s >= 0.3x trivial app": True,
        "wrk: p99 < 25 ms": False,
        "wrk: p99 <= 3x p50": False,
    }


def _run(requests: int, seconds: float, p50: float, p99: float, cpu: float | None) -> WrkRun:
    return WrkRun(
        requests=requests, seconds=seconds, gets=requests // 2, finishes=requests // 2, no_numbers=0,
        failures=1, socket_errors=0, p50_ms=p50, p90_ms=p50 * 2, p99_ms=p99, p999_ms=p99 * 2,
        max_ms=p99 * 3, mean_ms=p50, server_cpu_percent=cpu,
    )  # fmt: skip


def test_alternating_rounds_add_up_rates_and_keep_the_worst_tail() -> None:
    rounds = [
        _run(3_000, 3.0, 6.0, 11.0, 90.0),
        _run(2_400, 3.0, 8.0, 20.0, 100.0),
        _run(3_000, 4.0, 7.0, 12.0, 95.0),
    ]
    whole = combined(rounds)
    assert whole.requests_per_second == pytest.approx(8_400 / 10.0)  # over the summed windows
    assert whole.pairs_per_second == pytest.approx(4_200 / 10.0)
    assert (whole.p50_ms, whole.p90_ms) == (7.0, 14.0)  # the middle round's
    assert (whole.p99_ms, whole.p999_ms, whole.max_ms) == (20.0, 40.0, 60.0)  # the worst round's
    assert whole.server_cpu_percent == pytest.approx((270 + 300 + 380) / 10.0)  # time-weighted
    assert whole.failures == 3
    assert whole.mean_ms == pytest.approx((6.0 * 3_000 + 8.0 * 2_400 + 7.0 * 3_000) / 8_400)
    assert combined(rounds[:1]) is rounds[0]
    assert combined([*rounds[:2], _run(1, 1.0, 1.0, 1.0, None)]).server_cpu_percent is None
