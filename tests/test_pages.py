"""What every HTML page shares: unknown page URLs answer an HTML 404 and stay out of the
partner journal, unknown API URLs stay JSON and journaled; times are shown with their zone."""

from __future__ import annotations

import re
from datetime import datetime

import pytest

from simulator import pages
from simulator.pages import JOIN_EVERY, is_page_path, join_in_parts, when


@pytest.mark.parametrize("path, accept", [
    ("/schoology/nope", None), ("/schoology/sections/x/y/z", "*/*"), ("/inspector/1/2", None),
    ("/portal/apps", None), ("/favicon.ico", "image/avif,image/webp,*/*"),
    ("/robots.txt", None), ("/gradbook", "text/html,application/xhtml+xml"),
])
def test_mistyped_page_urls_are_html_404s_and_not_partner_traffic(client, sim, path, accept):
    resp = client.get(path, headers={"Accept": accept} if accept else {})
    assert resp.status_code == 404 and resp.mimetype == "text/html"
    text = resp.get_data(as_text=True)
    assert "<h1>Page not found</h1>" in text and "Schoology home" in text
    assert sim.journal.query()[0] == []


@pytest.mark.parametrize("path, accept", [
    ("/v2.1/studnets", None), ("/v3.0/nope", "text/html"), ("/oauth/tokenz", "text/html"),
    ("/nope", None), ("/nope", "application/json"),
])
def test_unknown_api_urls_stay_json_404s_in_the_journal(client, sim, path, accept):
    resp = client.get(path, headers={"Accept": accept} if accept else {})
    assert resp.status_code == 404 and resp.get_json() == {"message": f"Not found: no endpoint at {path}"}
    (entry,) = sim.journal.query()[0]
    assert entry["path"] == path and entry["status"] == 404


def test_page_not_found_escapes_the_path(client):
    text = client.get("/schoology/<script>x</script>").get_data(as_text=True)
    assert "<script>x" not in text and "&lt;script&gt;x&lt;/script&gt;" in text


@pytest.mark.parametrize("value, shown", [
    ("2026-12-07T01:38:20.123Z", "Mon 7 Dec 2026, 01:38:20 UTC"),
    ("2026-12-07T03:38:20+02:00", "Mon 7 Dec 2026, 01:38:20 UTC"),
    ("2026-12-15", "Tue 15 Dec 2026"),
    ("2026-12-15T14:30", "Tue 15 Dec 2026, 14:30 (school time)"),
    ("2026-02-30", "2026-02-30"), ("soon", "soon"), ("", ""), (None, "—"), (5, "5"),
])
def test_times_are_shown_for_people_with_their_zone(value, shown):
    assert when(value) == shown


class _Python310Datetime(datetime):
    """``datetime`` with Python 3.10's ``fromisoformat``: a fraction of 3 or 6 digits only,
    an offset only with a colon (3.11 reads any ISO 8601 form)."""

    @classmethod
    def fromisoformat(cls, text):
        if re.search(r"\.(?!\d{3}(?!\d)|\d{6}(?!\d))\d+|[+-]\d{4}$", text):
            raise ValueError(f"Invalid isoformat string: {text!r}")
        return super().fromisoformat(text)


@pytest.mark.parametrize("value, shown", [
    ("2026-12-07T01:38:20.5Z", "Mon 7 Dec 2026, 01:38:20 UTC"),
    ("2026-12-07T03:38:20+0200", "Mon 7 Dec 2026, 01:38:20 UTC"),
    ("2026-12-07T01:38:20.1234567-01:30", "Mon 7 Dec 2026, 03:08:20 UTC"),
    ("2026-12-07T01:38:20.123Z", "Mon 7 Dec 2026, 01:38:20 UTC"),
    ("2026-12-07T25:38Z", "2026-12-07T25:38Z"), ("2026-12-07T01:38+24:00", "2026-12-07T01:38+24:00"),
])
def test_times_show_alike_on_python_3_10(monkeypatch, value, shown):
    """pyproject says Python 3.10 or newer: a time with a one-digit fraction (a snapshot's or
    a link's due date written by another tool) or a `+0200` offset showed raw there, since
    3.10's fromisoformat refuses both while the page's pattern accepts them."""
    monkeypatch.setattr(pages, "datetime", _Python310Datetime)
    assert when(value) == shown


def test_is_page_path_never_claims_api_paths():
    for path in ("/v1/grade", "/v2.1/me", "/me", "/oauth/tokens", "/_sim/health"):
        assert not is_page_path(path, "text/html")


@pytest.mark.parametrize("path", [
    "/schoology_pick.html/teachers/1", "/schoologyx", "/portal.json/me", "/inspectors/1",
    "/login2/x", "/users/1", "/ux/1",
])
def test_a_path_only_sharing_a_pages_first_letters_is_not_a_page(path):
    """A JSON client's typo gets Clever's JSON 404, not Schoology's HTML one (a fuzzer found
    ``/schoology_pick.html/teachers/1`` answered with HTML)."""
    assert not is_page_path(path, "application/json")


@pytest.mark.parametrize("path", ["/schoology", "/schoology/nope", "/portal/x", "/inspector",
                                  "/u/1/schoology/x", "/u/teachers/1", "/login/x",
                                  "/favicon.ico"])
def test_a_mistyped_page_below_a_page_prefix_is_a_page(path):
    assert is_page_path(path, "application/json")


@pytest.mark.parametrize("count", [0, 1, JOIN_EVERY - 1, JOIN_EVERY, JOIN_EVERY + 1, 3 * JOIN_EVERY + 7])
def test_a_page_joined_in_parts_is_the_same_text(count):
    fragments = [f"<td>{i}—é</td>" for i in range(count)]
    assert join_in_parts(iter(fragments)) == "".join(fragments)


def test_pages_are_rendered_with_the_parts_join(app):
    assert app.jinja_env.concat is join_in_parts
