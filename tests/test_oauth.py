"""OAuth as Clever documents it: authorize (login page, exact redirect_uri), tokens, tokeninfo."""

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
    query = {"response_type": "code", "client_id": demo_app.client_id, "redirect_uri": PRIMARY,
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
    resp = client.post("/oauth/tokens", headers=basic(demo_app.client_id, demo_app.client_secret),
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
        "client_id": demo_app.client_id, "client_secret": demo_app.client_secret})
    assert resp.status_code == 200, resp.get_json()



@pytest.mark.parametrize("body, problem", [
    ([], "is an array"), ("code", "is a string"), (7, "is a number"), (True, "is true/false")])
def test_token_exchange_names_a_json_body_that_is_not_an_object_in_json_words(
        client, demo_app, body, problem):
    resp = client.post("/oauth/tokens", headers=basic(demo_app.client_id, demo_app.client_secret),
                       json=body)
    assert_error(resp, 400, "Body must be a JSON object", field="(body)", problem=problem)

def _exchange(client, demo_app, the_code, **over):
    body = {"code": the_code, "grant_type": "authorization_code", "redirect_uri": PRIMARY, **over}
    body = {k: v for k, v in body.items() if v is not None}
    return client.post("/oauth/tokens", headers=basic(demo_app.client_id, demo_app.client_secret),
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
        headers = basic(demo_app.client_id, "0" * 40)
    resp = client.post("/oauth/tokens", headers=headers,
                       data={"code": "x", "grant_type": "authorization_code", **data})
    assert_oauth_error(resp, 401, "invalid_client", words)
    assert resp.headers["WWW-Authenticate"].startswith("Basic")


def test_code_of_one_app_cannot_be_redeemed_by_another(client, sim, demo_app, student):
    other = sim.clever.register_app({"name": "Other", "redirect_uris": [PRIMARY]})
    code, _ = code_for(client, demo_app, student["id"])
    resp = client.post("/oauth/tokens", headers=basic(other.client_id, other.client_secret),
                       data={"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY})
    assert_oauth_error(resp, 400, "invalid_grant", "not issued to this client")


@pytest.mark.parametrize("body, content_type", [
    (b"{not json", "application/json"),
    (b"[1,2]", "application/json"),
    (b"\xff\xfe", "application/json"),
])
def test_token_exchange_malformed_body_is_400(client, demo_app, body, content_type):
    resp = client.post("/oauth/tokens", data=body, content_type=content_type,
                       headers=basic(demo_app.client_id, demo_app.client_secret))
    assert resp.status_code == 400
    assert "message" in resp.get_json()


# --- district-app tokens and tokeninfo -------------------------------------------------

def test_district_token_listing_matches_recorded_shape(client, demo_app, roster):
    resp = client.get("/oauth/tokens?owner_type=district",
                      headers=basic(demo_app.client_id, demo_app.client_secret))
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
                      headers=basic(demo_app.client_id, demo_app.client_secret))
    assert [t["owner"]["id"] for t in resp.get_json()["data"]] == [district_id]


@pytest.mark.parametrize("query, headers, status, error", [
    ("owner_type=district", {}, 401, "invalid_client"),
    ("owner_type=user", "GOOD", 400, "invalid_request"),
    ("", "GOOD", 400, "invalid_request"),
])
def test_district_token_listing_errors(client, demo_app, query, headers, status, error):
    if headers == "GOOD":
        headers = basic(demo_app.client_id, demo_app.client_secret)
    assert_oauth_error(client.get(f"/oauth/tokens?{query}", headers=headers), status, error)


def test_tokeninfo_names_client_and_scopes(client, sim, demo_app, student):
    resp = client.get("/oauth/tokeninfo", headers=bearer(il_token(sim, student["id"])))
    assert resp.get_json() == {"client_id": demo_app.client_id, "scopes": demo_app.scopes}


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
    assert entries[0]["client_id"] == demo_app.client_id


# --- rules pinned at their edges (each case kills a mutant that survived before) ---------

from simulator.clever import oauth  # noqa: E402  (domain functions, tested without HTTP)
from simulator.errors import InvalidClient, InvalidGrant  # noqa: E402


@pytest.mark.parametrize("url, params, expected", [
    ("http://h/cb", {"code": "c1"}, "http://h/cb?code=c1"),
    # the registered URI's own query is kept byte for byte (RFC 6749 §3.1.2), then ours
    ("http://h/cb?tenant=a+b&flag", {"code": "c1"}, "http://h/cb?tenant=a+b&flag&code=c1"),
    ("http://h/cb?x=%2F", {"code": "c1", "state": "s"}, "http://h/cb?x=%2F&code=c1&state=s"),
    # spaces are %20 (not +); ':' stays literal; '/', '#', '&', '=' and non-ASCII are encoded
    ("http://h/cb", {"scopes": "read:user_id read:sis"}, "http://h/cb?scopes=read:user_id%20read:sis"),
    ("http://h/cb", {"state": "a/b#c&d=e ü"}, "http://h/cb?state=a%2Fb%23c%26d%3De%20%C3%BC"),
    ("https://h:8443/p/cb", {"error": "x"}, "https://h:8443/p/cb?error=x"),
])
def test_redirect_keeps_the_registered_query_and_percent_encodes_ours(url, params, expected):
    assert oauth.with_query(url, params) == expected


def _authorize_request(app, state):
    return oauth.AuthorizeRequest(app, "http://h/cb?tenant=t1", state, None)


@pytest.mark.parametrize("state, expected", [
    (None, "http://h/cb?tenant=t1&error=unsupported_response_type"
           "&error_description=response_type%20must%20be%20code"),
    ("s 1", "http://h/cb?tenant=t1&error=unsupported_response_type"
            "&error_description=response_type%20must%20be%20code&state=s%201"),
    ("", "http://h/cb?tenant=t1&error=unsupported_response_type"
         "&error_description=response_type%20must%20be%20code&state="),
])
def test_unsupported_response_type_redirect_carries_state_only_when_sent(demo_app, state, expected):
    assert oauth.authorize_error_redirect(_authorize_request(demo_app, state), "token") == expected
    assert oauth.authorize_error_redirect(_authorize_request(demo_app, state), None) == expected


def test_response_type_code_is_not_an_error(demo_app):
    assert oauth.authorize_error_redirect(_authorize_request(demo_app, "s"), "code") is None


def test_redirect_with_code_lists_scopes_space_separated_and_state_last(demo_app):
    url = oauth.redirect_with_code(_authorize_request(demo_app, "assignment:a1"), "c0de")
    scopes = "%20".join(demo_app.scopes)
    assert url == f"http://h/cb?tenant=t1&code=c0de&scopes={scopes}&state=assignment:a1"


def test_login_redirect_to_a_uri_with_a_query_keeps_it_and_the_code_redeems(client, sim, student):
    registered = "http://127.0.0.1:5001/cb?tenant=a+b&flag"
    app = sim.clever.register_app({"name": "Query", "redirect_uris": [registered]})
    login_as(client, student["id"])
    resp = authorize(client, app, redirect_uri=registered, state="s1")
    assert resp.status_code == 302
    location = resp.headers["Location"]
    assert location.startswith(registered + "&code=") and location.endswith("&state=s1")
    code = parse_qs(urlsplit(location).query)["code"][0]
    resp = client.post("/oauth/tokens", headers=basic(app.client_id, app.client_secret),
                       data={"code": code, "grant_type": "authorization_code",
                             "redirect_uri": registered})
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("header, expected", [
    (None, None),
    ("", None),
    ("Bearer abc", None),
    ("Basic " + base64.b64encode(b"id:secret").decode(), ("id", "secret")),
    ("basic " + base64.b64encode(b"id:secret").decode(), ("id", "secret")),   # scheme is case-insensitive
    ("BASIC  " + base64.b64encode(b"id:secret").decode() + " ", ("id", "secret")),
    ("Basic " + base64.b64encode(b"id:sec:ret").decode(), ("id", "sec:ret")),  # ':' in the secret
    ("Basic " + base64.b64encode(b"id:").decode(), ("id", "")),
    ("Basic " + base64.b64encode("id:sécret".encode()).decode(), ("id", "sécret")),
])
def test_basic_credentials_split_at_the_first_colon(header, expected):
    assert oauth.parse_basic(header) == expected


@pytest.mark.parametrize("header, message", [
    ("Basic !!!", "Authorization: Basic credentials are not valid base64 of client_id:client_secret"),
    ("Basic " + base64.b64encode(b"\xff\xfe:x").decode(),
     "Authorization: Basic credentials are not valid base64 of client_id:client_secret"),
    ("Basic " + base64.b64encode(b"nocolon").decode(),
     "Authorization: Basic credentials must be client_id:client_secret"),
])
def test_bad_basic_credentials_say_what_is_wrong(header, message):
    with pytest.raises(InvalidClient) as caught:
        oauth.parse_basic(header)
    assert caught.value.message == message


def test_client_secret_with_a_colon_authenticates_over_basic(client, sim, student):
    app = sim.clever.register_app({"name": "Colon", "redirect_uris": [PRIMARY], "client_secret": "s3:cr:et"})
    code, _ = code_for(client, app, student["id"])
    resp = client.post("/oauth/tokens", headers=basic(app.client_id, "s3:cr:et"),
                       data={"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY})
    assert resp.status_code == 200, resp.get_json()


@pytest.mark.parametrize("basic_creds, body, message", [
    (("ID", "SECRET"), {"client_id": "other"},
     "client_id in the body differs from the one in the Basic header"),
    (None, {}, "No client credentials: send HTTP Basic client_id:client_secret "
               "or client_id and client_secret in the body"),
    (None, {"client_id": "ID"}, "client_id and client_secret must be strings"),
    (None, {"client_secret": "SECRET"}, "client_id and client_secret must be strings"),
    (None, {"client_id": ["ID"], "client_secret": "SECRET"}, "client_id and client_secret must be strings"),
    (("nope", "x"), {}, "Unknown client_id 'nope'"),
    (("ID", "wrong"), {}, "Wrong client_secret for client_id 'ID'"),
    (("ID", "SECRET" + "x"), {}, "Wrong client_secret for client_id 'ID'"),
    (None, {"client_id": "ID", "client_secret": "SECRE"}, "Wrong client_secret for client_id 'ID'"),
])
def test_client_authentication_failures_name_the_problem(sim, demo_app, basic_creds, body, message):
    sub = {"ID": demo_app.client_id, "SECRET": demo_app.client_secret}

    def fill(text):
        for k, v in sub.items():
            text = text.replace(k, v) if isinstance(text, str) else text
        return text
    creds = tuple(fill(x) for x in basic_creds) if basic_creds else None
    body = {k: (fill(v) if isinstance(v, str) else v) for k, v in body.items()}
    with pytest.raises(InvalidClient) as caught:
        oauth.authenticate_client(sim, creds, body)
    assert caught.value.message == fill(message)


@pytest.mark.parametrize("creds, body", [
    ("basic", {}),
    ("basic", {"client_id": "ID"}),                     # the same id in both places is fine
    ("basic", {"client_id": "ID", "client_secret": "ignored"}),
    (None, {"client_id": "ID", "client_secret": "SECRET"}),
])
def test_client_authentication_accepts_basic_or_body(sim, demo_app, creds, body):
    body = {k: v.replace("ID", demo_app.client_id).replace("SECRET", demo_app.client_secret)
            for k, v in body.items()}
    basic_creds = (demo_app.client_id, demo_app.client_secret) if creds else None
    assert oauth.authenticate_client(sim, basic_creds, body).client_id == demo_app.client_id


def test_basic_with_a_different_body_client_id_is_refused_over_http(client, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    resp = client.post("/oauth/tokens", headers=basic(demo_app.client_id, demo_app.client_secret),
                       data={"code": code, "grant_type": "authorization_code", "redirect_uri": PRIMARY,
                             "client_id": "someone-else"})
    assert_oauth_error(resp, 401, "invalid_client",
                       "client_id in the body differs from the one in the Basic header")


@pytest.mark.parametrize("after, redeemable", [(0, True), (59.999, True), (60, True), (60.001, False)])
def test_code_lives_exactly_sixty_seconds(sim, demo_app, student, monkeypatch, after, redeemable):
    """Clever: codes expire after one minute; at 60.000 s the code still works, just after it not."""
    t0 = 1_800_000_000.0
    monkeypatch.setattr(sim.clock, "now", lambda: t0)
    code = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    monkeypatch.setattr(sim.clock, "now", lambda: t0 + after)
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": PRIMARY}
    if redeemable:
        assert oauth.exchange_code(sim, demo_app, body)["token_type"] == "bearer"
    else:
        with pytest.raises(InvalidGrant) as caught:
            oauth.exchange_code(sim, demo_app, body)
        assert caught.value.message == "Authorization code expired: codes live 60 seconds"


@pytest.mark.parametrize("body, error, message", [
    ({"grant_type": ""}, "InvalidRequest", "grant_type is missing: send grant_type=authorization_code"),
    ({"grant_type": "refresh_token"}, "UnsupportedGrantType",
     "grant_type 'refresh_token' is not supported; Clever's token endpoint takes authorization_code"),
    ({"grant_type": "authorization_code", "code": ""}, "InvalidRequest",
     "code is missing: send the code from the redirect's query string"),
    ({"grant_type": "authorization_code", "code": 7}, "InvalidRequest",
     "code is missing: send the code from the redirect's query string"),
    ({"grant_type": "authorization_code", "code": "CODE", "redirect_uri": 5}, "InvalidRequest",
     "redirect_uri must be a string"),
    ({"grant_type": "authorization_code", "code": "CODE"}, "InvalidRequest",
     "redirect_uri is missing: send the same redirect_uri as in the authorize request"),
    ({"grant_type": "authorization_code", "code": "CODE", "redirect_uri": PRIMARY + "/"}, "InvalidGrant",
     f"redirect_uri '{PRIMARY}/' does not match the one the code was issued for ('{PRIMARY}')"),
])
def test_code_exchange_failures_name_the_problem(sim, demo_app, student, body, error, message):
    code = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    body = {k: (code if v == "CODE" else v) for k, v in body.items()}
    with pytest.raises(Exception) as caught:
        oauth.exchange_code(sim, demo_app, body)
    assert type(caught.value).__name__ == error and caught.value.message == message


def test_code_used_twice_says_so(sim, demo_app, student):
    code = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    body = {"grant_type": "authorization_code", "code": code, "redirect_uri": PRIMARY}
    oauth.exchange_code(sim, demo_app, body)
    with pytest.raises(InvalidGrant) as caught:
        oauth.exchange_code(sim, demo_app, body)
    assert caught.value.message == "Authorization code already used: codes can be redeemed once"


def problems(error) -> list[dict]:
    return [p.as_dict() for p in error.errors]


def test_token_for_an_unknown_user_names_the_user(sim, demo_app):
    from simulator.errors import NotFound
    with pytest.raises(NotFound) as caught:
        oauth.mint_il_token(sim, demo_app, "nope")
    assert caught.value.message == "User 'nope' not found"
    assert problems(caught.value) == [{"field": "user_id", "problem": "no such user"}]


def test_code_for_an_unknown_user_names_the_user(sim, demo_app):
    from simulator.errors import NotFound
    with pytest.raises(NotFound) as caught:
        oauth.issue_code(sim, demo_app, "nope", PRIMARY)
    assert caught.value.message == "User 'nope' not found"
    assert problems(caught.value) == [{"field": "user_id", "problem": "no such user in the roster"}]


def test_code_for_a_user_of_an_unconnected_district_is_forbidden(sim, roster, foreign_student):
    from simulator.errors import Forbidden
    first = roster["districts"][0]["id"]
    app = sim.clever.register_app({"name": "One District", "redirect_uris": [PRIMARY], "districts": [first]})
    with pytest.raises(Forbidden) as caught:
        oauth.issue_code(sim, app, foreign_student["id"], PRIMARY)
    assert caught.value.message == f"One District is not connected to district {foreign_student['district']}"
    assert problems(caught.value) == [{"field": "user_id",
                                       "problem": "belongs to a district the app is not connected to",
                                       "hint": "add the district to the app's districts"}]


@pytest.mark.parametrize("params", [{}, {"owner_type": "user"}, {"owner_type": ""}])
def test_token_listing_needs_owner_type_district(sim, demo_app, params):
    from simulator.errors import InvalidRequest
    with pytest.raises(InvalidRequest) as caught:
        oauth.district_token_listing(sim, demo_app, params)
    assert caught.value.message == "owner_type must be district (the only owner type Clever lists)"


def test_token_listing_self_link_keeps_only_its_own_parameters(sim, demo_app, district_id):
    out = oauth.district_token_listing(sim, demo_app, {"owner_type": "district", "district": district_id,
                                                       "junk": "x"})
    assert out["links"] == [{"rel": "self",
                             "uri": f"/oauth/tokens?owner_type=district&district={district_id}"}]
    assert [t["owner"] for t in out["data"]] == [{"type": "district", "id": district_id}]


@pytest.mark.parametrize("params, title, detail", [
    ({}, "Missing client_id", "The authorize link has no client_id parameter."),
    ({"client_id": ""}, "Missing client_id", "The authorize link has no client_id parameter."),
    ({"client_id": "nope"}, "Unknown client_id", "No app is registered with client_id 'nope'."),
    ({"client_id": "ID", "redirect_uri": PRIMARY + "/"}, "redirect_uri does not match",
     f"'{PRIMARY}/' is not one of the redirect URIs registered for Demo Partner (reference); "
     "Clever requires an exact match."),
])
def test_authorize_refusals_name_the_problem(sim, demo_app, params, title, detail):
    from simulator.errors import AuthorizeError
    params = {k: (demo_app.client_id if v == "ID" else v) for k, v in params.items()}
    with pytest.raises(AuthorizeError) as caught:
        oauth.check_authorize(sim, params)
    assert (caught.value.title, caught.value.detail) == (title, detail)
    hints = {"Missing client_id": ["Add client_id={your app's client id} to the link."],
             "Unknown client_id": ["Use the client id that `clever-sim serve` printed, or register "
                                   "your app with [app] in the config or POST /_sim/apps."],
             "redirect_uri does not match": ["Registered: " + ", ".join(demo_app.redirect_uris),
                                             "Check scheme, host, port, path and trailing slash."]}
    assert caught.value.hints == hints[title]


@pytest.mark.parametrize("params, redirect_uri, state, district", [
    ({}, PRIMARY, None, None),
    ({"redirect_uri": "", "state": "", "district_id": ""}, PRIMARY, "", None),
    ({"redirect_uri": "http://localhost:5001/clever/callback", "state": "s", "district_id": "d1"},
     "http://localhost:5001/clever/callback", "s", "d1"),
])
def test_authorize_request_falls_back_to_the_primary_redirect_uri(sim, demo_app, params, redirect_uri,
                                                                  state, district):
    req = oauth.check_authorize(sim, {"client_id": demo_app.client_id, **params})
    assert (req.redirect_uri, req.state, req.district_id) == (redirect_uri, state, district)
    assert req.app.client_id == demo_app.client_id


def test_code_of_another_client_or_unknown_is_refused_word_for_word(sim, demo_app, student):
    other = sim.clever.register_app({"name": "Other", "redirect_uris": [PRIMARY]})
    code = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    for app, the_code in ((other, code), (demo_app, "0" * 20)):
        with pytest.raises(InvalidGrant) as caught:
            oauth.exchange_code(sim, app, {"grant_type": "authorization_code", "code": the_code,
                                           "redirect_uri": PRIMARY})
        assert caught.value.message == ("Unknown authorization code (it was not issued to this "
                                        "client, or it expired over an hour ago)")


def _redeem(sim, app, code: str) -> str:
    """The InvalidGrant message a code exchange fails with."""
    with pytest.raises(InvalidGrant) as caught:
        oauth.exchange_code(sim, app, {"grant_type": "authorization_code", "code": code,
                                       "redirect_uri": PRIMARY})
    return caught.value.message


USED = "Authorization code already used: codes can be redeemed once"
EXPIRED = "Authorization code expired: codes live 60 seconds"


@pytest.mark.parametrize("used", [False, True], ids=["never-used", "used"])
@pytest.mark.parametrize("later_s, kept", [(60 + 3600, True), (60 + 3600.001, False)])
def test_issuing_a_code_deletes_codes_expired_over_an_hour(sim, demo_app, student, monkeypatch,
                                                            used, later_s, kept):
    t0 = 1_800_000_000.0
    monkeypatch.setattr(sim.clock, "now", lambda: t0)
    old = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    if used:
        oauth.exchange_code(sim, demo_app, {"grant_type": "authorization_code", "code": old,
                                            "redirect_uri": PRIMARY})
    monkeypatch.setattr(sim.clock, "now", lambda: t0 + later_s)
    new = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    assert sim.store.count("auth_codes") == (2 if kept else 1)
    if kept:  # still known: refused for exactly what is wrong with it
        assert _redeem(sim, demo_app, old) == (USED if used else EXPIRED)
    else:  # gone: refused as unknown, word for word as a code never issued
        assert _redeem(sim, demo_app, old) == _redeem(sim, demo_app, "0" * 20) == oauth.UNKNOWN_CODE
    assert oauth.exchange_code(sim, demo_app, {"grant_type": "authorization_code", "code": new,
                                               "redirect_uri": PRIMARY})["token_type"] == "bearer"


def test_a_purged_code_gets_invalid_grant_over_http(client, sim, demo_app, student):
    code, _ = code_for(client, demo_app, student["id"])
    sim.clock.advance(60 + 3600 + 1)
    code_for(client, demo_app, student["id"])  # a new code: the old one is deleted
    body = assert_oauth_error(_exchange(client, demo_app, code), 400, "invalid_grant")
    assert body["error_description"] == oauth.UNKNOWN_CODE


def test_a_code_revoked_while_it_is_exchanged_gets_invalid_grant_and_no_token(sim, demo_app, student,
                                                                              monkeypatch):
    code = oauth.issue_code(sim, demo_app, student["id"], PRIMARY)
    redeem = sim.store.redeem_code

    after_reset = []

    def redeem_then_reset(*args):  # a reset lands between redeeming the code and storing the token
        found = redeem(*args)
        sim.reset()
        after_reset.append(sim.store.count("tokens"))
        return found

    monkeypatch.setattr(sim.store, "redeem_code", redeem_then_reset)
    with pytest.raises(InvalidGrant) as caught:
        oauth.exchange_code(sim, demo_app, {"grant_type": "authorization_code", "code": code,
                                            "redirect_uri": PRIMARY})
    assert caught.value.message == ("Authorization code revoked: its app was deleted or the "
                                    "simulator reset while it was being exchanged")
    assert sim.store.count("tokens") == after_reset[0]  # no token was stored for it


def test_a_persona_token_for_an_app_deleted_meanwhile_is_app_not_found(client, sim, demo_app, student):
    from simulator.errors import NotFound
    assert client.delete(f"/_sim/apps/{demo_app.client_id}").status_code == 200
    with pytest.raises(NotFound) as caught:
        oauth.mint_il_token(sim, demo_app, student["id"])  # the app as it was read before
    assert caught.value.message == f"App {demo_app.client_id!r} not found"
    assert problems(caught.value) == [{"field": "client_id",
                                       "problem": "no app is registered with this client id",
                                       "hint": "register it with POST /_sim/apps or [app] in the config"}]


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
CSRF_EXPIRED = ("csrf: does not match this browser session (open the page with the form again and "
           "submit it from there)")


@pytest.mark.parametrize("path, form, again", [
    ("/oauth/logout", {"back": "/schoology"}, 'href="/schoology"'),
    ("/oauth/logout", {"back": "//evil.example/"}, 'href="/oauth/whoami"'),
    ("/oauth/login", {"next": "response_type=code&client_id=c1"},
     'href="/oauth/authorize?response_type=code&amp;client_id=c1"'),
    ("/oauth/login", {"next": "a\r\nb"}, 'href="/oauth/whoami"'),
])
def test_an_expired_login_or_logout_form_is_a_page_leading_back_to_the_form(client, student,
                                                                           path, form, again):
    """A browser's form (say, left open across a restart) gets HTML, not JSON, and a link to
    a fresh copy of the form: reloading the answer would resend the expired one."""
    client.get("/schoology")
    resp = client.post(path, data={"csrf": "expired", "user_id": student["id"], **form},
                       headers={"Accept": BROWSER_ACCEPT})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    text = resp.get_data(as_text=True)
    assert "<h1>Form expired or forged (CSRF check failed)</h1>" in text
    assert CSRF_EXPIRED in text
    assert f'<a class="btn" {again}>Open the form again</a>' in text


def test_a_full_browser_logging_in_gets_a_page_too(client, roster):
    from simulator.web import MAX_SLOTS, SESSION_PERSONAS

    students = [u["id"] for u in roster["users"] if "student" in u["roles"]]
    with client.session_transaction() as sess:
        sess["csrf"] = "t" * 32
        sess[SESSION_PERSONAS] = students[:MAX_SLOTS]
    resp = client.post("/oauth/login", data={"csrf": "t" * 32, "user_id": students[MAX_SLOTS]},
                       headers={"Accept": BROWSER_ACCEPT})
    assert resp.status_code == 400 and resp.mimetype == "text/html"
    assert "<h1>Every persona slot of this browser is taken</h1>" in resp.get_data(as_text=True)
    json_answer = client.post("/oauth/login", data={"csrf": "t" * 32,
                                                    "user_id": students[MAX_SLOTS]})
    assert_error(json_answer, 400, "Every persona slot of this browser is taken", field="user_id")


def test_a_database_whose_codes_table_has_the_old_scopes_column_issues_and_redeems_codes(
        tmp_path, roster, student):
    """auth_codes.scopes was written and never read (a code's token takes the app's
    scopes): the table is made without it, and a database an older version wrote (its
    column NOT NULL) has the table made anew at start instead of every code failing."""
    import sqlite3

    from simulator.app import create_app

    db = tmp_path / "sim.db"
    create_app({"DB": str(db)}, environ={}).extensions["clever_sim"].close()
    conn = sqlite3.connect(db, isolation_level=None)  # as the previous version stored codes
    conn.executescript("""
        DROP TABLE auth_codes;
        CREATE TABLE auth_codes (code TEXT PRIMARY KEY, client_id TEXT NOT NULL,
            user_id TEXT NOT NULL, redirect_uri TEXT NOT NULL, scopes TEXT NOT NULL,
            expires_at REAL NOT NULL, used_at REAL);
        CREATE INDEX auth_codes_expiry ON auth_codes(expires_at);
    """)
    conn.close()
    sim = create_app({"DB": str(db)}, environ={}).extensions["clever_sim"]
    try:
        with sim.store.read() as conn:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(auth_codes)")]
        assert columns == ["code", "client_id", "user_id", "redirect_uri", "expires_at", "used_at"]
        app = sim.store.get_app(roster["apps"][0]["client_id"])
        code = oauth.issue_code(sim, app, student["id"], PRIMARY)
        token = oauth.exchange_code(sim, app, {"grant_type": "authorization_code", "code": code,
                                               "redirect_uri": PRIMARY})
        assert token["token_type"] == "bearer"
        assert sim.store.get_token(token["access_token"]).scopes == app.scopes
    finally:
        sim.close()
