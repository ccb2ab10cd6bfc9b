"""Who may use the console: the admin token as a Bearer header, or a signed session cookie.

The session is an HMAC over (issue time, nonce) with a key derived from the admin token, so
sessions survive a restart and changing SIMGATE_ADMIN_TOKEN signs everyone out. A request
carried by the cookie that changes something must also carry the page's CSRF token: the
cookie is SameSite=Strict already, this covers browsers that ignore it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from starlette.requests import Request

from simgate.domain.types import Timestamp
from simgate.http.body import bearer

COOKIE = "simgate_session"
SESSION_SECONDS = 7 * 24 * 3600
CSRF_HEADER = "x-csrf-token"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
NOT_CONFIGURED = "SIMGATE_ADMIN_TOKEN is not set: the admin API and dashboard are disabled"


def _mac(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _same(supplied: str, expected: str) -> bool:
    # As bytes: compare_digest raises TypeError on a str holding non-ASCII (a 500 from a
    # cookie); surrogates from a malformed header survive the encoding too.
    return hmac.compare_digest(
        supplied.encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )


@dataclass
class ConsoleAuth:
    token: str | None
    clock: Callable[[], Timestamp]
    _key: bytes = field(init=False, repr=False, default=b"")

    def __post_init__(self) -> None:
        if self.token:
            self._key = hmac.new(self.token.encode(), b"simgate-console-session-v1", hashlib.sha256).digest()

    @property
    def configured(self) -> bool:
        return bool(self.token)

    def token_ok(self, supplied: str | None) -> bool:
        if not self.token or not supplied:
            return False
        return _same(supplied, self.token)

    def new_session(self) -> str:
        payload = f"{int(self.clock())}.{secrets.token_hex(8)}"
        return f"{payload}.{_mac(self._key, payload)}"

    def session_ok(self, cookie: str | None) -> bool:
        if not self.configured or not cookie or cookie.count(".") != 2:
            return False
        issued, nonce, signature = cookie.split(".")
        if not _same(signature, _mac(self._key, f"{issued}.{nonce}")):
            return False
        if not issued.isdigit():
            return False
        age = self.clock() - int(issued)
        return -60 <= age <= SESSION_SECONDS

    def csrf_token(self, cookie: str) -> str:
        return _mac(self._key, "csrf:" + cookie)[:40]

    def csrf_ok(self, cookie: str, supplied: str | None) -> bool:
        return bool(supplied) and _same(self.csrf_token(cookie), supplied or "")

    def session(self, request: Request) -> str | None:
        """The request's valid session cookie, if it has one."""
        cookie = request.cookies.get(COOKIE)
        return cookie if self.session_ok(cookie) else None

    def api_caller(self, request: Request) -> str | None:
        """'token' or 'session' when the request may use the API; None otherwise."""
        if self.token_ok(bearer(request)):
            return "token"
        cookie = self.session(request)
        if cookie is None:
            return None
        if request.method in UNSAFE and not self.csrf_ok(cookie, request.headers.get(CSRF_HEADER)):
            return None
        return "session"
