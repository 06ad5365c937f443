"""The landing page at ``/`` (HTML for a browser, JSON for a script) and the docs link in
every page's navigation."""

from __future__ import annotations

import html
import re

import pytest

from conftest import log_in

DEMO_CLIENT = "b4fd885bda79813831c3"
DEMO_SECRET = "da526e74a665e82ccb6ae91b4bf56e28e5cea3bc"
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
JSON = {"Accept": "application/json"}
HOSTS = ["https://clever.com", "https://api.clever.com", "https://grades-api.beta.clever.com"]
HOSTILE = "<script>alert(1)</script>"


def test_browser_gets_a_page_linking_every_tool(client):
    resp = client.get("/", headers=BROWSER)
    assert resp.status_code == 200 and resp.mimetype == "text/html"
    page = resp.get_data(as_text=True)
    for path in ("/schoology", "/portal", "/schoology/gradebook", "/inspector", "/_sim/docs",
                 "/_sim/openapi.json"):
        assert f'href="http://localhost{path}"' in page, path
    for host in HOSTS:  # each Clever base URL, paired with this server's address
        assert re.search(rf"<td><code>{re.escape(host)}</code></td><td><code>http://localhost</code></td>",
                         page), host
    assert DEMO_CLIENT in page and DEMO_SECRET in page


def test_json_when_asked_has_the_same_facts(client):
    resp = client.get("/", headers=JSON)
    assert resp.status_code == 200 and resp.mimetype == "application/json"
    facts = resp.get_json()
    assert facts["url"] == "http://localhost"
    assert facts["clever_base_urls"] == {host: "http://localhost" for host in HOSTS}
    assert facts["pages"] == {
        "schoology": "http://localhost/schoology", "portal": "http://localhost/portal",
        "gradebooks": "http://localhost/schoology/gradebook", "inspector": "http://localhost/inspector",
        "api_docs": "http://localhost/_sim/docs", "openapi": "http://localhost/_sim/openapi.json",
        "health": "http://localhost/_sim/health"}
    demo = next(a for a in facts["apps"] if a["client_id"] == DEMO_CLIENT)
    assert demo["client_secret"] == DEMO_SECRET
    assert demo["redirect_uris"][0] == "http://127.0.0.1:5001/clever/callback"
    assert facts["apps_total"] == len(facts["apps"]) == 1
    # every page the JSON names is really there
    for url in facts["pages"].values():
        assert client.get(url.removeprefix("http://localhost")).status_code == 200, url


@pytest.mark.parametrize("accept,mimetype", [
    (None, "text/html"),                                        # no header: a person with curl
    ("*/*", "text/html"),
    (BROWSER["Accept"], "text/html"),
    ("application/json", "application/json"),
    ("application/json, text/html;q=0.9", "application/json"),
    ("text/html, application/json;q=0.9", "text/html"),
    ("application/*", "application/json"),
])
def test_content_type_follows_the_accept_header(client, accept, mimetype):
    resp = client.get("/", headers={"Accept": accept} if accept else {})
    assert resp.status_code == 200 and resp.mimetype == mimetype
    assert "Accept" in resp.vary  # caches keep the two representations apart


def test_app_names_are_escaped_in_the_page_and_kept_in_the_json(client):
    created = client.post("/_sim/apps", json={"name": HOSTILE, "redirect_uris": [
        "http://localhost:9000/cb?x=<b>"], "assignments_url": "http://localhost:9000/a?\"q\"=1"})
    assert created.status_code == 201
    page = client.get("/", headers=BROWSER).get_data(as_text=True)
    assert HOSTILE not in page and "<b>" not in page
    assert html.escape(HOSTILE) in page
    apps = client.get("/", headers=JSON).get_json()["apps"]
    assert [a["name"] for a in apps] == ["Demo Partner (reference)", HOSTILE]
    assert apps[1]["redirect_uris"] == ["http://localhost:9000/cb?x=<b>"]


def test_no_app_registered_says_how_to_register_one(client):
    assert client.delete(f"/_sim/apps/{DEMO_CLIENT}").status_code == 200
    assert client.get("/", headers=JSON).get_json()["apps"] == []
    assert "No app is registered" in client.get("/").get_data(as_text=True)


def test_under_a_tenant_every_url_has_its_prefix(client):
    assert client.post("/_sim/tenants", json={"name": "job-7"}).status_code == 201
    facts = client.get("/t/job-7/", headers=JSON).get_json()
    assert facts["url"] == "http://localhost/t/job-7"
    assert set(facts["clever_base_urls"].values()) == {"http://localhost/t/job-7"}
    assert all(u.startswith("http://localhost/t/job-7/") for u in facts["pages"].values())
    page = client.get("/t/job-7/").get_data(as_text=True)
    assert 'href="/t/job-7/_sim/docs"' in page  # the nav too


def test_landing_is_not_journaled_as_a_partner_request(client):
    client.get("/")
    assert client.get("/_sim/journal").get_json()["data"] == []


# --- every page's navigation links the API docs -----------------------------------------

# Page blueprints and the routes that are not HTML pages (each with why).
PAGE_BLUEPRINTS = {"home", "schoology", "gradebook", "inspector", "api_docs"}
# pages whose address names what they show in its query (without it: a redirect)
PAGE_QUERIES = {"schoology.settings_page": "?assignment_id=a1&name=Quiz"}
NOT_PAGES = {
    "gradebook.export_csv": "a CSV download",
    "gradebook.export_json": "a JSON download",
    "gradebook.events": "a server-sent events stream",
    "api_docs.openapi_json": "the JSON document",
    # a form's address opened as a page: 303 to the page holding the form (test_audit.py)
    "schoology.persona_form_page": "a redirect to the Schoology home page",
    "schoology.material_form_page": "a redirect to the assignment's page",
    "schoology.portal_launch_page": "a redirect to the portal",
}


def _page_urls(app, client) -> list[str]:
    """One URL per GET page route, with real ids (a linked assignment, a grade, a journal
    entry), plus a not-found variant of each route with an id (their own error pages)."""
    sim = app.extensions["clever_sim"]
    teacher = client.get("/_sim/personas?role=teacher").get_json()["data"][0]
    section = teacher["sections"][0]
    student = next(s for s in client.get("/_sim/personas?role=student").get_json()["data"]
                   if section in s["sections"])
    link = client.post("/_sim/links", json={"section_id": section, "client_id": DEMO_CLIENT,
                                            "assignment_id": "a1"}).get_json()
    token = client.post("/_sim/tokens", json={"client_id": DEMO_CLIENT, "user_id": student["id"]})
    grade = client.post("/v1/grade", json={"assignmentID": "a1", "percentage": 0.5}, headers={
        "Authorization": f"Bearer {token.get_json()['access_token']}"}).get_json()["data"]
    entry = client.get("/_sim/journal?limit=1").get_json()["data"][0]["id"]
    values = {"section_id": section, "link_id": link["id"], "grade_id": grade["id"],
              "client_id": "nobody-registered-this", "entry_id": str(entry), "user_id": student["id"]}
    log_in(client, teacher["id"])
    urls = []
    for rule in app.url_map.iter_rules():
        blueprint = rule.endpoint.split(".")[0]
        if blueprint not in PAGE_BLUEPRINTS or rule.endpoint in NOT_PAGES or "GET" not in rule.methods:
            continue
        path = rule.rule
        names = re.findall(r"<(?:\w+:)?(\w+)>", path)
        query = PAGE_QUERIES.get(rule.endpoint, "")
        urls.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], path) + query)
        if names:
            urls.append(re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "999999", path) + query)
    assert sim.store.count("grades") == 1
    return urls


def test_every_page_navigation_links_the_api_docs(app, client):
    urls = _page_urls(app, client)
    assert len(urls) >= 15  # the tour reached every kind of page
    for url in urls:
        resp = client.get(url, headers=BROWSER)
        assert resp.mimetype == "text/html", (url, resp.status_code, resp.mimetype)
        page = resp.get_data(as_text=True)
        navs = re.findall(r"<nav\b.*?</nav>", page, flags=re.S)
        assert navs, f"{url} ({resp.status_code}) has no navigation"
        if url == "/_sim/docs":  # the docs page's own nav is its table of contents
            assert any('href="/_sim/openapi.json"' in nav for nav in navs)
            continue
        assert any('href="/_sim/docs"' in nav for nav in navs), \
            f"{url} ({resp.status_code}): navigation does not link the API docs"


def test_serve_banner_names_the_start_page():
    import httpx

    from serverproc import ServerProcess

    server = ServerProcess(["--db", ":memory:"])
    try:
        assert f"Start page (links, base URLs, credentials): {server.url}/\n" in server.output
        resp = httpx.get(server.url + "/", headers=BROWSER, timeout=5, trust_env=False)
        assert resp.status_code == 200 and "text/html" in resp.headers["Content-Type"]
    finally:
        server.stop()
