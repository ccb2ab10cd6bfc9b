"""`simgate numbers why PHONE`: the rules that keep a SIM from being offered, with their times."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict
from typing import Annotated

import typer

from simgate.commands.common import database, fail
from simgate.commands.farm import Phone, _number_id
from simgate.domain.errors import DomainError
from simgate.domain.rules import normalise_name
from simgate.domain.types import ServiceName
from simgate.domain.why import Reason
from simgate.storage.ports import UnitOfWork


def why(
    phone: Phone,
    marketplace: Annotated[
        str | None, typer.Option(help="Only this marketplace (default: every enabled one)")
    ] = None,
    service: Annotated[str | None, typer.Option(help="For this service (default: any)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object on stdout")] = False,
) -> None:
    """Why a number is not offered on a marketplace (for a service), each rule with its time.

    Busy, sold, a resale window, an exclusion group, a refusal, its lane, disabled or offline.
    """
    wanted = ServiceName(normalise_name(service)) if service else None
    market = normalise_name(marketplace) if marketplace else None
    now = time.time()

    def work(uow: UnitOfWork) -> dict[str, list[Reason]]:
        from simgate.services.why import why_not_offered

        known = {m.name for m in uow.lanes.marketplaces()}
        if market is not None and market not in known:
            raise DomainError(
                f"{market} is not a marketplace this farm has sold on ({', '.join(sorted(known))})"
            )
        answer = why_not_offered(
            uow, _number_id(uow, phone), None if market is None else [market], wanted, now
        )
        assert answer is not None
        return answer

    with database() as store:
        try:
            answer = store.run_read(work)  # a snapshot: never serve's write lock
        except DomainError as error:
            fail(str(error))
    if as_json:
        out = {name: [asdict(r) for r in reasons] for name, reasons in answer.items()}
        sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        return
    what = f" for {wanted}" if wanted else ""
    for name, reasons in answer.items():
        if not reasons:
            typer.echo(f"{name}: offered{what}")
            continue
        typer.echo(f"{name}: not offered{what}")
        for reason in reasons:
            typer.echo(f"  - {reason.text}")
