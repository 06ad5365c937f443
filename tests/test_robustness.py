"""No input makes the simulator answer 5xx: property-based tests over the OAuth token
endpoint and the control API, plus Clever's rate limit when it is switched on."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.app import create_app

from conftest import bearer, il_token

SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

header_text = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=80)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["code", "grant_type", "redirect_uri", "client_id", "client_secret", "x"]) | st.text(max_size=8),
        children, max_size=5),
    max_leaves=12)


@pytest.fixture(scope="module")
def shared_app():
    app = create_app({"DB": ":memory:"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


@SETTINGS
@given(body=json_values, auth=st.none() | header_text, ctype=st.sampled_from(
    ["application/json", "application/x-www-form-urlencoded", "text/plain", "", "application/json; charset=latin-1"]))
def test_token_endpoint_never_answers_5xx_for_json_bodies(shared_app, body, auth, ctype):
    headers = {"Authorization": auth} if auth is not None else {}
    raw = json.dumps(body, allow_nan=True).encode()
    resp = shared_app.test_client().post("/oauth/tokens", data=raw, headers=headers, content_type=ctype)
    assert resp.status_code < 500, resp.get_data(as_text=True)
    assert resp.status_code in (400, 401)


@SETTINGS
@given(form=st.dictionaries(st.sampled_from(["code", "grant_type", "redirect_uri", "client_id", "client_secret"]),
                            header_text, max_size=5))
def test_token_endpoint_never_answers_5xx_for_forms(shared_app, form):
    resp = shared_app.test_client().post("/oauth/tokens", data=form)
    assert resp.status_code in (400, 401), resp.get_data(as_text=True)


@SETTINGS
@given(raw=st.binary(max_size=300))
def test_token_endpoint_never_answers_5xx_for_raw_bytes(shared_app, raw):
    resp = shared_app.test_client().post("/oauth/tokens", data=raw, content_type="application/json")
    assert resp.status_code in (400, 401)


@SETTINGS
@given(params=st.dictionaries(st.sampled_from(["response_type", "client_id", "redirect_uri", "state",
                                               "district_id", "sim_district", "sim_school", "scope"]),
                              header_text, max_size=6))
def test_authorize_never_answers_5xx(shared_app, params):
    resp = shared_app.test_client().get("/oauth/authorize", query_string=params)
    assert resp.status_code in (200, 302, 400)


@SETTINGS
@given(path=st.sampled_from(["/_sim/apps", "/_sim/codes", "/_sim/tokens", "/_sim/links", "/_sim/faults",
                             "/_sim/clock"]), body=json_values)
def test_control_api_never_answers_5xx(shared_app, path, body):
    resp = shared_app.test_client().post(path, data=json.dumps(body, allow_nan=True),
                                         content_type="application/json")
    assert resp.status_code < 500, resp.get_data(as_text=True)
    shared_app.extensions["clever_sim"].faults.clear()


def test_rate_limit_when_enabled_answers_429_empty_with_retry_after():
    app = create_app({"DB": ":memory:", "RATE_LIMIT": True, "RATE_LIMIT_PER_MIN": 3}, environ={})
    sim = app.extensions["clever_sim"]
    student = next(u for u in sim.roster["users"] if "student" in u["roles"])
    token = il_token(sim, student["id"])
    c = app.test_client()
    remaining = [c.get("/v3.0/me", headers=bearer(token)).headers["X-RateLimit-Remaining"] for _ in range(3)]
    assert remaining == ["2", "1", "0"]
    over = c.get("/v3.0/me", headers=bearer(token))
    assert over.status_code == 429 and over.get_data() == b""
    assert 1 <= int(over.headers["Retry-After"]) <= 60
    assert over.headers["X-RateLimit-Remaining"] == "0"
    other = il_token(sim, student["id"])  # the limit is per token
    assert c.get("/v3.0/me", headers=bearer(other)).status_code == 200
    sim.clock.advance(60)
    assert c.get("/v3.0/me", headers=bearer(token)).status_code == 200


def test_rate_limit_off_by_default_still_reports_headers(client, sim, student):
    token = il_token(sim, student["id"])
    for _ in range(5):
        resp = client.get("/v3.0/me", headers=bearer(token))
    assert resp.status_code == 200 and resp.headers["X-RateLimit-Bucket"] == "bearer"


def test_unknown_path_and_wrong_method_answer_json(client):
    resp = client.get("/v9.9/nothing")
    assert resp.status_code == 404 and resp.get_json()["message"].startswith("Not found")
    resp = client.get("/v1/grade")
    assert resp.status_code == 405 and "POST" in resp.get_json()["message"]
    assert "POST" in resp.headers["Allow"]
