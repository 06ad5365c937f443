"""partner_client.fetch_assignments against a tiny real partner on 127.0.0.1.

Every way a partner's assignments URL can go wrong becomes plain words for a teacher,
and every call leaves an ``outbound`` entry in the journal.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
import time

import pytest
from flask import Flask, Response, redirect, request
from werkzeug.serving import make_server

from simulator import partner_client
from simulator.clock import Clock
from simulator.journal import Journal

GOOD = {"assignments": [
    {"name": "Assignment 1", "id": "a100001", "type": "assignment",
     "description": "The first assignment", "standards": ["CCSS.ELA-LITERACY.SL.1.2"]},
    {"name": "Assignment 2", "id": "a100002", "type": "assignment",
     "description": "The second assignment", "extra": {"kept": True}},
]}


def _partner_app(port_holder: dict) -> Flask:
    app = Flask("partner")
    seen: list[dict] = []
    app.config["seen"] = seen

    @app.before_request
    def _record():
        seen.append({"path": request.path, "headers": dict(request.headers)})

    @app.get("/good")
    def good():
        return GOOD

    @app.get("/server-error")
    def server_error():
        return Response("database is down: " + "x" * 1000, status=500, mimetype="text/plain")

    @app.get("/html")
    def html():
        return "<!doctype html><html><head><title>Sign in</title></head><body>Sign in</body></html>"

    @app.get("/not-json")
    def not_json():
        return Response("assignments: a1, a2", mimetype="text/plain")

    @app.get("/invalid")
    def invalid():
        return {"assignments": [
            {"name": "ok", "id": "a1", "type": "assignment"},
            {"id": "a2", "type": "assignment"},                 # name missing
            {"name": "three", "id": "a3", "type": "Assignment"},  # wrong type
            {"name": "four", "id": 4, "type": "assignment", "standards": "CCSS.1"},
        ]}

    @app.get("/bare-list")
    def bare_list():
        return Response(json.dumps(GOOD["assignments"]), mimetype="application/json")

    @app.get("/duplicates")
    def duplicates():
        item = {"name": "n", "type": "assignment"}
        return {"assignments": [{**item, "id": "a1"}, {**item, "id": "b2"}, {**item, "id": "a1"},
                                {**item, "id": "b2"}, {**item, "id": "c3"}]}

    @app.get("/warnings")
    def warnings():
        return {"assignments": [{"name": "spaces", "id": "unit 3/lesson 2", "type": "assignment"},
                                {"name": "long", "id": "x" * 70, "type": "assignment"}]}

    @app.get("/slow")
    def slow():
        time.sleep(2)
        return GOOD

    @app.get("/huge")
    def huge():
        def chunks():
            yield b'{"assignments": ['
            for _ in range(2 * 1024):  # 2 MiB, streamed without Content-Length
                yield b" " * 1024
            yield b"]}"
        return Response(chunks(), mimetype="application/json")

    @app.get("/huge-declared")
    def huge_declared():
        return Response(b" " * (1024 * 1024 + 10), mimetype="application/json")

    @app.get("/away")
    def away():
        return redirect(f"http://127.0.0.2:{port_holder['port']}/good", code=302)

    @app.get("/same")
    def same():
        return redirect("/good", code=301)

    @app.get("/loop")
    def loop():
        return redirect("/loop", code=302)

    return app


@pytest.fixture(scope="module")
def partner():
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    holder: dict = {}
    app = _partner_app(holder)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    holder["port"] = server.server_port
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    yield {"base": base, "seen": app.config["seen"]}
    server.shutdown()


@pytest.fixture
def journal():
    return Journal(100)


def fetch(url, journal, **kw):
    return partner_client.fetch_assignments(url, "ilc_teacher_token", journal=journal, clock=Clock(),
                                            client_id="client-1", user_id="teacher-1", **kw)


def outbound(journal, result) -> dict:
    entries, _ = journal.query(direction="outbound")
    assert entries, "no outbound journal entry"
    entry = entries[0]
    assert entry["id"] == result.journal_id
    assert entry["direction"] == "outbound" and entry["method"] == "GET"
    assert entry["client_id"] == "client-1" and entry["user_id"] == "teacher-1"
    assert entry["findings"] == result.findings
    assert isinstance(entry["duration_ms"], float)
    return entry


def test_good_list_is_parsed_and_journaled(partner, journal):
    result = fetch(partner["base"] + "/good?district=1", journal)
    assert result.ok and result.problems == [] and result.warnings == []
    assert [a["id"] for a in result.assignments] == ["a100001", "a100002"]
    assert result.assignments[0]["standards"] == ["CCSS.ELA-LITERACY.SL.1.2"]
    assert result.assignments[1]["standards"] == []
    sent = partner["seen"][-1]["headers"]
    assert sent["Authorization"] == "Bearer ilc_teacher_token"
    assert sent["Accept"] == "application/json"
    entry = outbound(journal, result)
    assert entry["status"] == 200 and entry["path"] == "/good" and entry["query"] == "district=1"
    assert entry["url"] == partner["base"] + "/good?district=1"
    assert entry["request_headers"]["Authorization"] == "Bearer ilc_teacher_token"
    assert json.loads(entry["response_body"]) == GOOD


def test_server_error_shows_status_and_start_of_body(partner, journal):
    result = fetch(partner["base"] + "/server-error", journal)
    assert not result.ok and result.status == 500
    (problem,) = result.problems
    assert "answered HTTP 500" in problem and "instead of 200" in problem
    assert "database is down" in problem
    said = problem.split("It said: ", 1)[1]
    assert len(said) <= 301  # the first 300 characters (+ an ellipsis)
    assert outbound(journal, result)["status"] == 500


def test_html_instead_of_json(partner, journal):
    result = fetch(partner["base"] + "/html", journal)
    assert not result.ok
    assert "answered HTML, not JSON" in result.problems[0]
    assert "text/html" in result.problems[0]
    outbound(journal, result)


def test_text_that_is_not_json(partner, journal):
    result = fetch(partner["base"] + "/not-json", journal)
    assert not result.ok and "is not JSON" in result.problems[0]
    outbound(journal, result)


def test_schema_violations_are_each_listed_with_their_path(partner, journal):
    result = fetch(partner["base"] + "/invalid", journal)
    assert not result.ok and result.assignments == []
    assert "does not match the assignments format" in result.problems[0]
    assert "4 problems" in result.problems[0]
    listed = result.problems[1:]
    assert "$.assignments[1].name: is missing (required)" in listed
    assert '$.assignments[2].type: must be "assignment" (got a string "Assignment")' in listed
    assert "$.assignments[3].id: must be a string (got a number 4)" in listed
    assert any(p.startswith("$.assignments[3].standards: must be an array") for p in listed)
    assert len(listed) == 4
    entry = outbound(journal, result)
    assert entry["status"] == 200
    assert "$.assignments[1].name: is missing (required)" in entry["findings"]


def test_bare_list_gets_a_hint_to_wrap_it(partner, journal):
    result = fetch(partner["base"] + "/bare-list", journal)
    assert not result.ok
    assert "$: must be an object (got an array)" in result.problems
    assert any('wrap it as {"assignments": [...]}' in p for p in result.problems)
    outbound(journal, result)


def test_duplicate_ids_are_named(partner, journal):
    result = fetch(partner["base"] + "/duplicates", journal)
    assert not result.ok
    dups = [p for p in result.problems if p.startswith("duplicate assignment id")]
    assert len(dups) == 2
    assert '"a1" at $.assignments[0], $.assignments[2]' in dups[0]
    assert '"b2" at $.assignments[1], $.assignments[3]' in dups[1]
    outbound(journal, result)


def test_ids_against_the_seed_recommendation_are_warnings(partner, journal):
    result = fetch(partner["base"] + "/warnings", journal)
    assert result.ok and len(result.assignments) == 2
    assert any("$.assignments[0].id" in w and "not alphanumeric" in w for w in result.warnings)
    assert any("$.assignments[1].id" in w and "70 characters" in w and "under 64" in w
               for w in result.warnings)
    assert outbound(journal, result)["findings"] == result.warnings


def test_slow_partner_times_out(partner, journal):
    result = fetch(partner["base"] + "/slow", journal, read_timeout=0.5)
    assert not result.ok and result.status is None
    assert "timed out" in result.problems[0] and "0.5 s" in result.problems[0]
    assert outbound(journal, result)["status"] is None


def test_total_time_is_bounded_even_for_a_trickle(partner, journal):
    result = fetch(partner["base"] + "/huge", journal, total_timeout=0.0)
    assert not result.ok and "timed out" in result.problems[0]
    outbound(journal, result)


@pytest.mark.parametrize("path", ["/huge", "/huge-declared"])
def test_body_over_one_mib_is_refused(partner, journal, path):
    result = fetch(partner["base"] + path, journal)
    assert not result.ok
    assert "the response is larger than 1 MiB" in result.problems[0]
    entry = outbound(journal, result)
    assert entry["status"] == 200
    assert len(entry["response_body"]) < 20 * 1024  # clipped for the journal


def test_redirect_to_another_host_is_not_followed(partner, journal):
    result = fetch(partner["base"] + "/away", journal)
    assert not result.ok and result.status == 302
    problem = result.problems[0]
    assert "redirected" in problem and "another host" in problem
    assert f"127.0.0.2:{partner['base'].rsplit(':', 1)[1]}" in problem
    assert partner["seen"][-1]["path"] == "/away"  # the other host was never asked
    outbound(journal, result)


def test_redirect_on_the_same_origin_is_followed(partner, journal):
    result = fetch(partner["base"] + "/same", journal)
    assert result.ok and len(result.assignments) == 2
    assert partner["seen"][-1]["headers"]["Authorization"] == "Bearer ilc_teacher_token"
    entry = outbound(journal, result)
    assert entry["redirects"] == [partner["base"] + "/good"] and entry["path"] == "/same"


def test_redirect_loop_stops(partner, journal):
    result = fetch(partner["base"] + "/loop", journal)
    assert not result.ok and "redirected more than 5 times" in result.problems[0]
    outbound(journal, result)


def test_closed_port_is_connection_refused(journal):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/clever/assignments"
    result = fetch(url, journal)
    assert not result.ok and result.status is None
    assert result.problems == [f"could not connect to {url}: connection refused — is the app running?"]
    entry = outbound(journal, result)
    assert entry["status"] is None and entry["response_body"] is None
    assert entry["path"] == "/clever/assignments"


def test_not_an_http_url(journal):
    result = fetch("ftp://example.org/list", journal)
    assert not result.ok and "not an absolute http(s) URL" in result.problems[0]
    outbound(journal, result)


@pytest.mark.parametrize("doc, expected", [
    ({}, "$.assignments: is missing (required)"),
    ({"assignments": {}}, "$.assignments: must be an array (got an object)"),
    ({"assignments": [{"name": "", "id": "", "type": "assignment"}]}, "$.assignments[0].name: must not be empty"),
    ({"assignments": [{"name": "n", "id": "a", "type": "assignment", "description": 3}]},
     "$.assignments[0].description: must be a string (got a number 3)"),
    ({"assignments": [{"name": "n", "id": "a", "type": "assignment", "standards": [1]}]},
     "$.assignments[0].standards[0]: must be a string (got a number 1)"),
])
def test_check_document_paths(doc, expected):
    _, problems, _ = partner_client.check_document(doc)
    assert expected in problems


def test_empty_list_is_a_warning():
    assignments, problems, warnings = partner_client.check_document({"assignments": []})
    assert assignments == [] and problems == []
    assert warnings == ["the assignments list is empty: teachers will have nothing to pick"]


def test_schema_file_matches_the_seed_example():
    seed_example = {"assignments": [
        {"name": "Assignment 1", "id": "a100001", "type": "assignment",
         "description": "The first assignment", "standards": ["CCSS.ELA-LITERACY.SL.1.2"]},
        {"name": "Assignment 2", "id": "a100002", "type": "assignment",
         "description": "The second assignment"}]}
    assert partner_client.check_document(seed_example)[1:] == ([], [])
    schema = partner_client.load_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
