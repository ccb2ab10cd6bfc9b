"""The dashboard's pages: sign-in, overview, SIMs, operations, SMS, deliveries, hardware.

Pages are thin server-rendered shells; static/console.js fills them from the admin API and
refreshes them every few seconds, so the owner watches the farm without reloading. All
assets ship in the package: a farm is often offline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from simgate.dashboard.auth import COOKIE, NOT_CONFIGURED, SESSION_SECONDS, ConsoleAuth
from simgate.http.body import BodyError, read_body

HERE = Path(__file__).parent
MAX_FORM = 4096

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:;"
        " connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

NAV = (
    ("overview", "/", "Overview"),
    ("sims", "/sims", "SIMs"),
    ("operations", "/operations", "Operations"),
    ("sms", "/sms", "SMS"),
    ("deliveries", "/deliveries", "Pushes"),
    ("hardware", "/hardware", "Hardware"),
)

Page = Callable[[Request], Awaitable[Response]]


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
    )


async def read_form(request: Request) -> dict[str, list[str]] | None:
    """The urlencoded form, read through the bounded reader; None when it is unusable."""
    try:
        body = await read_body(request, MAX_FORM, json=False)
        return parse_qs(body.decode(), max_num_fields=10, strict_parsing=False)
    except (BodyError, ValueError):
        return None


def _local_path(raw: str | None) -> str:
    """Where to go after sign-in: only a path on this server (no open redirect)."""
    if not raw or not raw.startswith("/") or raw.startswith("//") or "\\" in raw:
        return "/"
    return raw


@dataclass
class Dashboard:
    auth: ConsoleAuth
    templates: jinja2.Environment

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.page("overview", "Overview"), methods=["GET"]),
            Route("/sims", self.page("sims", "SIMs"), methods=["GET"]),
            Route("/operations", self.page("operations", "Operations"), methods=["GET"]),
            Route("/operations/{id:int}", self.page("operation", "Operation"), methods=["GET"]),
            Route("/sms", self.page("sms", "SMS"), methods=["GET"]),
            Route("/deliveries", self.page("deliveries", "Pushes"), methods=["GET"]),
            Route("/hardware", self.page("hardware", "Hardware"), methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]

    def render(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        html = self.templates.get_template(template).render(nav=NAV, **context)
        return HTMLResponse(html, status_code=status, headers=SECURITY_HEADERS)

    def unavailable(self) -> HTMLResponse:
        return self.render("message.html", 503, title="Console disabled", message=NOT_CONFIGURED)

    def page(self, name: str, title: str) -> Page:
        async def endpoint(request: Request) -> Response:
            if not self.auth.configured:
                return self.unavailable()
            cookie = await self.auth.session(request)
            if cookie is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            return self.render(
                f"{name}.html",
                page=name,
                title=title,
                csrf=self.auth.csrf_token(cookie),
                path_id=request.path_params.get("id"),
            )

        return endpoint

    async def login_form(self, request: Request) -> Response:
        if not self.auth.configured:
            return self.unavailable()
        next_path = _local_path(request.query_params.get("next"))
        if await self.auth.session(request) is not None:
            return RedirectResponse(next_path, status_code=303)
        return self.render("login.html", page="login", title="Sign in", next=next_path, error=None)

    async def login(self, request: Request) -> Response:
        if not self.auth.configured:
            return self.unavailable()
        form = await read_form(request)
        if form is None:
            return self.render("message.html", 400, title="Sign in", message="Malformed form.")
        next_path = _local_path((form.get("next") or ["/"])[0])
        if not self.auth.token_ok((form.get("token") or [""])[0].strip()):
            return self.render(
                "login.html", 401, page="login", title="Sign in", next=next_path, error="Wrong admin token."
            )
        response = RedirectResponse(next_path, status_code=303)
        response.set_cookie(
            COOKIE,
            await self.auth.new_session(),
            max_age=SESSION_SECONDS,
            path="/",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
        return response

    async def logout(self, request: Request) -> Response:
        """Revokes this session, or with `everywhere=1` every session (a lost laptop)."""
        cookie = await self.auth.session(request)
        if cookie is not None:
            form = await read_form(request)
            if form is None or not self.auth.csrf_ok(cookie, (form.get("csrf") or [""])[0]):
                return self.render("message.html", 403, title="Sign out", message="Missing CSRF token.")
            if (form.get("everywhere") or [""])[0] == "1":
                await self.auth.revoke_all()
            else:
                await self.auth.revoke(cookie)
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(
            COOKIE, path="/", httponly=True, samesite="strict", secure=request.url.scheme == "https"
        )
        return response


def dashboard_routes(auth: ConsoleAuth) -> list[BaseRoute]:
    return Dashboard(auth, _environment()).routes()
