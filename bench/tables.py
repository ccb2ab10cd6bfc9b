"""Tables for people (rich) and the verdicts against the issue's targets."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from bench.stats import ratio
from bench.tables_wrk import delivery_wrk_table, pairs_wrk_table

Result = dict[str, Any]

TARGET_PAIRS_PER_SECOND = 2_500.0
TARGET_PAIRS_P99_MS = 25.0
TARGET_SERVICES_MS = 100.0
TARGET_SERVICES_NUMBERS = 100_000
TARGET_LOADED_P50_MS = 30.0
TARGET_LOADED_P99_MS = 60.0
"""Issue 14 target 4: GET_SERVICES at 100,000 SIMs x 300 services while GET_NUMBER load runs."""


def _ms(value: float) -> str:
    return f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def _times(value: float | None) -> str:
    return "—" if value is None else f"x{value:.2f}"


def _verdict(ok: bool) -> str:
    return "[green]meets[/green]" if ok else "[red]misses[/red]"


def verdicts(results: Result) -> dict[str, bool]:
    """Each target of issue 2 that this run measured, and whether it was met."""
    found: dict[str, bool] = {}
    pairs = results.get("pairs")
    if pairs:
        found["pairs_per_second >= 2500"] = pairs["simgate"]["pairs_per_second"] >= TARGET_PAIRS_PER_SECOND
        found["request p99 < 25 ms"] = pairs["simgate"]["requests"]["p99_ms"] < TARGET_PAIRS_P99_MS
    services = results.get("services")
    delivery = results.get("delivery")
    if delivery:
        pushed = delivery["pushed"]
        found["intake -> push >= 500 SMS/s"] = pushed["messages_per_second"] >= 500
        paced = delivery.get("paced") or pushed
        found["intake -> push p99 < 250 ms"] = paced["latency"]["p99_ms"] < 250
        found["every SMS pushed exactly once"] = pushed["missing"] == 0 and pushed["duplicates"] == 0
    if services:
        for size in services["sizes"]:
            if size["numbers"] >= TARGET_SERVICES_NUMBERS:
                found[f"GET_SERVICES p99 over {size['numbers']} numbers < 100 ms"] = (
                    size["http"]["p99_ms"] < TARGET_SERVICES_MS
                )
                loaded = size.get("http_variants", {}).get("kept", {}).get("under_load")
                if loaded:
                    found[f"GET_SERVICES under load over {size['numbers']} numbers: p50 < 30 ms"] = (
                        loaded["p50_ms"] < TARGET_LOADED_P50_MS
                    )
                    found[f"GET_SERVICES under load over {size['numbers']} numbers: p99 < 60 ms"] = (
                        loaded["p99_ms"] < TARGET_LOADED_P99_MS
                    )
    return found


def pairs_table(pairs: Result) -> Table:
    ours, base = pairs["simgate"], pairs["baseline"]
    table = Table(
        title=(
            f"GET_NUMBER + FINISH_ACTIVATION: {pairs['clients']} concurrent clients, "
            f"{pairs['duration']:.0f} s after {pairs['warmup']:.0f} s warm-up\n"
            "simgate = `simgate serve` subprocess on SQLite; "
            "baseline = trivial Starlette app, same uvicorn + aiohttp path"
        ),
        title_justify="left",
    )
    for column in ("figure", "simgate", "baseline", "ratio", "target"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    rate, base_rate = ours["pairs_per_second"], base["pairs_per_second"]
    table.add_row(
        "pairs / s",
        f"{rate:,.0f}",
        f"{base_rate:,.0f}",
        _times(ratio(rate, base_rate)),
        f">= 2,500 {_verdict(rate >= TARGET_PAIRS_PER_SECOND)}",
    )
    for key, label in (("get_number", "GET_NUMBER"), ("finish", "FINISH"), ("requests", "every request")):
        for pct in ("p50", "p99"):
            value, floor = ours[key][f"{pct}_ms"], base[key][f"{pct}_ms"]
            target = ""
            if key == "requests" and pct == "p99":
                target = f"< 25 ms {_verdict(value < TARGET_PAIRS_P99_MS)}"
            table.add_row(f"{label} {pct}", _ms(value), _ms(floor), _times(ratio(value, floor)), target)
    for key, label in (("server_cpu_percent", "server CPU"), ("client_cpu_percent", "load generator CPU")):
        value, floor = ours[key], base[key]
        table.add_row(
            f"{label} (% of one core)",
            "—" if value is None else f"{value:.0f} %",
            "—" if floor is None else f"{floor:.0f} %",
            _times(None if value is None or floor is None else ratio(value, floor)),
            "",
        )
    commits = pairs.get("bare_commits")
    if commits:
        # Two write units per pair. Above x1 only thanks to group commit (several units per
        # fsync); a writer that fsynced each unit could never pass the bare commit rate.
        ours_commits = 2 * rate
        table.add_row(
            "write units / s (2 per pair)",
            f"{ours_commits:,.0f}",
            f"{commits['commits_per_second']:,.0f}",
            _times(ratio(ours_commits, commits["commits_per_second"])),
            "[dim]baseline = bare SQLite commits[/dim]",
        )
    table.add_row(
        "requests measured", f"{ours['requests']['count']:,}", f"{base['requests']['count']:,}", "", ""
    )
    table.add_row("NO_NUMBERS / errors", f"{ours['no_numbers']} / {ours['errors']}", "", "", "0 / 0")
    simulated = pairs.get("marketplace_simulator")
    if simulated:
        # simgate.simulator's run_load: Onlinesim's mix, open loop at a steady offered rate.
        table.add_row(
            "marketplace simulator: pairs / s achieved",
            f"{simulated['achieved_rate']:,.0f} of {simulated['target_rate']:,.0f} offered", "", "", "",
        )  # fmt: skip
        for call, figures in sorted(simulated["latency"].items()):
            table.add_row(
                f"  {call} p50 / p99", f"{figures['p50_ms']:.1f} / {figures['p99_ms']:.1f} ms", "", "", ""
            )
        table.add_row("  errors", str(simulated["errors"]), "", "", "0")
    return table


def _trips(trips: Result | None) -> str:
    if not trips:
        return ""
    named = {"get_number": "GET_NUMBER", "finish_4": "FINISH", "finish_3": "FINISH (sale)"}
    return "; round trips per unit: " + ", ".join(f"{named.get(k, k)} {v:g}" for k, v in trips.items())


def _per_pair(run: Result) -> str:
    simgate, postgres = run.get("server_cpu_ms_per_pair"), run.get("postgres_cpu_ms_per_pair")
    if simgate is None or postgres is None:
        return "—"
    return f"{simgate:.2f} + {postgres:.2f}"


def postgres_table(pg: Result, sqlite: Result | None) -> Table:
    """Issue 5: the same pairs load on PostgreSQL, one and two server processes."""
    table = Table(
        title=(
            f"GET_NUMBER + FINISH_ACTIVATION on PostgreSQL: {pg['clients']} clients spread over the "
            f"processes ({pg.get('generator', 'python')}), {pg['duration']:.0f} s; ratio against "
            "simgate on SQLite in this run" + _trips(pg.get("round_trips"))
        ),
        title_justify="left",
    )
    for column in (
        "processes",
        "pairs / s",
        "vs SQLite",
        "p50 / p99 (every request)",
        "server CPU",
        "CPU ms / pair: simgate + PostgreSQL",
        "load",
        "errors",
    ):
        table.add_column(column, justify="right")
    base = None if sqlite is None else sqlite["simgate"]["pairs_per_second"]
    for processes in (1, 2):
        run = pg.get(f"processes_{processes}")
        if run is None:
            continue
        cpu = run["server_cpu_percent"]
        table.add_row(
            str(processes),
            f"{run['pairs_per_second']:,.0f}",
            _times(None if base is None else ratio(run["pairs_per_second"], base)),
            f"{_ms(run['requests']['p50_ms'])} / {_ms(run['requests']['p99_ms'])}",
            "—" if cpu is None else f"{cpu:.0f} %",
            _per_pair(run),
            "—" if run.get("load_average") is None else f"{run['load_average']:.1f}",
            f"{run['no_numbers']} / {run['errors']}",
        )
    return table


def delivery_table(delivery: Result) -> Table:
    """Issue 3: from the hardware's POST to the marketplace's 200."""
    pushed, alone = delivery["pushed"], delivery["intake_only"]
    options = delivery["options"]
    table = Table(
        title=(
            f"Intake -> acknowledged PUSH_SMS: {options['messages']:,} SMS from {options['clients']} posters "
            f"over {options['numbers']:,} open activations; baseline = the same posts with no push URL"
        ),
        title_justify="left",
    )
    for column in ("figure", "simgate", "baseline", "ratio", "target"):
        table.add_column(column, justify="left" if column == "figure" else "right")
    rate, floor = pushed["messages_per_second"], alone["messages_per_second"]
    table.add_row("SMS / s", f"{rate:,.0f}", f"{floor:,.0f}", _times(ratio(rate, floor)),
                  f">= 500 {_verdict(rate >= 500)}")  # fmt: skip
    for pct in ("p50", "p99"):
        table.add_row(
            f"  latency {pct} at full speed (a queue)", _ms(pushed["latency"][f"{pct}_ms"]), "", "", ""
        )
    paced = delivery.get("paced")
    if paced:
        offered = paced["offered_per_second"]
        for pct in ("p50", "p90", "p99"):
            value = paced["latency"][f"{pct}_ms"]
            target = f"< 250 ms {_verdict(value < 250)}" if pct == "p99" else ""
            table.add_row(f"intake -> receiver {pct} at {offered:.0f} SMS/s", _ms(value), "", "", target)
        table.add_row(
            f"  at {offered:.0f} SMS/s: delivered / missing / twice",
            f"{paced['delivered']:,} / {paced['missing']} / {paced['duplicates']}", "", "", "all / 0 / 0",
        )  # fmt: skip
    table.add_row(
        "delivered / missing / twice",
        f"{pushed['delivered']:,} / {pushed['missing']} / {pushed['duplicates']}", "", "", "all / 0 / 0",
    )  # fmt: skip
    return table


def services_table(services: Result) -> Table:
    trip = services["round_trip_baseline"]
    table = Table(
        title=(
            f"GET_SERVICES with {services['services']} services: one caller, p50 / p99\n"
            "HTTP = `simgate serve`'s code path (server.run_server) offering these services, in a "
            "subprocess; in-process = list_available through SQLiteStore.read"
        ),
        title_justify="left",
    )
    for column in ("numbers", "measured", "p50", "p99", "baseline", "ratio p50 / p99", "target"):
        table.add_column(column, justify="left" if column in ("measured", "baseline") else "right")
    for size in services["sizes"]:
        n = f"{size['numbers']:,}"
        http, use_case, group_by = size["http"], size["use_case"], size["baselines"]["group_by"]
        floor50 = group_by["p50_ms"] + trip["p50_ms"]
        floor99 = group_by["p99_ms"] + trip["p99_ms"]
        target = ""
        if size["numbers"] >= TARGET_SERVICES_NUMBERS:
            target = f"< 100 ms {_verdict(http['p99_ms'] < TARGET_SERVICES_MS)}"
        table.add_row(
            n,
            f"HTTP GET_SERVICES ({http['answer_bytes'] // 1024} KiB JSON, {http['content_encoding']})",
            _ms(http["p50_ms"]),
            _ms(http["p99_ms"]),
            "GROUP BY + empty round trip",
            f"{_times(ratio(http['p50_ms'], floor50))} / {_times(ratio(http['p99_ms'], floor99))}",
            target,
        )
        for variant, runs in size.get("http_variants", {}).items():
            for when, run in runs.items():
                extra = ""
                if run.get("server_cpu_ms_per_call") is not None:
                    extra = f", server CPU {run['server_cpu_ms_per_call']:.1f} ms per call"
                if when == "under_load":
                    extra = (
                        f", {run['pairs_per_second']:.0f} pairs/s beside,"
                        f" server {run['server_cpu_percent'] or 0:.0f} % of a core"
                    )
                table.add_row(
                    n,
                    f"  HTTP, {variant} counts, {when.replace('_', ' ')} (load {run['load_average']}{extra})",
                    _ms(run["p50_ms"]),
                    _ms(run["p99_ms"]),
                    "",
                    "",
                    "< 30 / 60 ms" if (variant, when) == ("kept", "under_load") else "",
                )
        if "use_case_recounted" in size:
            table.add_row(
                n,
                "list_available in process, recounted per call (before 0011),"
                f" {size['use_case_recounted'].get('cpu_ms_per_call', 0):.1f} ms CPU per call",
                _ms(size["use_case_recounted"]["p50_ms"]),
                _ms(size["use_case_recounted"]["p99_ms"]),
                "",
                "",
                "",
            )
        table.add_row(
            n,
            f"list_available in process, {use_case.get('cpu_ms_per_call', 0):.1f} ms CPU per call",
            _ms(use_case["p50_ms"]),
            _ms(use_case["p99_ms"]),
            "minimal GROUP BY",
            f"{_times(ratio(use_case['p50_ms'], group_by['p50_ms']))}"
            f" / {_times(ratio(use_case['p99_ms'], group_by['p99_ms']))}",
            "",
        )
        labels = {
            "group_counts_sql": "  of which group_counts SQL",
            "excluded_counts_sql": "  of which excluded_counts SQL",
            "group_counts_recounted_sql": "  [dim]group_counts recounted (before 0011)[/dim]",
            "excluded_counts_recounted_sql": "  [dim]excluded_counts recounted (before 0011)[/dim]",
            "tally_python": "  of which tally (Python)",
            "encode_json": "  then JSON encoding",
            "gzip_level_9": "  then gzip, level 9 (GZipMiddleware default)",
            "gzip_level_1": "  [dim]gzip, level 1 (for comparison)[/dim]",
        }
        for key, label in labels.items():
            if key not in size["parts"]:
                continue
            part = size["parts"][key]
            table.add_row(
                n,
                label,
                _ms(part["p50_ms"]),
                _ms(part["p99_ms"]),
                "minimal GROUP BY",
                f"{_times(ratio(part['p50_ms'], group_by['p50_ms']))} / —",
                "",
            )
        for key, label in (
            ("count", "baseline: SELECT count(*)"),
            ("group_by", "baseline: minimal GROUP BY"),
        ):
            base = size["baselines"][key]
            table.add_row(n, label, _ms(base["p50_ms"]), _ms(base["p99_ms"]), "", "", "")
        farm = size["farm"]
        table.add_row(
            n,
            f"[dim]farm: {farm['busy']} busy, {farm['offline']} offline, {farm['disabled']} disabled, "
            f"{farm['exclusions']} sold exclusions on {farm['sold_numbers']} numbers; "
            f"{size['groups']} groups; loaded in {farm['load_seconds']:.1f} s[/dim]",
            "",
            "",
            "",
            "",
            "",
            end_section=True,
        )
    table.add_row(
        "",
        "baseline: empty round trip (trivial app)",
        _ms(trip["p50_ms"]),
        _ms(trip["p99_ms"]),
        "",
        "",
        "",
    )
    return table


def print_report(console: Console, results: Result) -> None:
    machine = results["machine"]
    console.print(
        f"[bold]simgate bench[/bold] {machine['date']}  nproc={machine['nproc']}  {machine['cpu']}  "
        f"Python {machine['python']}  SQLite {machine['sqlite']}  git {machine['git']}  "
        f"load average {machine['load_average_at_start']} -> {results.get('load_average_at_end')}"
    )
    if "pairs_wrk" in results:
        console.print(pairs_wrk_table(results["pairs_wrk"]))
    if "pairs" in results:
        console.print(pairs_table(results["pairs"]))
    if "delivery_wrk" in results:
        console.print(delivery_wrk_table(results["delivery_wrk"]))
    if "delivery" in results:
        console.print(delivery_table(results["delivery"]))
    pg = results.get("pairs_postgres")
    if isinstance(pg, dict) and "skipped" not in pg:
        console.print(postgres_table(pg, results.get("pairs") or results.get("pairs_wrk")))
    if "services" in results:
        console.print(services_table(results["services"]))
    for name, ok in results["verdicts"].items():
        console.print(f"target {name}: {_verdict(ok)}")
