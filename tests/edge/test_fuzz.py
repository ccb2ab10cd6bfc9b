"""Property-based requests against every HTTP endpoint (issue 12, "beyond the list").

Routes are discovered from the app itself, so a marketplace plug-in (/smshub, ...) or a new
admin endpoint is fuzzed the day it is added. For any method, path parameter, query, header,
body and encoding: the answer is a 2xx, 3xx or 4xx, never a 5xx; it comes (the client's
timeout would fail the test on a hang); and a refused request (4xx) leaves every table
exactly as it was. Examples are derandomized and bounded: the module runs in well under 60 s.
"""

from __future__ import annotations

import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from simgate import marketplaces
from simgate.domain.model import NumberSpec
from simgate.domain.types import CountryName, OperatorName, PhoneNumber
from simgate.http.access import AuthThrottle
from simgate.services.inventory import import_numbers
from simgate.storage import schema
from tests.conftest import ADMIN_TOKEN, INTAKE_TOKEN, KEY, LiveServer
from tests.conftest import test_settings as settings_for
from tests.edge.conftest import snapshot

PHONES = ["79281234560", "79281234561", "4915112345678"]
EJOIN_TOKEN = "fuzz-ejoin-token"
HARDWARE = f"""
[hardware.ejoin.devices.box1]
token = "{EJOIN_TOKEN}"
[hardware.ejoin.devices.box1.ports]
"1.01" = "{PHONES[0]}"
[hardware.android.devices.pixel]
signing_key = "fuzz-signing-key"
[hardware.android.devices.pixel.sims]
1 = "{PHONES[1]}"
"""

FAMILIES = {
    "hardware": ("/intake/ejoin", "/intake/android"),
    "intake": ("/intake/",),
    "admin": ("/api/",),
    "console": ("/login", "/logout", "/static"),
    "health": ("/healthz", "/readyz", "/metrics"),
}
"""Route families by path prefix, first match wins; the dashboard's pages (GET only) are the
console's too, and every other route is a marketplace's."""

KNOWN_PARAMS = [
    "getServices", "getServicesRent", "getNumber", "getNumberRent", "finishActivation",
    "finishActivationRent", "box1", "pixel", "vk", "telegram", "1", "0", "-1", "..", "%00",
]  # fmt: skip
FIELDS = [
    "key", "action", "service", "country", "operator", "activationId", "status", "sum",
    "currency", "exceptionPhoneSet", "phone", "sender", "text", "received_at", "message_id",
    "type", "sms", "sms_num", "event", "payload", "deviceId", "id", "rent", "days", "services",
]  # fmt: skip
CREDENTIALS = [
    f"Bearer {KEY}", f"Bearer {INTAKE_TOKEN}", f"Bearer {ADMIN_TOKEN}", f"Bearer {EJOIN_TOKEN}",
    "Bearer wrong", "Basic YWRtaW46YWRtaW4=", "Bearer", "",
]  # fmt: skip
HEADER_NAMES = [
    "authorization", "content-type", "content-encoding", "cookie", "x-csrf-token", "x-signature",
    "x-timestamp", "accept-encoding", "x-forwarded-for", "x-forwarded-proto", "user-agent",
]  # fmt: skip


def family(route: Route) -> str:
    for name, prefixes in FAMILIES.items():
        if any(route.path.startswith(prefix) for prefix in prefixes):
            return name
    return "console" if route.methods is not None and route.methods <= {"GET", "HEAD"} else "marketplace"


def every_marketplace() -> str:
    """Every registered plug-in enabled, all with the one key (so credentials reach them all)."""
    return "".join(f'[marketplaces.{name}]\nkey = "{KEY}"\n' for name in marketplaces.names())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("fuzz")
    url = f"sqlite:///{folder / 'fuzz.db'}"
    schema.upgrade(url)
    (folder / "simgate.toml").write_text(every_marketplace() + HARDWARE)
    # One lane round, at start: a later one (every 60 s by default) moves SIMs between lanes
    # while an example's request is refused, and the snapshot then differs for a reason that is
    # not the request's (seen at load 12, when this module ran past a minute).
    base = settings_for(url, lane_rebalance_seconds="86400")
    from simgate.config import load_settings

    settings = load_settings(
        {f"SIMGATE_{k.upper()}": str(v.get_secret_value() if hasattr(v, "get_secret_value") else v)
         for k, v in base.model_dump().items()
         # Tables (hardware, exclusion groups, ...) come from the TOML file, not variables.
         if v is not None and not isinstance(v, dict | list | tuple)},
        config_file=folder / "simgate.toml",
    )  # fmt: skip
    live = LiveServer(settings).start()
    assert live.store is not None
    assert live.app is not None
    groups = [("russia", "beeline"), ("russia", "beeline"), ("germany", "o2")]
    specs = [
        NumberSpec(PhoneNumber(p), CountryName(c), OperatorName(o), "") for p, (c, o) in zip(PHONES, groups)
    ]
    live.store.run(lambda uow: import_numbers(uow, specs, time.time()))
    # Guessing is the point here: the back-off must not turn every later example into a 429.
    for middleware in live.app.user_middleware:
        if middleware.cls is AuthThrottle:
            middleware.kwargs["throttle"].free = 10**9
    yield live
    live.stop()


@pytest.fixture(scope="module")
def client(server: LiveServer) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def routes(server: LiveServer, name: str) -> list[tuple[str, Route]]:
    assert server.app is not None
    found = [
        (method, route)
        for route in server.app.routes
        if isinstance(route, Route) and route.methods
        for method in sorted(route.methods - {"HEAD"})
        if family(route) == name
    ]
    assert found, f"no {name} routes discovered"
    return found


# -- strategies ------------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["russia", "beeline", "vk", "telegram", "rent", "RENT", *PHONES, KEY, "GET_NUMBER"]),
)
values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=12,
)
protocol_objects = st.dictionaries(st.sampled_from(FIELDS), values, max_size=8)


def _json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


bodies = st.one_of(
    st.binary(max_size=600),
    values.map(_json),
    protocol_objects.map(_json),
    protocol_objects.map(lambda obj: _json({"key": KEY, **obj})),
    st.sampled_from([b"", b"[" * 2000, b'{"key": "' + b"\\u0000" * 50 + b'"}', "é".encode("latin-1")]),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)
header_values = st.one_of(
    st.sampled_from([*CREDENTIALS, "application/json", "gzip", "br", "application/x-www-form-urlencoded"]),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40),
).map(lambda text: text.strip(" \t").encode("latin-1"))
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=5)
queries = st.dictionaries(
    st.sampled_from(["apikey", "token", "limit", "offset", "country", "search", "state", "next", "tz"]),
    st.text(max_size=20) | st.sampled_from([KEY, EJOIN_TOKEN, "1", "-1", "1e309", "\x00"]),
    max_size=3,
)
params = st.one_of(
    st.sampled_from(KNOWN_PARAMS), st.integers(-(2**65), 2**65).map(str), st.text(min_size=1, max_size=15)
)
Request = tuple[str, str, dict[str, bytes], bytes, dict[str, str]]


@st.composite
def requests(draw: st.DrawFn, server: LiveServer, name: str) -> Request:
    method, route = draw(st.sampled_from(routes(server, name)))
    method = draw(st.sampled_from([method] * 6 + ["GET", "POST", "PUT", "DELETE"]))
    path = re.sub(r"\{[^}]+\}", lambda _: quote(draw(params), safe=""), route.path)
    sent = draw(headers)
    body = draw(bodies)
    if draw(st.booleans()) and "content-encoding" not in sent:
        body, sent = gzip.compress(body), {**sent, "content-encoding": b"gzip"}
    return method, path, sent, body, draw(queries)


# -- the property ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["marketplace", "intake", "hardware", "admin", "console", "health"])
def test_any_request_gets_a_clear_answer_and_a_refusal_changes_nothing(
    server: LiveServer, client: httpx.Client, name: str
) -> None:
    @settings(
        max_examples=150,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests(server, name))
    def check(request: Request) -> None:
        method, path, sent, body, query = request
        before = snapshot(server)
        response = client.request(method, path, content=body, headers=sent, params=query)
        assert response.status_code < 500, (method, path, sent, body[:200], response.text[:300])
        if response.status_code >= 400:
            assert snapshot(server) == before, (method, path, response.status_code)

    check()
    # And the one connection the examples shared is still good.
    assert client.get("/healthz").status_code == 200


def test_every_family_has_routes(server: LiveServer) -> None:
    assert server.app is not None
    found = [route for route in server.app.routes if isinstance(route, Route)]
    marketplace_paths = {route.path for route in found if family(route) == "marketplace"}
    assert "/onlinesim" in marketplace_paths
    assert {"/intake/ejoin/{device}", "/intake/android/{device}"} <= {route.path for route in found}


def test_snapshot_sees_a_change(server: LiveServer, client: httpx.Client, tmp_path: Path) -> None:
    before = snapshot(server)
    sms = {"phone": PHONES[2], "sender": "Bank", "text": f"fuzz {time.time()}"}
    assert (
        client.post("/intake/sms", json=sms, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"}).status_code
        == 202
    )
    assert snapshot(server) != before
