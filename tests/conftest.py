"""Shared fixtures: an in-memory simulator per test, roster personas, and the error pin."""

from __future__ import annotations

import json
from typing import Any

import pytest

from simulator.app import create_app
from simulator.clever import oauth
from simulator.models import App


@pytest.fixture
def app():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


@pytest.fixture
def sim(app):
    return app.extensions["clever_sim"]


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def roster(sim):
    return sim.roster


@pytest.fixture
def demo_app(sim):
    """The registered demo partner app (first app of the default fixture)."""
    return sim.store.get_app(sim.roster["apps"][0]["client_id"])


def _users(roster, role, district_index=0):
    district = roster["districts"][district_index]["id"]
    return [u for u in roster["users"] if role in u["roles"] and u["district"] == district]


@pytest.fixture
def student(roster):
    return _users(roster, "student")[0]


@pytest.fixture
def other_student(roster):
    return _users(roster, "student")[1]


@pytest.fixture
def teacher(roster):
    return _users(roster, "teacher")[0]


@pytest.fixture
def foreign_student(roster):
    """A student of the second district."""
    return _users(roster, "student", 1)[0]


@pytest.fixture
def district_id(roster):
    return roster["districts"][0]["id"]


def il_token(sim, user_id: str, app: App | None = None) -> str:
    """A fresh SSO token for a user, as if they had logged in."""
    app = app or sim.store.get_app(sim.roster["apps"][0]["client_id"])
    return oauth.mint_il_token(sim, app, user_id)["access_token"]


def district_token(sim, district_id: str, app: App | None = None) -> str:
    app = app or sim.store.get_app(sim.roster["apps"][0]["client_id"])
    return sim.store.district_tokens(app.client_id, district_id)[0].access_token


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def log_in(client, user_id: str | None) -> None:
    """Log this test client's browser in as ``user_id`` (its tab slot 0, as the persona
    switcher does); None logs it out."""
    from simulator.web import SESSION_PERSONAS

    with client.session_transaction() as sess:
        sess[SESSION_PERSONAS] = [user_id] if user_id else []


def post_grade(client, token: str | None, body: Any = None, *, raw: bytes | str | None = None,
               headers: dict | None = None, prefix: str = "", **fields):
    """POST /v1/grade as a partner does: JSON of ``body`` (or of the keyword fields), or ``raw``
    text as it is; ``token`` None sends no Authorization header."""
    sent = {"Content-Type": "application/json", **(bearer(token) if token is not None else {}),
            **(headers or {})}
    data = raw if raw is not None else json.dumps(fields if body is None else body)
    return client.post(f"{prefix}/v1/grade", data=data, headers=sent)


def post_grade_over_http(url: str, token: str, body: dict):
    """POST /v1/grade to a served simulator (``live_sim``), as a partner's app does."""
    import httpx

    return httpx.post(f"{url}/v1/grade", json=body, headers=bearer(token), trust_env=False,
                      timeout=10)


def grade_ok(client, token: str, body: dict | None = None, **fields) -> dict:
    """``post_grade`` of a grade that must be stored: the stored record."""
    resp = post_grade(client, token, body, **fields)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return resp.get_json()["data"]


def link(client, section_id: str, assignment_id: str, client_id: str | None = None,
         **fields) -> dict:
    """A teacher's Schoology assignment linked to ``assignment_id`` (POST /_sim/links)."""
    resp = client.post("/_sim/links", json={
        "section_id": section_id, "assignment_id": assignment_id,
        "client_id": client_id or client.application.extensions["clever_sim"].roster["apps"][0]["client_id"],
        **fields})
    assert resp.status_code == 201, resp.get_data(as_text=True)
    return resp.get_json()


def assert_error(resp, status: int, message: str | None = None, *, field: str | None = None,
                 problem: str | None = None) -> dict:
    """Pin the canonical error body: ``{"message", "errors": [{"field", "problem", "hint"?}]}``.

    ``message`` must equal the body's message (or be a prefix when it ends with '…');
    ``field``/``problem`` must appear in one entry of ``errors`` (problem as a substring).
    """
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:2000])
    body = resp.get_json()
    assert isinstance(body, dict), resp.get_data(as_text=True)[:500]
    assert isinstance(body.get("message"), str) and body["message"], body
    assert set(body) <= {"message", "errors"}, body
    if message is not None:
        if message.endswith("…"):
            assert body["message"].startswith(message[:-1]), body
        else:
            assert body["message"] == message, body
    for e in body.get("errors", []):
        assert set(e) <= {"field", "problem", "hint"} and e["field"] and e["problem"], e
    if field is not None:
        matching = [e for e in body.get("errors", []) if e["field"] == field]
        assert matching, f"no error for field {field!r} in {body}"
        if problem is not None:
            assert any(problem in e["problem"] for e in matching), body
    return body


def assert_oauth_error(resp, status: int, error: str, description: str | None = None) -> dict:
    """Pin RFC 6749 §5.2 error bodies: exactly ``error`` and ``error_description``."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True)[:2000])
    body = resp.get_json()
    assert set(body) == {"error", "error_description"}, body
    assert body["error"] == error, body
    if description is not None:
        assert description in body["error_description"], body
    return body


@pytest.fixture(scope="module")
def live_sim():
    """A simulator served on 127.0.0.1:0 for one test module, reached over HTTP as a partner's
    app and the control client reach it; stopped after the module."""
    from simulator.embedded import start_simulator

    server = start_simulator()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def control(live_sim):
    """A ``ControlClient`` of ``live_sim``, the simulator reset for this test."""
    from simulator.control_client import ControlClient

    with ControlClient(live_sim.url) as control:
        control.reset()
        yield control


def _granian_problem() -> str | None:
    from simulator.serving import granian_problem

    return granian_problem()


# Both servers `clever-sim serve` can run on: tests that pin a serving guarantee take
# `@pytest.mark.parametrize("server", SERVERS)` (granian skipped where it cannot serve).
GRANIAN_PROBLEM = _granian_problem()
needs_granian = pytest.mark.skipif(GRANIAN_PROBLEM is not None, reason=f"granian: {GRANIAN_PROBLEM}")
SERVERS = [pytest.param("granian", id="granian", marks=needs_granian),
           pytest.param("waitress", id="waitress")]


@pytest.fixture(scope="module", params=SERVERS)
def served(request):
    """The default app served on each server (``running.url``), started once per module."""
    from simulator.serving import start_in_thread
    from simulator.tenants import close_app

    app = create_app({"DB": ":memory:"}, environ={})
    running = start_in_thread(app, port=0, server=request.param)
    yield running
    running.stop()
    close_app(app)


@pytest.fixture
def busy_port():
    """A port something else listens on."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield taken.getsockname()[1]
