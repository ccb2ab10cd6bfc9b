"""Intake -> acknowledged PUSH_SMS (issue 3): messages per second, and the latency from the
moment the hardware posts an SMS to the moment a healthy marketplace receives its push.

A farm where every number is in an open activation; `clients` concurrent posters send
`messages` SMS to /intake/sms of a real `simgate serve` subprocess whose worker pushes to a
receiver in this process (answering 200 SUCCESS at once). Baseline, same run: the same posts
to a server with no push URL, i.e. what intake alone sustains (store + route + queue).
"""

from __future__ import annotations

import asyncio
import secrets
import shutil
import sqlite3
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench import farm
from bench.procs import ServerProcess, clean_environment, free_port, python_module
from bench.scenarios import Result, run_async
from bench.stats import summarise
from simgate import catalogue


@dataclass(frozen=True, slots=True)
class DeliveryOptions:
    messages: int = 5_000
    numbers: int = 1_000
    clients: int = 32
    max_seconds: float = 60.0
    paced_rate: float = 500.0
    """SMS/s offered in the latency run: the issue's target rate, below saturation, so the
    latency measured is the path's, not a queue's."""


@dataclass
class Flow:
    sent: dict[str, float]
    arrived: dict[str, float]
    duplicates: int = 0
    refused: int = 0
    first_post: float = 0.0
    last_answer: float = 0.0


async def _receiver(port: int, flow: Flow) -> web.AppRunner:
    async def push(request: web.Request) -> web.Response:
        body: dict[str, Any] = await request.json()
        text = str(body.get("text"))
        if text in flow.arrived:
            flow.duplicates += 1
        else:
            flow.arrived[text] = time.perf_counter()
        return web.json_response({"status": "SUCCESS"})

    return await serve_pushes(push, port)


async def serve_pushes(push: Callable[[web.Request], Awaitable[web.Response]], port: int) -> web.AppRunner:
    """Onlinesim's two PUSH_SMS paths on loopback, answered by `push`."""
    app = web.Application()
    app.router.add_post("/v1/PUSH_SMS", push)
    app.router.add_post("/v1/PUSH_SMS_RENT", push)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


async def _post(
    url: str,
    token: str,
    phones: list[str],
    options: DeliveryOptions,
    flow: Flow,
    rate: float | None,
    tag: str,
) -> None:
    """As fast as the posters can (rate None), or open-loop at `rate`: message i leaves at
    start + i / rate whatever happened to the others, as SMS arrive from a farm."""
    headers = {"Authorization": f"Bearer {token}"}
    queue = iter(range(options.messages))
    flow.first_post = start = time.perf_counter()

    async def poster(session: aiohttp.ClientSession) -> None:
        for i in queue:
            if rate is not None:
                await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            text = f"{tag} {i:06d}: code {i % 100000:05d}"
            body = {
                "phone": phones[i % len(phones)],
                "sender": "Bench",
                "text": text,
                "message_id": f"{tag}{i}",
            }
            flow.sent[text] = time.perf_counter()
            async with session.post(f"{url}/intake/sms", json=body, headers=headers) as answer:
                await answer.read()
                if answer.status != 202:
                    flow.refused += 1
        flow.last_answer = max(flow.last_answer, time.perf_counter())

    connector = aiohttp.TCPConnector(limit=options.clients)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(poster(session) for _ in range(options.clients)))


def _run(server: ServerProcess, token: str, phones: list[str], options: DeliveryOptions,
         receiver_port: int | None, rate: float | None = None, tag: str = "burst") -> Flow:  # fmt: skip
    flow = Flow(sent={}, arrived={})

    async def main() -> None:
        runner = None if receiver_port is None else await _receiver(receiver_port, flow)
        try:
            await _post(server.url, token, phones, options, flow, rate, tag)
            deadline = time.perf_counter() + options.max_seconds
            while receiver_port is not None and len(flow.arrived) < options.messages:
                if time.perf_counter() > deadline:
                    break
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.5 if receiver_port is not None else 0)  # late duplicates show here
        finally:
            if runner is not None:
                await runner.cleanup()

    run_async(main())
    return flow


def bench_delivery(folder: Path, options: DeliveryOptions, say: Callable[[str], None]) -> Result:
    services = catalogue.services()
    shape = farm.FarmShape(numbers=options.numbers, busy=1.0, offline=0.0, disabled=0.0, sold=0.0)
    say(f"delivery farm: {options.numbers} numbers, each in an open activation")
    template = folder / "delivery-template.db"
    stats = farm.build(template, shape, services)
    with sqlite3.connect(template) as db:
        phones = [
            row[0] for row in db.execute("SELECT phone FROM numbers WHERE open_operation_id IS NOT NULL")
        ]
    token, key = secrets.token_hex(16), secrets.token_hex(16)
    results: Result = {"options": asdict(options), "farm": stats.as_dict()}
    for name, receiver_port in (("intake_only", None), ("pushed", free_port())):
        database = folder / f"delivery-{name}.db"
        shutil.copy(template, database)
        settings = {
            "SIMGATE_DATABASE_URL": f"sqlite:///{database}",
            "SIMGATE_ONLINESIM_KEY": key,
            "SIMGATE_INTAKE_TOKEN": token,
            "SIMGATE_ONLINESIM_SMS_ID": "message",
        }
        if receiver_port is not None:
            settings["SIMGATE_ONLINESIM_PUSH_URL"] = f"http://127.0.0.1:{receiver_port}"
        port = free_port()
        server = ServerProcess(
            f"simgate serve ({name})",
            python_module("simgate", "serve", "--host", "127.0.0.1", "--port", str(port)),
            port,
            clean_environment(**settings),
            folder / f"simgate-delivery-{name}.log",
        )
        say(f"{name}: {options.messages} SMS from {options.clients} posters, as fast as they can")
        with server:
            flow = _run(server, token, phones, options, receiver_port)
            if receiver_port is not None:
                # Same server, fresh messages (new ids), offered at a steady rate below capacity.
                say(f"{name}: {options.messages} more SMS offered at {options.paced_rate:.0f} SMS/s")
                paced = _run(server, token, phones, options, receiver_port, options.paced_rate, "paced")
        if receiver_port is None:
            seconds = max(1e-9, flow.last_answer - flow.first_post)
            results[name] = {"messages_per_second": options.messages / seconds, "refused": flow.refused}
            continue
        paced_latencies = [paced.arrived[t] - paced.sent[t] for t in paced.arrived if t in paced.sent]
        results["paced"] = {
            "offered_per_second": options.paced_rate,
            "delivered": len(paced.arrived),
            "missing": options.messages - len(paced.arrived),
            "duplicates": paced.duplicates,
            "latency": summarise(paced_latencies).as_dict(),
        }
        latencies = [flow.arrived[t] - flow.sent[t] for t in flow.arrived if t in flow.sent]
        last = max(flow.arrived.values(), default=flow.first_post)
        results[name] = {
            "messages_per_second": len(flow.arrived) / max(1e-9, last - flow.first_post),
            "delivered": len(flow.arrived),
            "missing": options.messages - len(flow.arrived),
            "duplicates": flow.duplicates,
            "refused": flow.refused,
            "latency": summarise(latencies).as_dict(),
        }
    return results
