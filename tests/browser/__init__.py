"""Browser tests (Playwright driving the system Chromium).

``expect`` is Playwright's, or None when Playwright is missing: the ``browser`` fixture then
skips the tests (or, under CLEVER_SIM_REQUIRE_BROWSER=1, fails them).
"""

try:
    from playwright.sync_api import expect
except ImportError:
    expect = None
