"""A crawler over Clever's data API as the simulator serves it, checked against Clever's documents.

From ``/me`` of each token kind (district-app, il student, il teacher) in every version, it
follows every ``links`` entry and every list item's ``uri`` two levels deep.  A district-app
token's ``/me`` only links its district, so its crawl also starts from the version's
top-level lists, as a Secure Sync client's does.  Every answer must be:

* no 404 for a link the simulator emitted and never a 5xx (an il token's links past its own
  records are 403 "Resource not in token's scopes", as Clever answers them);
* on 200, valid against the project's schema of that version (``simulator/schemas/
  clever-v*.json``, written from Clever's Swagger documents: field names, types, enums,
  nullability, and no field of another version);
* labelled ``application/json; charset=utf-8`` with Clever's recorded CORS headers.
"""

from __future__ import annotations

from collections import deque
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft7Validator

from conftest import bearer, district_token, il_token
from simulator.app import create_app
from simulator.clever import data_api

VERSIONS = ("v2.0", "v2.1", "v3.0", "v3.1")
DEPTH = 2
FOLLOWED: dict[tuple[str, str], int] = {}


@pytest.fixture(scope="module")
def app():
    app = create_app({"DB": ":memory:", "SECRET_KEY": "test-secret"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def response_definition(path: str) -> tuple[str, str]:
    """(version, the document's response definition) of a request path; plain ``/me``
    answers as v2.1 (``data_api.UNVERSIONED_ME``)."""
    first, *parts = path.strip("/").split("/")
    version = first if first in VERSIONS else data_api.UNVERSIONED_ME
    if first not in VERSIONS:
        parts = [first, *parts]
    if parts == ["me"]:
        return version, "MeResponse"
    for template, facts in data_api.document(version)["paths"].items():
        tparts = template.strip("/").split("/")
        if len(tparts) == len(parts) and all(
                t == "{id}" or t.lower() == p.lower() for t, p in zip(tparts, parts)):
            return version, facts["response"]
    raise AssertionError(f"{path}: no path of Clever's {version} document matches")


def validator(version: str, definition: str) -> Draft7Validator:
    doc = data_api.document(version)
    return Draft7Validator({"$ref": f"#/definitions/{definition}", "definitions": doc["definitions"]})


def links_of(body: dict) -> list[str]:
    """Every ``links[].uri`` and list item ``uri`` of an answer."""
    out = [link["uri"] for link in body.get("links") or []]
    if isinstance(body.get("data"), list):
        out += [item["uri"] for item in body["data"]]
    return out


def crawl(client, token: str, seeds: list[str]) -> tuple[int, list[str]]:
    """Breadth-first over emitted links; (links followed, problems found)."""
    problems: list[str] = []
    seen: set[str] = set()
    queue = deque((uri, 0, "(seed)") for uri in seeds)
    followed = 0
    while queue:
        uri, depth, came_from = queue.popleft()
        if uri in seen:
            continue
        seen.add(uri)
        followed += 1
        resp = client.get(uri, headers=bearer(token))
        where = f"{uri} (linked from {came_from})"
        if resp.status_code >= 500 or resp.status_code == 404:
            problems.append(f"{where}: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
            continue
        if resp.headers.get("Content-Type") != "application/json; charset=utf-8":
            problems.append(f"{where}: Content-Type {resp.headers.get('Content-Type')}")
        if resp.headers.get("Access-Control-Allow-Origin") != "*":
            problems.append(f"{where}: no Access-Control-Allow-Origin: *")
        body = resp.get_json()
        if resp.status_code == 403:
            if body["message"] != "Resource not in token's scopes":
                problems.append(f"{where}: 403 {body['message']}")
            continue
        if resp.status_code != 200:
            problems.append(f"{where}: {resp.status_code} {body}")
            continue
        version, definition = response_definition(urlsplit(uri).path)
        for error in validator(version, definition).iter_errors(body):
            path = "/".join(map(str, error.absolute_path)) or "(root)"
            problems.append(f"{where}: {definition} {path}: {error.message[:200]}")
        if depth < DEPTH:
            queue.extend((link, depth + 1, uri) for link in links_of(body))
    return followed, problems


def top_level_lists(version: str) -> list[str]:
    return [f"/{version}{p}" for p in data_api.paths(version) if p.count("/") == 1]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("who", ["district", "student", "teacher"])
def test_every_emitted_link_answers_and_matches_clevers_document(app, version, who):
    sim = app.extensions["clever_sim"]
    client = app.test_client()
    district = sim.roster["districts"][0]["id"]
    if who == "district":
        token, seeds = district_token(sim, district), [f"/{version}/me", *top_level_lists(version)]
    else:
        user = next(u for u in sim.roster["users"] if who in u["roles"] and u["district"] == district)
        token, seeds = il_token(sim, user["id"]), [f"/{version}/me"]
    followed, problems = crawl(client, token, seeds)
    FOLLOWED[(version, who)] = followed
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems[:40])
    # The crawl reached past /me: a district token every record (v3: and its nested paths;
    # v2 records link only themselves), an il token its own records.
    assert followed >= ({"district": 200 if version in ("v3.0", "v3.1") else 50}.get(who, 4)), followed


def sample_ids(sim, district: str) -> dict[str, str]:
    """One id per collection of the district, as each version names it (v2: legacy ids)."""
    to_v2, _ = sim.store.legacy_ids()
    roster = sim.roster
    users = [u for u in roster["users"] if u["district"] == district]
    student = next(u for u in users if "student" in u["roles"])
    teacher = next(u for u in users if "teacher" in u["roles"])
    first = {kind: next(r["id"] for r in roster.get(kind, []) if r["district"] == district)
             for kind in ("schools", "sections", "terms", "courses")}
    return {"districts": district, "users": teacher["id"], "students": student["id"],
            "teachers": to_v2[teacher["id"]], **first}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_documented_path_answers_with_its_documented_shape(app, version):
    """Every path of the version's document, with a record of the district: 200 and valid
    (the v2 nested paths, which no v2 record links, are reached here)."""
    sim = app.extensions["clever_sim"]
    client = app.test_client()
    district = sim.roster["districts"][0]["id"]
    token = district_token(sim, district)
    ids = sample_ids(sim, district)
    problems, answered = [], 0
    for template in data_api.paths(version):
        collection = template.strip("/").split("/")[0]
        if "{id}" in template and collection not in ids:
            continue  # contacts, admins, resources: the default roster has none (404 tested elsewhere)
        uri = f"/{version}" + template.replace("{id}", ids.get(collection, ""))
        resp = client.get(uri, headers=bearer(token))
        answered += 1
        if resp.status_code != 200:
            problems.append(f"{uri}: {resp.status_code} {resp.get_data(as_text=True)[:200]}")
            continue
        _, definition = response_definition(uri)
        problems += [f"{uri}: {definition} {'/'.join(map(str, e.absolute_path))}: {e.message[:150]}"
                     for e in validator(version, definition).iter_errors(resp.get_json())]
    assert not problems, "\n".join(problems)
    assert answered >= 35, answered


def test_crawler_count_is_reported():
    """Prints how many links the crawl followed (run with -s); every crawl must have run."""
    print("\ncrawler links followed:", sum(FOLLOWED.values()),
          {f"{v}/{w}": n for (v, w), n in sorted(FOLLOWED.items())})
    assert len(FOLLOWED) == len(VERSIONS) * 3


def test_schema_rejects_a_field_of_another_version():
    """The schemas are closed: a v2.1-only field in a v2.0 answer fails (the crawler can fail)."""
    student = {"id": "a" * 24, "district": "b" * 24, "enrollments": [], "name": {"first": "A"}}
    assert list(validator("v2.0", "Student").iter_errors(student))
    assert not list(validator("v2.1", "Student").iter_errors(student))
    assert list(validator("v2.0", "Student").iter_errors({**student, "gender": "X"}))


def test_schema_rejects_a_null_the_document_does_not_allow():
    assert list(validator("v3.0", "Section").iter_errors({"id": "s", "name": None}))
    assert not list(validator("v3.0", "Section").iter_errors({"id": "s", "period": None}))


@pytest.mark.parametrize("path, version, definition", [
    ("/v3.0/users/abc/myTeachers", "v3.0", "UsersResponse"),
    ("/v2.1/sections/abc/teacher", "v2.1", "TeacherResponse"),
    ("/v3.1/me", "v3.1", "MeResponse"), ("/me", "v2.1", "MeResponse"),
])
def test_response_definition_of_a_path(path, version, definition):
    assert response_definition(path) == (version, definition)
