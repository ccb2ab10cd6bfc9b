"""The dashboard in a real browser: Debian's headless Chromium driven by Playwright.

The owner's path: sign in, find a SIM, open an operation and read its SMS and push
attempts, disable a SIM and watch GET_SERVICES drop it, retry a refused push, check the SIM
hardware (a GoIP gateway over UDP, an Ejoin box over HTTP) and see it go silent. Every page
is measured and photographed at 375 and 1280 px wide (artifacts/PAGE-375.png, PAGE-1280.png,
git-ignored): look at them after changing a page.

Skipped when Chromium or Playwright is missing, unless SIMGATE_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from simgate.domain.types import Kopecks, PhoneNumber
from tests.conftest import ADMIN_TOKEN, LiveServer
from tests.conftest import test_settings as settings_for
from tests.console import ADMIN, A, B, C, Farm, seed_farm, services
from tests.fakes import FakeReceiver
from tests.hardware.conftest import PHONES
from tests.hardware.farm import STRANGER, HardwareFarm, start_farm

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


@contextmanager
def tab_on(browser: Any, base_url: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900}, base_url=base_url)
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    # A wrong token is answered 401 on purpose; Chromium reports every 4xx on the console.
    tab.on("console", lambda m: errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    try:
        yield tab
    finally:
        context.close()
    assert errors == [], errors  # no script error and no CSP violation on any page


@pytest.fixture
def page(browser: Any, live_server: LiveServer) -> Iterator[Any]:
    with tab_on(browser, live_server.url) as tab:
        yield tab


def expect(locator: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    # Assertions retry for as long as actions do (Playwright's own default is 5 s, which a
    # page refreshing on a loaded machine can miss).
    playwright_expect.set_options(timeout=TIMEOUT_MS)
    return playwright_expect(locator)


def eventually(page: Any, script: str, done: Callable[[Any], bool]) -> Any:
    """`script`'s result once `done` holds of it, else its last after TIMEOUT_MS: the page
    lays itself out again after a resize when the browser gets to it, later on a loaded
    machine, so a fixed pause before one look is a timing."""
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while True:
        result = page.evaluate(script)
        if done(result) or time.monotonic() > deadline:
            return result
        page.wait_for_timeout(100)


FITS_WIDTH = "document.documentElement.scrollWidth <= window.innerWidth + 1"


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
    market = page.locator("#by-marketplace tbody tr[data-marketplace='onlinesim'] td")
    expect(market.nth(1)).to_have_text("2")  # free SIMs in its lane
    assert market.nth(2).inner_text() == "1"  # open
    assert "12.50 ₽ · 1 sold" in market.nth(4).inner_text()
    page.wait_for_selector("#earnings-chart canvas")
    page.wait_for_selector("#ops-24h tbody tr")
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "overview.png"), full_page=True)
    # Readable on a phone: nothing wider than the screen but the scrollable tables.
    page.set_viewport_size({"width": 390, "height": 844})
    assert eventually(page, FITS_WIDTH, bool)
    page.screenshot(path=str(ARTIFACTS / "overview-phone.png"), full_page=True)


def test_open_alerts_are_listed_on_the_overview_at_both_widths(
    browser: Any, farm: Farm, live_server: LiveServer
) -> None:
    """B's three rents got no SMS, so its alert is (or soon would be) open: stored as the
    monitor stores it, the overview lists it at the top, on a phone too."""
    assert live_server.store is not None
    text = f"SIM {B}: 3 operations in a row got no SMS"
    live_server.store.run(
        lambda uow: uow.alerts.fire(f"sim_failing:{B}", "sim_failing", text, time.time() - 90)
    )
    for width in (375, 1280):
        with tab_on(browser, live_server.url) as page:
            page.set_viewport_size({"width": width, "height": 812 if width < 600 else 900})
            sign_in(page)
            banner = page.locator("#alerts")
            expect(banner).to_be_visible()
            expect(page.locator("#alert-list")).to_contain_text(B)
            assert page.inner_text("#alerts-total") == "1"
            expect(banner).to_be_in_viewport()  # at the top: the first thing the owner sees
            assert page.evaluate(FITS) == [], "overview with an alert"
            shoot(page, f"overview-alert-{width}.png")


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
    assert "telegram" not in row.locator("td").nth(9).inner_text()  # sold, not blocked
    # Its lane and where it may be sold; busy: the marketplace of its open operation.
    assert row.locator("td").nth(2).inner_text().split("\n")[:2] == ["onlinesim", "sells on all"]
    assert "on onlinesim" in row.locator("td").nth(1).inner_text()
    row.locator("a", has_text=A).click()
    page.wait_for_url(f"**/operations?number_id={farm.ids[A]}")
    sold = page.locator(f"#operations tbody tr[data-id='{farm.sold}']")
    sold.wait_for()
    assert "sold" in sold.inner_text()
    assert "onlinesim" in sold.inner_text()
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
    assert "onlinesim (sells on all)" in page.inner_text("#facts")
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
    # Disabling asks first: dismissed, nothing changes.
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    row.locator("button[data-action=disable]").click()
    for _ in range(TIMEOUT_MS // 100):  # the dialog comes when the browser gets to it
        if asked:
            break
        page.wait_for_timeout(100)
    assert len(asked) == 1
    assert B in asked[0]
    expect(row.locator("button[data-action=disable]")).to_be_visible()
    page.once("dialog", lambda dialog: dialog.accept())
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


# -- hardware -------------------------------------------------------------------------------------


def test_hardware_page_says_when_only_http_intake_is_active(page: Any) -> None:
    sign_in(page)
    page.click("nav a[href='/hardware']")
    page.wait_for_url("**/hardware")
    empty = page.locator("#hardware-empty")
    expect(empty).to_be_visible()
    assert "Only HTTP intake (/intake/sms) is active" in empty.inner_text()
    assert "[hardware.*]" in empty.inner_text()
    expect(page.locator("#drivers .driver[data-kind='http']")).to_have_count(1)
    assert page.locator("#drivers .driver").count() == 1
    expect(page.locator("#unwatched-box")).to_be_hidden()
    assert page.get_attribute("nav a[href='/hardware']", "aria-current") == "page"


@pytest.fixture
def hardware_farm(tmp_path: Path) -> Iterator[HardwareFarm]:
    farm = start_farm(tmp_path)
    yield farm
    farm.close()


def test_hardware_page_shows_each_driver_its_sims_and_silence(
    browser: Any, hardware_farm: HardwareFarm
) -> None:
    farm = hardware_farm
    farm.goip_keepalives(1)
    farm.ejoin_status()
    with tab_on(browser, farm.server.url) as page:
        sign_in(page, "/hardware")
        goip = page.locator(".driver[data-name='goip']")
        line = goip.locator("tr[data-port='goip1']")
        expect(line).to_contain_text("online")
        assert PHONES[0] in line.inner_text()
        assert "23/31" in line.inner_text()
        assert "89701011234567890123" in line.inner_text()
        assert "LOGIN" in line.inner_text()
        assert "port-error" not in (line.get_attribute("class") or "")
        stranger = goip.locator("tr[data-port='goip2']")
        expect(stranger).to_contain_text(f"{STRANGER} is not in the inventory")
        assert "port-error" in (stranger.get_attribute("class") or "")
        assert "wrong id or password" in goip.inner_text()
        assert "has-error" in (goip.get_attribute("class") or "")
        expect(goip.locator(".driver-head")).to_contain_text("reporting")
        assert "silent" not in (goip.get_attribute("class") or "")
        android = page.locator(".driver[data-name='android:pixel']")
        expect(android).to_contain_text("waiting for an SMS")
        assert "never since simgate started" in android.inner_text()
        unwatched = page.locator("#unwatched")
        expect(unwatched.locator("li[data-name='gammu']")).to_contain_text("simgate intake gammu")
        expect(unwatched.locator("li[data-name='modem']")).to_contain_text("enabled = false")

        # Ten minutes later the GoIP gateway has said nothing; the Ejoin box still reports.
        page.evaluate("window.__same_page = true")
        farm.server.clock.offset = 600
        farm.ejoin_status(sig=21)
        expect(goip).to_have_class("card driver silent has-error", timeout=12_000)
        expect(goip.locator(".driver-head")).to_contain_text("silent 10 min")
        expect(line).to_contain_text("keep-alives stopped", timeout=12_000)
        expect(line).to_contain_text("offline")
        ejoin = page.locator(".driver[data-name='ejoin:box1']")
        expect(ejoin.locator("tr[data-port='1.01']")).to_contain_text("21")
        assert "silent" not in (ejoin.get_attribute("class") or "")
        assert page.evaluate("window.__same_page === true")
        shoot(page, "hardware.png")
        # Readable on a phone: every SIM a small card, nothing wider than the screen.
        page.set_viewport_size({"width": 390, "height": 844})
        assert eventually(page, FITS_WIDTH, bool)
        assert eventually(
            page,
            "[...document.querySelectorAll('table.ports')].every((t) => t.scrollWidth <= t.clientWidth + 1)",
            bool,
        )
        assert goip.locator("thead").is_hidden()
        shoot(page, "hardware-phone.png")


def test_hardware_page_shows_the_last_herosms_ping(browser: Any, sqlite_url: str) -> None:
    """HeroSMS's ping (README "Selling on Grizzly and HeroSMS"): ok, then failing."""
    with FakeReceiver(default=(200, {"status": "SUCCESS"})) as herosms:
        settings = settings_for(
            sqlite_url, herosms_key="hs-key", herosms_push_url=herosms.url + "/agent/api/sms",
            herosms_ping_seconds="0.3",
        )  # fmt: skip
        server = LiveServer(settings).start()
        try:
            with tab_on(browser, server.url) as page:
                sign_in(page, "/hardware")
                row = page.locator("#market-health tr[data-marketplace='herosms']")
                expect(row).to_contain_text("ok")
                assert "ping every" in row.inner_text()
                herosms.set_script([], default=(200, {"status": "ERROR", "error": "busy"}))
                expect(row).to_contain_text("not SUCCESS", timeout=12_000)
        finally:
            server.stop()


# -- every page on a phone and on a desktop ------------------------------------------------------

PAGES = [
    ("overview", "/", "#by-service tbody tr[data-service]"),
    ("sims", "/sims", "#sims tbody tr[data-id]"),
    ("operations", "/operations", "#operations tbody tr[data-id]"),
    ("operation", "/operations/{sold}", ".sms-block table.attempts tbody tr"),
    ("sms", "/sms", "#sms tbody tr[data-id]"),
    ("deliveries", "/deliveries", "#deliveries tbody tr[data-id] button[data-action=retry]"),
    ("hardware", "/hardware", "#hardware-empty"),
]

# What "usable" means, measured in the page: nothing wider than the screen, no table that
# needs sideways scrolling, every control inside the screen, no text squeezed into a sliver.
FITS = """() => {
  const width = window.innerWidth, problems = [];
  const root = document.documentElement;
  if (root.scrollWidth > width + 1) problems.push("page is " + root.scrollWidth + " px wide");
  for (const t of document.querySelectorAll("main table")) {
    if (t.offsetParent && t.scrollWidth > t.parentElement.clientWidth + 1)
      problems.push("table " + (t.id || t.className) + " is " + t.scrollWidth + " px wide");
  }
  for (const c of document.querySelectorAll("main button, main select, main a, main input")) {
    const r = c.getBoundingClientRect();
    if (r.width && (r.right > width + 1 || r.left < -1))
      problems.push("off screen: " + (c.textContent || c.name).trim().slice(0, 30));
  }
  for (const c of document.querySelectorAll("main td, main dd, main .sms-block .text")) {
    const r = c.getBoundingClientRect(), text = c.textContent.trim();
    if (r.width && text.length > 12 && r.width < 90)
      problems.push("squeezed to " + Math.round(r.width) + " px: " + text.slice(0, 30));
  }
  return problems;
}"""


@pytest.mark.parametrize("width", [375, 1280])
def test_every_page_is_usable_on_a_phone_and_a_desktop(
    browser: Any, live_server: LiveServer, farm: Farm, width: int
) -> None:
    with tab_on(browser, live_server.url) as page:
        page.set_viewport_size({"width": width, "height": 812 if width < 600 else 900})
        page.goto("/login")
        page.wait_for_selector("#sign-in")
        shoot(page, f"login-{width}.png")
        assert page.evaluate(FITS) == [], "login"
        sign_in(page)
        for name, path, ready in PAGES:
            page.goto(path.format(sold=farm.sold))
            page.wait_for_selector(ready)
            problems = eventually(page, FITS, lambda found: found == [])
            shoot(page, f"{name}-{width}.png")
            assert problems == [], name
        if width < 600:
            # On a phone each row is a card whose values carry their column's name.
            page.goto("/deliveries?state=failed")
            retry = page.locator(f"#deliveries tbody tr[data-id='{farm.rejected}'] button[data-action=retry]")
            expect(retry).to_be_in_viewport()
            assert page.locator("#deliveries thead").is_hidden()
            cell = page.locator(f"#deliveries tbody tr[data-id='{farm.rejected}'] td").nth(3)
            assert cell.get_attribute("data-label") == "State"


def test_overview_shows_30_days_earnings_per_service_and_the_day_under_the_cursor(
    page: Any, farm: Farm
) -> None:
    sign_in(page)
    expect(page.locator("#earned-30d")).to_contain_text("12.50")
    assert page.inner_text("#sold-30d") == "1"
    telegram = page.locator("#by-service tbody tr[data-service='telegram']")
    expect(telegram).to_contain_text("12.50")
    assert "1 / 1" in telegram.inner_text()
    expect(page.locator("#first-run")).to_be_hidden()
    canvas = page.locator("#earnings-chart .u-over")
    canvas.wait_for()
    box = canvas.bounding_box()
    assert box is not None
    # Untouched (a phone has no cursor), the legend shows today rather than blanks.
    legend = page.locator("#earnings-chart .u-legend")
    expect(legend).to_contain_text("12.50")
    # Under the cursor it shows the day pointed at: the left end is 29 days ago, nothing earned.
    page.mouse.move(box["x"] + 3, box["y"] + box["height"] / 2)
    expect(legend).to_contain_text("0.00")
    shoot(page, "overview-hover.png")
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] + 80)
    expect(legend).to_contain_text("12.50")


def test_a_new_farm_gets_a_first_run_hint(page: Any) -> None:
    sign_in(page)
    hint = page.locator("#first-run")
    expect(hint).to_be_visible()
    assert "simgate numbers import" in hint.inner_text()


def test_blocks_are_picked_from_the_service_catalogue(page: Any, farm: Farm) -> None:
    sign_in(page, "/sims")
    row = page.locator(f"#sims tbody tr[data-phone='{C}']")
    picker = row.locator("select.block-picker")
    picker.wait_for()
    expect(picker.locator("option[value='whatsapp']")).to_have_count(1)
    assert picker.locator("option[value='telegramm']").count() == 0
    picker.select_option("whatsapp")
    expect(row.locator(".chip")).to_contain_text("whatsapp")
    # Blocked now, so no longer offered in its picker.
    expect(row.locator("select.block-picker option[value='whatsapp']")).to_have_count(0)


def test_operations_filter_by_marketplace(page: Any, farm: Farm) -> None:
    sign_in(page, "/operations?marketplace=smshub")
    expect(page.locator("#operations tbody td.empty")).to_have_text("No operation matches.")
    page.select_option("select[name=marketplace]", "onlinesim")
    page.locator(f"#operations tbody tr[data-id='{farm.sold}']").wait_for()
    assert "marketplace=onlinesim" in page.url


def _two_marketplace_farm(url: str) -> None:
    """Four SIMs in two lanes; a sale on each marketplace, SMSHUB's paid in USD, one open."""
    from simgate.services.inventory import import_numbers
    from simgate.services.lanes import register_marketplaces
    from simgate.services.operations import finish_operation, issue_number
    from simgate.storage.sqlite import SQLiteStore
    from tests.factories import make_order, make_spec

    store = SQLiteStore.from_url(url)
    now = time.time()
    specs = [make_spec(phone=PhoneNumber(f"7928555000{i}"), port=f"goip3/{i}") for i in range(4)]

    def work(uow: Any) -> None:
        register_marketplaces(uow, ["onlinesim", "smshub"], now)
        import_numbers(uow, specs, now)
        here = issue_number(uow, "onlinesim", make_order(offered=Kopecks(1000)), now)
        there = issue_number(uow, "smshub", make_order(offered=Kopecks(30), currency="USD"), now)
        assert here is not None
        assert there is not None
        finish_operation(uow, "onlinesim", here.id, 3, None, now + 1)
        finish_operation(uow, "smshub", there.id, 3, None, now + 2)
        assert issue_number(uow, "smshub", make_order(offered=Kopecks(50), currency="USD"), now + 3)

    try:
        store.run(work)
    finally:
        store.close()


@pytest.mark.parametrize("width", [375, 1280])
def test_two_marketplaces_and_two_currencies_are_shown_apart(
    browser: Any, sqlite_url: str, width: int
) -> None:
    _two_marketplace_farm(sqlite_url)
    server = LiveServer(
        settings_for(sqlite_url, smshub_key="hub-key-for-the-console", smshub_push_url="http://127.0.0.1:9/")
    ).start()
    try:
        with tab_on(browser, server.url) as page:
            page.set_viewport_size({"width": width, "height": 812 if width < 600 else 900})
            sign_in(page)
            hub = page.locator("#by-marketplace tbody tr[data-marketplace='smshub'] td")
            expect(hub.nth(4)).to_contain_text("0.30 USD · 1 sold")
            here = page.locator("#by-marketplace tbody tr[data-marketplace='onlinesim'] td")
            assert "10.00 ₽ · 1 sold" in here.nth(4).inner_text()
            assert hub.nth(2).inner_text() == "1"  # its open operation
            # The cards add up each currency apart, never roubles and dollars together.
            assert page.inner_text("#earned-today") == "10.00 ₽ + 0.30 USD"
            assert page.inner_text("#sold-today") == "2"
            shoot(page, f"overview-two-marketplaces-{width}.png")
            assert page.evaluate(FITS) == [], "overview"
            page.goto("/sims")
            page.wait_for_selector("#sims tbody tr[data-id]")
            assert "on smshub" in page.inner_text("#sims")
            shoot(page, f"sims-two-marketplaces-{width}.png")
            assert page.evaluate(FITS) == [], "sims"
            page.goto("/operations?marketplace=smshub")
            expect(page.locator("#operations tbody tr[data-id]")).to_have_count(2)
            assert "0.50 USD" in page.inner_text("#operations")
            shoot(page, f"operations-two-marketplaces-{width}.png")
    finally:
        server.stop()


def test_an_unknown_operation_says_so_instead_of_an_empty_page(browser: Any, live_server: LiveServer) -> None:
    # Not tab_on: its console check counts the API's 404, which is the point here.
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=live_server.url)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        tab = context.new_page()
        sign_in(tab, "/operations/999999")
        expect(tab.locator("main")).to_contain_text("There is no operation 999999 in this farm's database.")
        expect(tab.locator("main a[href='/operations']")).to_have_count(2)
        expect(tab.locator("#status")).not_to_contain_text("Refresh failed")
    finally:
        context.close()
