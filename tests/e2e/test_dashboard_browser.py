"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

The owner's path: sign in, find a SIM, open an operation and read its SMS and push
attempts, disable a SIM and watch GET_SERVICES drop it, retry a refused push. A screenshot
of the overview is saved to artifacts/overview.png (and a phone-sized one beside it).

Skipped when Chromium or Playwright is missing, unless SIMGATE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.console import ADMIN, A, B, Farm, seed_farm, services

CHROMIUM = os.environ.get("SIMGATE_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
TIMEOUT_MS = 15_000


def _missing() -> str | None:
    if not (Path(CHROMIUM).exists() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set SIMGATE_CHROMIUM)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason is not None:
        if os.environ.get("SIMGATE_REQUIRE_BROWSER") == "1":
            pytest.fail("SIMGATE_REQUIRE_BROWSER=1 but " + reason)
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def farm(live_server: LiveServer) -> Farm:
    return seed_farm(live_server)


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # A wrong token is answered 401 on purpose; Chromium reports every 4xx on the console.
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    yield tab
    context.close()
    assert errors == [], errors  # no script error and no CSP violation on any page


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(locator)


def shoot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def sign_in(page: Any, path: str = "/") -> None:
    page.goto(path)
    assert "/login" in page.url
    page.fill("#token", ADMIN_TOKEN)
    page.click("#sign-in")
    page.wait_for_url(lambda url: "/login" not in url)


def test_sign_in_refuses_a_wrong_token(page: Any, live_server: LiveServer) -> None:
    page.goto("/")
    page.fill("#token", "not-the-token")
    page.click("#sign-in")
    assert page.locator("[role=alert]").inner_text() == "Wrong admin token."
    assert "/login" in page.url


def test_overview_shows_the_farm_and_is_saved_as_a_screenshot(page: Any, farm: Farm) -> None:
    sign_in(page)
    expect(page.locator("#sims-online")).to_have_text("3")
    assert page.inner_text("#sims-busy") == "1"
    assert page.inner_text("#sims-disabled") == "1"
    assert "12.50" in page.inner_text("#earned-today")
    assert page.inner_text("#push-failed") == "1"
    assert page.inner_text("#losing-total") == "1"
    assert B in page.inner_text("#losing")
    page.wait_for_selector("#earnings-chart canvas")
    page.wait_for_selector("#ops-24h tbody tr")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    # Readable on a phone: nothing wider than the screen but the scrollable tables.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    page.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)


def test_live_refresh_without_reloading(page: Any, farm: Farm, live_server: LiveServer) -> None:
    sign_in(page)
    expect(page.locator("#sims-disabled")).to_have_text("1")
    page.evaluate("window.__same_page = true")
    with live_server.client() as client:
        assert client.post(f"/api/numbers/{farm.ids[B]}/disable", headers=ADMIN).status_code == 200
    expect(page.locator("#sims-disabled")).to_have_text("2", timeout=12_000)
    assert page.evaluate("window.__same_page === true")


def test_find_a_sim_and_open_an_operation_with_its_sms_and_attempts(page: Any, farm: Farm) -> None:
    sign_in(page, "/sims")
    page.fill("#search", A[-4:])
    row = page.locator(f"#sims tbody tr[data-phone='{A}']")
    row.wait_for()
    expect(page.locator("#sims tbody tr")).to_have_count(1)
    assert "busy" in row.inner_text()
    assert "telegram" not in row.locator("td").nth(8).inner_text()  # sold, not blocked
    row.locator("a", has_text=A).click()
    page.wait_for_url(f"**/operations?number_id={farm.ids[A]}")
    sold = page.locator(f"#operations tbody tr[data-id='{farm.sold}']")
    sold.wait_for()
    assert "sold" in sold.inner_text()
    sold.click()
    page.wait_for_url(f"**/operations/{farm.sold}")
    block = page.locator(".sms-block").first
    block.wait_for()
    assert "Telegram code 11111" in block.inner_text()
    attempts = block.locator("table.attempts tbody tr")
    assert attempts.count() == 1
    assert "200" in attempts.first.inner_text()
    assert "delivered" in attempts.first.inner_text()
    timeline = page.inner_text("#timeline")
    assert "GET_NUMBER activation for telegram" in timeline
    assert "FINISH status 3 (sold), 12.50 RUB" in timeline
    assert page.inner_text("#op-status") == "sold"
    shoot(page, "operation.png")


def test_disable_a_losing_sim_and_get_services_drops_it(
    page: Any, farm: Farm, live_server: LiveServer
) -> None:
    with live_server.client() as client:
        before = services(client, operator="mts")
    assert before["telegram"] == 1
    assert before["rent"] == 1
    sign_in(page, "/sims?losing=1")
    row = page.locator(f"#sims tbody tr[data-phone='{B}']")
    row.wait_for()
    assert "rents in a row got no SMS" in row.inner_text()
    page.goto("/sims")
    row.wait_for()
    shoot(page, "sims.png")
    row.locator("button[data-action=disable]").click()
    row.locator("button[data-action=enable]").wait_for()
    expect(row).to_contain_text("disabled")
    with live_server.client() as client:
        after = services(client, operator="mts")
    assert after["telegram"] == 0
    assert after["rent"] == 0


def test_retry_a_rejected_push_from_the_deliveries_page(page: Any, farm: Farm) -> None:
    sign_in(page, "/deliveries?state=failed")
    row = page.locator(f"#deliveries tbody tr[data-id='{farm.rejected}']")
    row.wait_for()
    assert "NO_OPERATION" in row.inner_text()
    shoot(page, "deliveries.png")
    assert page.locator(f"#deliveries tbody tr[data-id='{farm.delivered}']").count() == 0
    row.locator("button[data-action=retry]").click()
    page.select_option("select[name=state]", "pending")
    pending = page.locator(f"#deliveries tbody tr[data-id='{farm.rejected}']")
    expect(pending).to_contain_text("pending")
    assert pending.locator("button[data-action=retry]").count() == 0


def test_sign_out(page: Any, farm: Farm) -> None:
    sign_in(page)
    page.click(".signout button")
    page.wait_for_url("**/login")
    page.goto("/sims")
    assert "/login" in page.url
