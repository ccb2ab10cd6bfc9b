"""SIMGATE_ONLINESIM_SERVICES narrows what is sold: a service left out is neither advertised
in GET_SERVICES nor issued by GET_NUMBER, and asking for it claims nothing."""

from __future__ import annotations

import json

from simgate.domain.types import ServiceName
from simgate.marketplaces.onlinesim.handlers import Onlinesim
from simgate.services.inventory import import_numbers
from simgate.storage.memory import MemoryStore
from tests.factories import make_spec

KEY = "k"


async def test_a_service_not_offered_is_not_advertised_or_issued() -> None:
    store = MemoryStore()
    store.run(lambda uow: import_numbers(uow, [make_spec()], 1.0))
    onlinesim = Onlinesim(store=store, key=KEY, services=(ServiceName("telegram"),), clock=lambda: 2.0)

    services = await onlinesim.handle("getServices", b'{"key":"k"}', [])
    assert services.status == 200
    assert services.payload["countryList"][0]["operatorMap"]["any"] == {"telegram": 1}

    order = {"key": KEY, "country": "russia", "operator": "any", "service": "vkcom", "sum": 5}
    answer = await onlinesim.handle("getNumber", json.dumps(order).encode(), [])
    assert (answer.status, answer.payload) == (200, {"status": "NO_NUMBERS"})
    assert store.run(lambda uow: uow.numbers.search())[0].state == "free"

    order["service"] = "telegram"
    answer = await onlinesim.handle("getNumber", json.dumps(order).encode(), [])
    assert answer.payload["status"] == "SUCCESS"
