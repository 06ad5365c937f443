"""Browser tests: Debian's Chromium driven by Playwright against the in-process demo.

Setup shared by ``tests/browser``:

* ``browser``: one headless Chromium for the whole session. Missing Playwright or Chromium
  skips the tests with the reason, unless ``CLEVER_SIM_REQUIRE_BROWSER=1`` (CI), where it
  is a failure. ``CLEVER_SIM_CHROMIUM`` overrides where Chromium is.
* ``new_context``: browser contexts (each its own cookie jar, i.e. a browser profile; one
  holds several personas, a tab each, see ``UI.add_persona``) that may only reach
  127.x.x.x/localhost; anything else is aborted and reported at teardown.
  A failing test saves a screenshot of every page it had open.
* ``demo``: the simulator and the reference partner (``start_demo(0, 0, ":memory:")``),
  stopped after the test.
* ``shot``: ``shot(page, "what")`` saves a full-page screenshot under
  ``test-artifacts/screenshots/`` (git-ignored) at the repository root.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO_ROOT / "test-artifacts" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "[::1]"}
INSTALL_HINT = "install Debian's chromium: apt-get install chromium"
TIMEOUT_MS = 10_000  # any single wait; the tests themselves are far quicker


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "browser: drives a real Chromium through Playwright (tests/browser); "
                   "skipped without Chromium unless CLEVER_SIM_REQUIRE_BROWSER=1")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell that the test failed."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


# --- Chromium --------------------------------------------------------------------------------

def _unavailable(reason: str):
    if os.environ.get("CLEVER_SIM_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (CLEVER_SIM_REQUIRE_BROWSER=1: the browser tests must run)",
                    pytrace=False)
    pytest.skip(reason)


def chromium_path() -> str | None:
    """Where Chromium is: $CLEVER_SIM_CHROMIUM, else `chromium` on PATH, else /usr/bin/chromium."""
    configured = os.environ.get("CLEVER_SIM_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    found = shutil.which("chromium")
    if found:
        return found
    return "/usr/bin/chromium" if os.access("/usr/bin/chromium", os.X_OK) else None


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        _unavailable("the playwright Python package is missing: pip install -e '.[test]' "
                     f"(it drives the system Chromium, so also {INSTALL_HINT})")
    path = chromium_path()
    if path is None:
        where = os.environ.get("CLEVER_SIM_CHROMIUM")
        _unavailable(f"CLEVER_SIM_CHROMIUM={where!r} is not an executable: fix it, or unset it "
                     f"and {INSTALL_HINT}" if where
                     else f"Chromium not found (no `chromium` on PATH, no /usr/bin/chromium): "
                          f"{INSTALL_HINT}")
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=path, headless=True,
                                              args=CHROMIUM_ARGS)
    except Error as exc:
        playwright.stop()
        _unavailable(f"Chromium at {path} did not start ({str(exc).splitlines()[0]}); "
                     f"{INSTALL_HINT}")
    yield chromium
    chromium.close()
    playwright.stop()


@pytest.fixture(scope="session", autouse=True)
def _fresh_screenshots():
    """Screenshots are of this run only: stale ones (old failures too) are removed first."""
    if SCREENSHOTS.is_dir():
        for old in SCREENSHOTS.glob("*.png"):
            old.unlink(missing_ok=True)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:80] or "page"


@pytest.fixture
def new_context(browser, request):
    """``new_context()`` → a fresh, local-only browser context (closed after the test)."""
    contexts = []
    blocked: list[str] = []

    def local_only(route):
        host = urlsplit(route.request.url).hostname or ""
        if host in LOCAL_HOSTS or host.startswith("127."):  # 127.0.0.2: another local site
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort("blockedbyclient")

    def make(**options):
        """``options`` go to Playwright's ``new_context`` (e.g. a phone's ``viewport``)."""
        context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, **options})
        context.set_default_timeout(TIMEOUT_MS)
        context.set_default_navigation_timeout(TIMEOUT_MS)
        context.route("**/*", local_only)
        contexts.append(context)
        return context

    yield make
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        for i, context in enumerate(contexts):
            for j, page in enumerate(context.pages):
                try:
                    page.screenshot(path=str(SCREENSHOTS / f"FAILED-{_slug(request.node.name)}"
                                                           f"-{i}{j}.png"), full_page=True)
                except Exception:  # noqa: BLE001 - best effort; the failure is reported anyway
                    pass
    for context in contexts:
        context.close()
    assert not blocked, f"pages tried to reach hosts off this machine: {blocked}"


@pytest.fixture
def shot(request):
    """``shot(page, "what")``: a full-page screenshot named after the test and a counter."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    prefix = _slug(request.node.name.removeprefix("test_"))
    count = [0]

    def save(page, what: str, *, full_page: bool = True) -> Path:
        count[0] += 1
        path = SCREENSHOTS / f"{prefix}-{count[0]:02d}-{_slug(what)}.png"
        page.screenshot(path=str(path), full_page=full_page)
        return path

    return save


# --- the servers ------------------------------------------------------------------------------

@pytest.fixture
def demo():
    """Simulator + reference partner on free ports, in memory, for one test."""
    from contract_tests.demo import start_demo

    running = start_demo(0, 0, ":memory:", environ={})
    # A live gradebook stream notices a closed browser only when it writes: heartbeats
    # every 0.3 s (instead of 15 s) let its server thread end at once, so stop() is quick.
    running.sim.app.config["GRADEBOOK_SSE_HEARTBEAT_S"] = 0.3
    try:
        yield running
    finally:
        running.stop()


# --- clicking through fake Schoology -------------------------------------------------------------

class UI:
    """Steps every browser test takes in fake Schoology (as ``ui`` fixture)."""

    @staticmethod
    def switch_persona(page, sim_url: str, name: str | None = None, *,
                       user_id: str | None = None, slot: str = "") -> str:
        """Pick someone in the home page's persona switcher (by shown name or id) for this
        tab's slot (``slot``: "" for slot 0's plain addresses, "/u/1" …); their id."""
        from playwright.sync_api import expect

        page.goto(f"{sim_url}{slot}/schoology")
        user_id = UI.pick(page, name, user_id)
        page.get_by_role("button", name="Switch persona").click()
        page.wait_for_url(f"{sim_url}{slot}/schoology")
        if name:
            expect(page.get_by_test_id("who")).to_contain_text(name)
        return user_id

    @staticmethod
    def add_persona(page, sim_url: str, name: str | None = None, *,
                    user_id: str | None = None) -> str:
        """"Sign in as another persona" from the Schoology home page: this browser keeps its
        other personas, the tab moves to the new one's slot. That slot's prefix ("/u/1")."""
        from playwright.sync_api import expect

        page.goto(f"{sim_url}/schoology")
        UI.pick(page, name, user_id)
        page.get_by_role("button", name="Sign in as another persona").click()
        page.wait_for_url(re.compile(re.escape(sim_url) + r"(/u/\d+)?/schoology$"))
        if name:
            expect(page.get_by_test_id("who")).to_contain_text(name)
        return page.url[len(sim_url):].removesuffix("/schoology")

    @staticmethod
    def pick(page, name: str | None, user_id: str | None) -> str:
        """Select someone in the persona switcher (by shown name or id); their id."""
        if user_id is None:
            option = page.locator("#user_id option", has_text=name)
            assert option.count() >= 1, f"{name!r} is not offered in the persona switcher"
            user_id = option.first.get_attribute("value")
        page.select_option("#user_id", value=user_id)
        return user_id

    @staticmethod
    def add_assignment(page, app_name: str, assignment_id: str, *, max_points: str | None = None,
                       category: str | None = None, period: str | None = None,
                       screenshot=None):
        """From a section page (as its teacher): Add Materials → app → pick → settings → add.

        ``category``/``period`` pick the first option whose text starts with them.
        ``screenshot(page, what)`` is called on the pick list and the settings page.
        Returns the pick list's navigation response.
        """
        page.get_by_role("link", name="Add Materials").click()
        with page.expect_navigation() as nav:
            page.locator("a.pick", has_text=app_name).click()
        if screenshot:
            screenshot(page, "pick-list")
        row = page.locator("table.sg-table tbody tr").filter(
            has=page.locator("code", has_text=re.compile(rf"^{re.escape(assignment_id)}$")))
        row.get_by_role("button").click()
        page.wait_for_selector("form.sg-form")
        if max_points is not None:
            page.fill("#max_points", max_points)
        for select, wanted in (("#grading_category", category), ("#grading_period", period)):
            if wanted:
                option = page.locator(f"{select} option", has_text=wanted).first
                page.select_option(select, value=option.get_attribute("value"))
        if screenshot:
            screenshot(page, "settings")
        page.locator("form.sg-form button[type=submit]").click()
        page.wait_for_selector("p.sg-flash")
        return nav.value


@pytest.fixture
def ui():
    return UI
