"""OAuth as DESIGN §3.1: authorize (login page, exact redirect_uri), tokens, tokeninfo."""

from __future__ import annotations

import base64
import re
from urllib.parse import parse_qs, urlsplit

import pytest

from conftest import assert_error, assert_oauth_error, bearer, il_token

PRIMARY = "http://127.0.0.1:5001/clever/callback"


def basic(client_id: str, secret: str) -> dict:
    raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def login_as(client, user_id: str) -> None:
    """Log a persona into the fake Clever through the login form (with a CSRF token)."""
    with client.session_transaction() as sess:
        sess["csrf"] = "t" * 32
    resp = client.post("/oauth/login", data={"csrf": "t" * 32, "user_id": user_id})
    assert resp.status_code == 303


def authorize(client, demo_app, **params):
    query = {"response_type": "code", "client_id": demo_app["client_id"], "redirect_uri": PRIMARY,
             **params}
    return client.get("/oauth/authorize", query_string={k: v for k, v in query.items() if v is not None})


def code_for(client, demo_app, user_id, **params) -> tuple[str, dict]:
    login_as(client, user_id)
    resp = authorize(client, demo_app, **params)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    location = resp.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    return query["code"][0], query


# --- authorize -----------------------------------------------------------------------

def test_authorize_without_login_shows_persona_picker(client, demo_app, roster):
    resp = authorize(client, demo_app, state="assignment:a1")
    assert resp.status_code == 200
    page = resp.get_data(as_text=True)
    assert "Log in to Demo Partner (reference)" in page
    for district in roster["districts"]:
        assert district["name"] in page


def test_persona_picker_walks_district_school_user(client, demo_app, roster, student):
    school = student["roles"]["student"]["school"]
    resp = authorize(client, demo_app, sim_district=student["district"], sim_school=school)
    page = resp.get_data(as_text=True)
    assert f'value="{student["id"]}"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    nxt = re.search(r'name="next" value="([^"]+)"', page).group(1)
    assert "sim_school" not in nxt
    import html
    resp = client.post("/oauth/login", data={"csrf": csrf, "user_id": student["id"],
                                             "next": html.unescape(nxt)})
    assert resp.status_code == 303
    resp = client.get(resp.headers["Location"])
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(PRIMARY + "?code=")


def test_authorize_redirects_with_code_scopes_and_state(client, demo_app, student):
    code, query = code_for(client, demo_app, student["id"], state="assignment:a100001")
    assert re.fullmatch(r"[0-9a-f]{20}", code)
    assert query["state"] == ["assignment:a100001"]
    assert "read:user_id" in query["scopes"][0].split(" ")


def test_authorize_keeps_state_that_needs_percent_encoding(client, demo_app, student):
    state = "assignment:unit 3/quiz#2&b=ü"
    _, query = code_for(client, demo_app, student["id"], state=state)
    assert query["state"] == [state]


def test_authorize_without_state_has_no_state_param(client, demo_app, student):
    _, query = code_for(client, demo_app, student["id"])
    assert "state" not in query


def test_authorize_without_redirect_uri_uses_primary(client, demo_app, student):
    login_as(client, student["id"])
    resp = authorize(client, demo_app, redirect_uri=None)
    assert resp.headers["Location"].startswith(PRIMARY + "?")


def test_authorize_accepts_secondary_registered_redirect_uri(client, demo_app, student):
    login_as(client, student["id"])
    resp = authorize(client, demo_app, redirect_uri="http://localhost:5001/clever/callback")
    assert resp.headers["Location"].startswith("http://localhost:5001/clever/callback?code=")


@pytest.mark.parametrize("redirect_uri", [
    "http://127.0.0.1:5001/clever/callback/",      # trailing slash
    "https://127.0.0.1:5001/clever/callback",      # scheme
    "http://127.0.0.1:5002/clever/callback",       # port
    "http://127.0.0.1:5001/clever/CALLBACK",       # case
    "http://evil.example/clever/callback",
    "javascript:alert(1)",
])
def test_authorize_redirect_uri_mismatch_is_error_page_never_redirect(client, demo_app, redirect_uri):
    resp = authorize(client, demo_app, redirect_uri=redirect_uri)
    assert resp.status_code == 400
    assert "Location" not in resp.headers
    page = resp.get_data(as_text=True)
    assert "redirect_uri does not match" in page
    assert PRIMARY in page  # tells the developer what is registered


@pytest.mark.parametrize("client_id, title", [(None, "Missing client_id"),
                                              ("nope", "Unknown client_id"),
                                              ("<script>x</script>", "Unknown client_id")])
def test_authorize_bad_client_is_error_page(client, demo_app, client_id, title):
    resp = client.get("/oauth/authorize", query_string={k: v for k, v in
                                                        {"client_id": client_id, "redirect_uri": PRIMARY}.items() if v})
    assert resp.status_code == 400
    page = resp.get_data(as_text=True)
    assert title in page and "Location" not in resp.headers
    assert "<script>x</script>" not in page  # escaped


def test_authorize_wrong_response_type_redirects_with_error(client, demo_app):
    resp = authorize(client, demo_app, response_type="token", state="s1")
    assert resp.status_code == 302
    query = parse_qs(urlsplit(resp.headers["Location"]).query)
    assert query["error"] == ["unsupported_response_type"] and query["state"] == ["s1"]


def test_login_form_rejects_missing_csrf(client, student):
    resp = client.post("/oauth/login", data={"user_id": student["id"]})
    assert_error(resp, 400, "Form expired or forged (CSRF check failed)", field="csrf")


# --- token exchange ------------------------------------------------------------------

def test_token_exchange_with_basic_auth_and_json_body(client, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    resp = client.post("/oauth/tokens", headers=basic(demo_app["client_id"], demo_app["client_secret"]),
                       json={"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"access_token", "token_type"} and body["token_type"] == "bearer"
    assert body["access_token"].startswith("ilc_")
    assert resp.headers["Cache-Control"] == "no-store"
    me = client.get("/v3.0/me", headers=bearer(body["access_token"]))
    assert me.status_code in (200, 404)  # data API may be served by its own module


def test_token_exchange_with_form_body_credentials(client, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    resp = client.post("/oauth/tokens", data={
        "code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY,
        "client_id": demo_app["client_id"], "client_secret": demo_app["client_secret"]})
    assert resp.status_code == 200, resp.get_json()


def _exchange(client, demo_app, the_code, **over):
    body = {"code": the_code, "grant_type": "authorization_code", "redirect_uri": PRIMARY, **over}
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/oauth/tokens", headers=basic(demo_app["client_id"], demo_app["client_secret"]),
                       data=body)


def test_code_is_single_use(client, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    assert _exchange(client, demo_app, code).status_code == 200
    assert_oauth_error(_exchange(client, demo_app, code), 400, "invalid_grant", "already used")


def test_code_expires_after_sixty_seconds(client, sim, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    sim.clock.advance(61)
    assert_oauth_error(_exchange(client, demo_app, code), 400, "invalid_grant", "expired")


def test_code_still_valid_at_fifty_nine_seconds(client, sim, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    sim.clock.advance(59)
    assert _exchange(client, demo_app, code).status_code == 200


@pytest.mark.parametrize("over, status, error, words", [
    ({"grant_type": None}, 400, "invalid_request", "grant_type is missing"),
    ({"grant_type": "client_credentials"}, 400, "unsupported_grant_type", "authorization_code"),
    ({"grant_type": "password"}, 400, "unsupported_grant_type", "not supported"),
    ({"code": None}, 400, "invalid_request", "code is missing"),
    ({"code": "0" * 20}, 400, "invalid_grant", "Unknown authorization code"),
    ({"redirect_uri": "http://127.0.0.1:5001/other"}, 400, "invalid_grant", "does not match"),
    ({"redirect_uri": None}, 400, "invalid_request", "redirect_uri is missing"),
])
def test_token_exchange_errors(client, demo_app, student, over, status, error, words):
    code, _ = code_for(client, demo_app, student["id"])
    assert_oauth_error(_exchange(client, demo_app, code, **over), status, error, words)


@pytest.mark.parametrize("headers, data, words", [
    ({}, {}, "No client credentials"),
    (basic("nope", "x"), {}, "Unknown client_id"),
    ("WRONG_SECRET", {}, "Wrong client_secret"),
    ({"Authorization": "Basic !!!notbase64"}, {}, "not valid base64"),
    ({"Authorization": "Basic " + base64.b64encode(b"nocolon").decode()}, {}, "client_id:client_secret"),
    ({}, {"client_id": "nope", "client_secret": "x"}, "Unknown client_id"),
])
def test_token_exchange_bad_client_is_401_invalid_client(client, demo_app, headers, data, words):
    if headers == "WRONG_SECRET":
        headers = basic(demo_app["client_id"], "0" * 40)
    resp = client.post("/oauth/tokens", headers=headers,
                       data={"code": "x", "grant_type": "authorization_code", **data})
    assert_oauth_error(resp, 401, "invalid_client", words)
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_code_of_one_app_cannot_be_redeemed_by_another(client, sim, demo_app, student):
    other = sim.register_app({"name": "Other", "redirect_uris": [PRIMARY]})
    code, _ = code_for(client, demo_app, student["id"])
    resp = client.post("/oauth/tokens", headers=basic(other["client_id"], other["client_secret"]),
                       data={"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY})
    assert_oauth_error(resp, 400, "invalid_grant", "not issued to this client")


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"),
    (b"[1,2]", "application/json"),
    (b"\xff\xfe", "application/json"),
])
def test_token_exchange_malformed_body_is_400(client, demo_app, body, content_type):
    resp = client.post("/oauth/tokens", data=body, content_type=content_type,
                       headers=basic(demo_app["client_id"], demo_app["client_secret"]))
    assert resp.status_code == 400
    assert "message" in resp.get_json()


# --- district-app tokens and tokeninfo -------------------------------------------------

def test_district_token_listing_matches_recorded_shape(client, demo_app, roster):
    resp = client.get("/oauth/tokens?owner_type=district",
                      headers=basic(demo_app["client_id"], demo_app["client_secret"]))
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["links"] == [{"rel": "self", "uri": "/oauth/tokens?owner_type=district"}]
    assert {t["owner"]["id"] for t in body["data"]} == {d["id"] for d in roster["districts"]}
    for t in body["data"]:
        assert set(t) == {"id", "created", "owner", "access_token", "scopes"}
        assert re.fullmatch(r"[0-9a-f]{40}", t["access_token"])
        assert re.fullmatch(r"[0-9a-f]{24}", t["id"])
        assert t["owner"]["type"] == "district"


def test_district_token_listing_filters_by_district(client, demo_app, district_id):
    resp = client.get(f"/oauth/tokens?owner_type=district&district={district_id}",
                      headers=basic(demo_app["client_id"], demo_app["client_secret"]))
    assert [t["owner"]["id"] for t in resp.get_json()["data"]] == [district_id]


@pytest.mark.parametrize("query, headers, status, error", [
    ("owner_type=district", {}, 401, "invalid_client"),
    ("owner_type=user", "GOOD", 400, "invalid_request"),
    ("", "GOOD", 400, "invalid_request"),
])
def test_district_token_listing_errors(client, demo_app, query, headers, status, error):
    if headers == "GOOD":
        headers = basic(demo_app["client_id"], demo_app["client_secret"])
    assert_oauth_error(client.get(f"/oauth/tokens?{query}", headers=headers), status, error)


def test_tokeninfo_names_client_and_scopes(client, sim, demo_app, student):
    resp = client.get("/oauth/tokeninfo", headers=bearer(il_token(sim, student["id"])))
    assert resp.get_json() == {"client_id": demo_app["client_id"], "scopes": demo_app["scopes"]}


@pytest.mark.parametrize("headers, status, message", [
    ({}, 401, "No authorization provided"),
    ({"Authorization": "Bearer ilc_nope"}, 401, "Could not authorize token"),
    ({"Authorization": "Token abc"}, 401, "No authorization provided"),
])
def test_tokeninfo_errors(client, headers, status, message):
    assert_error(client.get("/oauth/tokeninfo", headers=headers), status, message, field="Authorization")


def test_oauth_requests_are_journaled_with_findings(client, sim, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    _exchange(client, demo_app, code)
    _exchange(client, demo_app, code)
    entries, _ = sim.journal.query(path="/oauth/tokens")
    assert entries[0]["status"] == 400
    assert any("already used" in f for f in entries[0]["findings"])
    assert entries[0]["client_id"] == demo_app["client_id"]
