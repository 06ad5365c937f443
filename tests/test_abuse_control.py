"""Issue 12, rows 3 and 4: revocation is immediate, and only the local developer or CI
drives the control API (the browser half of row 4 is in tests/browser/test_cross_site.py).

Row 3 races real requests against revocations on a file database (WAL readers see the
last COMMIT while a revocation is still in its transaction: where the race lived), many
trials each, and asserts what a partner depends on: once the revoking call has answered,
the old token is refused and stores nothing.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from decimal import Decimal

import pytest

from simulator.app import create_app
from simulator.clever import grades
from simulator.errors import InvalidToken

TRIALS = 40   # the issue saw the race in 5 of 40 trials
HAMMERS = 4   # threads using the token while it is revoked


@pytest.fixture
def file_app(tmp_path):
    app = create_app({"DB": str(tmp_path / "sim.db"), "SECRET_KEY": "t"}, environ={})
    yield app
    app.extensions["clever_sim"].close()


def _json(resp):
    assert resp.status_code < 500, resp.get_data(as_text=True)
    return resp.get_json()


def _student(app) -> tuple[str, str]:
    roster = app.extensions["clever_sim"].roster
    district = roster["districts"][0]["id"]
    student = next(u for u in roster["users"] if "student" in u["roles"]
                   and u["district"] == district)
    return district, student["id"]


def _grade(client, token: str, user_id: str, n: int):
    return client.post("/v1/grade", json={"assignmentID": f"a{n}", "userID": user_id,
                                          "percentage": 0.5},
                       headers={"Authorization": f"Bearer {token}"})


def _race(app, token: str, user_id: str, revoke) -> tuple[int, list[int]]:
    """Use ``token`` from HAMMERS threads while ``revoke()`` runs; then, after it answered,
    use it again. Returns (status of the first use after the revocation answered,
    statuses seen by the hammers after it answered)."""
    answered = threading.Event()
    stop = threading.Event()
    started = threading.Barrier(HAMMERS + 1)
    late: list[int] = []

    def hammer(k: int) -> None:
        client = app.test_client()
        started.wait()
        n = 0
        while not stop.is_set():
            was_answered = answered.is_set()
            status = _grade(client, token, user_id, k * 10_000 + n).status_code
            if was_answered:  # this request began after the revocation answered
                late.append(status)
            n += 1

    threads = [threading.Thread(target=hammer, args=(k,)) for k in range(HAMMERS)]
    for t in threads:
        t.start()
    started.wait()
    revoke()
    answered.set()
    after = _grade(app.test_client(), token, user_id, 999_999).status_code
    while len(late) < 2 * HAMMERS:  # let each hammer send a few requests after the answer
        if not any(t.is_alive() for t in threads):
            break
        threading.Event().wait(0.001)
    stop.set()
    for t in threads:
        t.join(10)
    return after, late


def test_deleted_apps_district_token_stores_no_grade_once_delete_answered(file_app):
    control = file_app.test_client()
    district, student = _student(file_app)
    for trial in range(TRIALS):
        view = _json(control.post("/_sim/apps", json={
            "name": f"doomed {trial}", "redirect_uris": ["http://localhost:9/cb"]}))
        client_id, token = view["client_id"], view["district_tokens"][district]
        counted: list[int] = []

        def delete() -> None:
            assert control.delete(f"/_sim/apps/{client_id}").status_code == 200
            counted.append(len(_json(control.get("/_sim/grades",
                                                 query_string={"client_id": client_id}))["data"]))

        after, late = _race(file_app, token, student, delete)
        assert after == 401, f"trial {trial}: a deleted app's token still answered {after}"
        assert set(late) <= {401}, f"trial {trial}: after DELETE answered the token got {late}"
        final = len(_json(control.get("/_sim/grades", query_string={"client_id": client_id}))["data"])
        assert final == counted[0], (f"trial {trial}: {final - counted[0]} grade(s) stored "
                                     "with the token after DELETE answered")
        me = control.get("/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 401


def test_reset_revokes_il_tokens_for_every_later_request(file_app):
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    client_id = sim.roster["apps"][0]["client_id"]
    _, student = _student(file_app)
    for trial in range(TRIALS):
        token = _json(control.post("/_sim/tokens", json={"client_id": client_id,
                                                          "user_id": student}))["access_token"]
        after, late = _race(file_app, token, student,
                            lambda: control.post("/_sim/reset", json={}).status_code == 200 or None)
        assert after == 401, f"trial {trial}: an il token still answered {after} after reset"
        assert set(late) <= {401}, f"trial {trial}: after reset answered the token got {late}"
        left = _json(control.get("/_sim/grades"))["data"]
        assert left == [], f"trial {trial}: {len(left)} grade(s) stored after reset answered"


def test_disconnecting_a_district_revokes_its_token_at_once(file_app):
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    district, student = _student(file_app)
    for trial in range(TRIALS):
        view = _json(control.post("/_sim/apps", json={
            "name": f"narrowed {trial}", "redirect_uris": ["http://localhost:9/cb"]}))
        client_id, token = view["client_id"], view["district_tokens"][district]
        others = [d for d in sim.district_ids if d != district]

        def disconnect() -> None:
            patched = control.patch(f"/_sim/apps/{client_id}", json={"districts": others})
            assert patched.status_code == 200, patched.get_json()

        after, late = _race(file_app, token, student, disconnect)
        assert after == 401, f"trial {trial}: a disconnected district's token answered {after}"
        assert set(late) <= {401}, f"trial {trial}: after PATCH answered the token got {late}"


def test_codes_exchanged_while_reset_runs_yield_no_working_token(file_app):
    """A code redeemed just before a reset must not become a token after it."""
    control = file_app.test_client()
    sim = file_app.extensions["clever_sim"]
    app = sim.roster["apps"][0]
    _, student = _student(file_app)
    for trial in range(TRIALS):
        codes = [_json(control.post("/_sim/codes", json={"client_id": app["client_id"],
                                                          "user_id": student}))["code"]
                 for _ in range(3 * HAMMERS)]
        issued: list[str] = []
        started = threading.Barrier(HAMMERS + 1)

        def exchange(mine: list[str]) -> None:
            client = file_app.test_client()
            started.wait()
            for code in mine:
                resp = client.post("/oauth/tokens", data={
                    "code": code, "grant_type": "authorization_code",
                    "redirect_uri": app["redirect_uris"][0]},
                    auth=(app["client_id"], app["client_secret"]))
                assert resp.status_code in (200, 400), resp.get_data(as_text=True)
                if resp.status_code == 200:
                    issued.append(resp.get_json()["access_token"])

        threads = [threading.Thread(target=exchange, args=(codes[k::HAMMERS],))
                   for k in range(HAMMERS)]
        for t in threads:
            t.start()
        started.wait()
        assert control.post("/_sim/reset", json={}).status_code == 200
        for t in threads:
            t.join(10)
        working = [t for t in issued
                   if control.get("/me", headers={"Authorization": f"Bearer {t}"}).status_code == 200]
        assert working == [], f"trial {trial}: {len(working)} token(s) outlived the reset"


def test_lookup_racing_a_revocation_never_caches_the_revoked_token(file_app):
    """The exact interleaving of the race: the SELECT sees the token, the revocation
    commits, then the lookup would fill the cache."""
    sim = file_app.extensions["clever_sim"]
    district, _ = _student(file_app)
    app = sim.register_app({"name": "raced", "redirect_uris": ["http://localhost:9/cb"]})
    token = sim.store.district_tokens(app["client_id"], district)[0]["access_token"]
    plain_read = sim.store.read

    @contextmanager
    def read_then_revoke():
        with plain_read() as db:
            yield db
        sim.store.read = plain_read
        sim.store.delete_app(app["client_id"])  # lands between the SELECT and the cache fill

    sim.store.read = read_then_revoke
    assert sim.store.get_token(token) is not None  # this lookup began before the revocation
    assert sim.store.get_token(token) is None      # the next one must not find it cached


def test_grade_checked_before_a_revocation_is_refused_at_write(file_app):
    """A grade whose token was looked up before DELETE committed is not stored after it."""
    sim = file_app.extensions["clever_sim"]
    district, student = _student(file_app)
    app = sim.register_app({"name": "raced", "redirect_uris": ["http://localhost:9/cb"]})
    generation = sim.store.token_generation
    token = sim.store.get_token(sim.store.district_tokens(app["client_id"], district)[0]
                                ["access_token"])
    sim.store.delete_app(app["client_id"])
    with pytest.raises(InvalidToken) as caught:
        grades.submit_grade(sim, token, {"assignmentID": "a1", "userID": student,
                                         "percentage": Decimal("0.5")}, generation)
    assert "revoked" in caught.value.errors[0].problem
    assert sim.store.list_grades(client_id=app["client_id"]) == []
