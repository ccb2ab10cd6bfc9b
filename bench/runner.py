"""Servers the benchmark starts in their own processes (so they never share the load's GIL).

    python -m bench.runner baseline --port P
        A trivial Starlette app answering a fixed JSON body: the floor that uvicorn,
        Starlette and the aiohttp load generator cost on this machine.
    python -m bench.runner services --database PATH --port P --services N --key K
        `simgate serve` itself (simgate.server.run_server: bootstrap.build_app under uvicorn)
        with Settings that offer N services. The shipped catalogue has ~60 names and
        SIMGATE_ONLINESIM_SERVICES can only narrow it, so 300 services need this wiring.

The baseline runs under the uvicorn configuration `simgate serve` uses (simgate/server.py).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from bench.farm import service_names
from simgate.config import Settings
from simgate.domain.types import ServiceName, Timestamp
from simgate.marketplaces.onlinesim.settings import OnlinesimSettings
from simgate.server import run_server
from simgate.storage.sql import SqlNumbers

if TYPE_CHECKING:
    from simgate.domain.model import GroupAvailability

JSON = "application/json; charset=utf-8"
FIXED = b'{"status":"SUCCESS","number":79280000001,"activationId":1}'
FINISHED = b'{"status":"SUCCESS"}'


def baseline_app() -> Starlette:
    async def answer(request: Request) -> Response:
        await request.body()
        # FINISH answers as simgate does, so that wrk's script (bench/pairs.lua) tells them apart.
        finished = request.path_params["endpoint"] == "finishActivation"
        return Response(FINISHED if finished else FIXED, media_type=JSON)

    async def healthz(request: Request) -> Response:
        return Response(b'{"status":"ok"}', media_type=JSON)

    return Starlette(
        routes=[
            Route("/onlinesim/{endpoint}", answer, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
        ]
    )


def settings_offering(services: tuple[ServiceName, ...], **values: str) -> Settings:
    """Settings whose GET_SERVICES offers `services`, however many the catalogue has."""

    class Offering(Settings):
        @property
        def services(self) -> tuple[ServiceName, ...]:
            return services

    return Offering.model_validate(values)


def serve(app: Starlette, port: int) -> None:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, access_log=False, log_config=None, lifespan="on"
    )
    uvicorn.Server(config).run()


def _recounted(self: SqlNumbers, marketplace: str, now: Timestamp | None = None) -> list[GroupAvailability]:
    # Imported here: bench.services_ab serves older checkouts, which have no such function.
    from simgate.domain import rules

    return rules.join_excluded(
        self.group_counts_recounted(marketplace, now), self.excluded_counts_recounted(marketplace, now)
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.runner")
    sub = parser.add_subparsers(dest="app", required=True)
    base = sub.add_parser("baseline")
    base.add_argument("--port", type=int, required=True)
    svc = sub.add_parser("services")
    svc.add_argument("--port", type=int, required=True)
    svc.add_argument("--database", required=True)
    svc.add_argument("--key", required=True)
    svc.add_argument("--services", type=int, default=300)
    svc.add_argument(
        "--recount",
        action="store_true",
        help="count per call as before migration 0011 (the A/B's 'before'), not from the kept counts",
    )
    args = parser.parse_args(argv)
    if args.app == "baseline":
        serve(baseline_app(), args.port)
        return
    settings = settings_offering(
        service_names(args.services), database_url=f"sqlite:///{args.database}", onlinesim_key=args.key
    )
    # Onlinesim's handler offers its own table's services (OnlinesimSettings.offered, the
    # catalogue's ~68 names by default), not Settings.services: without this the server
    # answered 68 services, not the 300 the bench asks for.
    offered = service_names(args.services)
    OnlinesimSettings.offered = property(lambda self: offered)  # type: ignore[assignment,method-assign]
    if args.recount:
        SqlNumbers.group_counts = SqlNumbers.group_counts_recounted  # type: ignore[method-assign]
        SqlNumbers.excluded_counts = SqlNumbers.excluded_counts_recounted  # type: ignore[method-assign]
        # GET_SERVICES reads group_availability (one statement) and may keep its answer:
        # both as before migration 0011, recounted on every call.
        SqlNumbers.group_availability = _recounted  # type: ignore[method-assign]
        SqlNumbers.availability_stamp = lambda self, marketplace, now=None: None  # type: ignore[method-assign]
    # The very path of `simgate serve` (migrations, store, build_app, uvicorn): only the
    # offered services differ.
    run_server(settings, host="127.0.0.1", port=args.port, worker=True, migrate=True)


if __name__ == "__main__":
    main()
