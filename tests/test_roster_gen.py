"""The roster generator (``clever-sim fixtures generate``): valid, exact, deterministic, varied."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, settings, strategies as st

from simulator.app import create_app
from simulator.cli import main
from simulator.roster import load_roster, validate_roster
from simulator.roster_gen import GenerateError, ascii_slug, generate_roster, write_roster
from conftest import bearer

SMALL = {"schools": 6, "teachers": 40, "students": 400, "sections": 90}


def role_data(user: dict) -> dict:
    return next(iter(user["roles"].values()))


@pytest.fixture(scope="module")
def small() -> dict:
    return generate_roster(seed=5, **SMALL)


def test_generated_roster_is_valid_with_exact_counts(small):
    assert validate_roster(small) == []
    roles = Counter(next(iter(u["roles"])) for u in small["users"])
    assert (len(small["schools"]), roles["teacher"], roles["student"], len(small["sections"])) == \
        (SMALL["schools"], SMALL["teachers"], SMALL["students"], SMALL["sections"])
    # plus a principal per school, the district admin and a contact per 10 students
    assert (roles["staff"], roles["district_admin"], roles["contact"]) == (SMALL["schools"], 1, 40)
    assert len(small["districts"]) == 1 and len(small["terms"]) == 1
    assert small["apps"][0]["districts"] == [small["districts"][0]["id"]]


def test_same_seed_same_bytes_other_seed_other_roster(tmp_path):
    def text(seed: int) -> str:
        out = tmp_path / f"r{seed}.json"
        with open(out, "w", encoding="utf-8") as fh:
            write_roster(generate_roster(seed=seed, **SMALL), fh)
        return out.read_text(encoding="utf-8")

    assert text(1) == text(1)
    assert text(1) != text(2)
    assert json.loads(text(1)) == generate_roster(seed=1, **SMALL)


@pytest.mark.parametrize("varied, per_student_counts", [(False, {3}), (True, {3, 4})])
def test_enrollments_hit_the_requested_total_inside_each_school(varied, per_student_counts):
    doc = generate_roster(seed=3, schools=4, teachers=30, students=300, sections=80, enrollments=900,
                          varied=varied)
    assert sum(len(s["students"]) for s in doc["sections"]) == 900
    users = {u["id"]: u for u in doc["users"]}
    per_student = Counter(sid for s in doc["sections"] for sid in s["students"])
    # 900 / 300 spread evenly; varied: over the 294 students who are in a section
    assert set(per_student.values()) == per_student_counts
    assert len(per_student) == (294 if varied else 300)
    for s in doc["sections"]:
        assert len(set(s["students"])) == len(s["students"])
        assert all(role_data(users[sid])["school"] == s["school"] for sid in s["students"])
        teacher = users[s["teacher"]]
        assert s["teacher"] in s["teachers"] and role_data(teacher)["school"] == s["school"]


def test_default_enrollments_follow_clevers_sandbox_ratio():
    doc = generate_roster(seed=4, schools=3, teachers=30, students=200, sections=60)
    total = sum(len(s["students"]) for s in doc["sections"])
    assert total == round(200 * 8.15)  # 20 sections per school: nobody is capped


def test_teaching_loads_are_even_and_schools_differ_in_size(small):
    loads = Counter(s["teacher"] for s in small["sections"])
    assert max(loads.values()) - min(loads.values()) <= 1
    sizes = Counter(role_data(u)["school"] for u in small["users"] if "student" in u["roles"])
    assert len(set(sizes.values())) > 1


def test_names_are_varied_and_non_ascii_emails_and_usernames_are_ascii_and_unique(small):
    names = [(u["name"]["first"], u["name"]["last"]) for u in small["users"]]
    assert len(set(names)) > len(names) * 0.8
    assert sum(not (f + l).isascii() for f, l in names) > len(names) * 0.15
    assert any(any(ch in (f + l) for ch in "'-") or " " in l for f, l in names)
    emails = [u["email"] for u in small["users"] if u.get("email")]
    assert all(e.isascii() for e in emails) and len(set(emails)) == len(emails)
    usernames = [role_data(u)["credentials"]["district_username"] for u in small["users"]
                 if "credentials" in role_data(u) and "staff" not in u["roles"]]
    assert len(set(usernames)) == len(usernames)
    assert ascii_slug("Núñez-O'Brien") == "nunezobrien" and ascii_slug("王") == ""
    assert ascii_slug("José Núñez") == "josenunez"


def test_varied_mix_has_every_optional_and_nullable_person_shape(small):
    users = small["users"]
    students = [u for u in users if "student" in u["roles"]]
    in_sections = {sid for s in small["sections"] for sid in s["students"]}
    assert [i for i, u in enumerate(students) if "email" not in u] == list(range(7, 400, 20))
    assert all("email" not in u["roles"]["student"] for u in students if "email" not in u)
    assert [i for i, u in enumerate(students) if u["id"] not in in_sections] == list(range(11, 400, 50))
    assert any("middle" not in u["name"] for u in users) and any("middle" in u["name"] for u in users)
    both = [u for u in users if set(u["roles"]) == {"teacher", "staff"}]
    assert len(both) == 2 and all(u["roles"]["staff"]["schools"] == u["roles"]["teacher"]["schools"]
                                  for u in both)
    assert sum(len(u["roles"]["teacher"]["schools"]) == 2 for u in users if "teacher" in u["roles"]) >= 2
    assert sum(len(s["teachers"]) > 1 for s in small["sections"]) > 0  # co-teachers
    principals = [u for u in users if set(u["roles"]) == {"staff"}]
    assert [u["roles"]["staff"]["schools"] for u in principals] == [[s["id"]] for s in small["schools"]]
    assert [f'{u["name"]["first"]} {u["name"]["last"]}' for u in principals] == [
        s["principal"]["name"] for s in small["schools"]]
    [admin] = [u for u in users if "district_admin" in u["roles"]]
    assert admin["roles"]["district_admin"]["legacy_id"] == small["districts"][0]["district_contact"]["id"]
    contacts = [u for u in users if "contact" in u["roles"]]
    assert [c["roles"]["contact"]["student_relationships"][0]["student"] for c in contacts] == [
        s["id"] for s in students[::10]]
    assert [c["email"] is None for c in contacts] == [i % 3 == 2 for i in range(len(contacts))]


def test_plain_mix_is_teachers_and_students_with_email_in_sections():
    doc = generate_roster(seed=5, varied=False, **SMALL)
    assert validate_roster(doc) == []
    assert Counter(tuple(u["roles"]) for u in doc["users"]) == {("teacher",): 40, ("student",): 400}
    assert all(u.get("email") for u in doc["users"])


def test_several_districts_keep_every_reference_inside_its_district():
    doc = generate_roster(seed=9, districts=3, schools=7, teachers=21, students=120, sections=30)
    assert validate_roster(doc) == []
    assert len(doc["districts"]) == 3 and len(doc["terms"]) == 3
    assert {s["district"] for s in doc["schools"]} == {d["id"] for d in doc["districts"]}


@pytest.mark.parametrize("sizes", [
    {"schools": 1, "teachers": 0, "students": 0, "sections": 0},
    {"schools": 5, "teachers": 2, "students": 10, "sections": 7},     # fewer teachers than schools
    {"schools": 2, "teachers": 3, "students": 50, "sections": 1},     # students capped by sections
    {"schools": 3, "teachers": 9, "students": 0, "sections": 12},     # empty sections
])
def test_edge_sizes_are_still_valid(sizes):
    doc = generate_roster(seed=0, **sizes)
    assert validate_roster(doc) == []
    assert len(doc["sections"]) == sizes["sections"]


@pytest.mark.parametrize("sizes, problem", [
    ({"schools": 2, "teachers": 0, "students": 5, "sections": 3}, "sections need teachers"),
    ({"schools": 0, "teachers": 1, "students": 1, "sections": 0}, "--schools"),
    ({"schools": 2, "teachers": 1, "students": 1, "sections": 0, "districts": 3}, "cannot exceed"),
])
def test_impossible_sizes_are_refused_in_plain_words(sizes, problem):
    with pytest.raises(GenerateError, match=problem):
        generate_roster(seed=0, **sizes)


@settings(max_examples=12, deadline=None)
@given(schools=st.integers(1, 6), teachers=st.integers(0, 25), students=st.integers(0, 60),
       sections=st.integers(0, 20), districts=st.integers(1, 3), seed=st.integers(0, 2**31))
def test_any_possible_sizes_give_a_valid_roster(schools, teachers, students, sections, districts, seed):
    if sections and not teachers:
        sections = 0
    districts = min(districts, schools)
    doc = generate_roster(seed=seed, schools=schools, teachers=teachers, students=students,
                          sections=sections, districts=districts)
    assert validate_roster(doc) == []


def test_cli_generate_prints_a_roster_that_validates_and_serves(tmp_path):
    runner = CliRunner()
    args = ["fixtures", "generate", "--schools", "3", "--teachers", "12", "--students", "90",
            "--sections", "20", "--seed", "7"]
    first = runner.invoke(main, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(main, args)
    out = tmp_path / "gen.json"
    assert runner.invoke(main, args + ["-o", str(out)]).exit_code == 0
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert validate_roster(doc) == [] and len(doc["sections"]) == 20
    assert out.read_text(encoding="utf-8") in first.output and first.output == second.output
    check = runner.invoke(main, ["fixtures", "validate", str(out)])
    assert check.exit_code == 0 and "valid (1 districts, 3 schools" in check.output
    assert {r for u in doc["users"] for r in u["roles"]} == {
        "student", "teacher", "staff", "district_admin", "contact"}
    plain_out = tmp_path / "plain.json"
    assert runner.invoke(main, args + ["--plain", "-o", str(plain_out)]).exit_code == 0
    plain = json.loads(plain_out.read_text(encoding="utf-8"))
    assert {r for u in plain["users"] for r in u["roles"]} == {"student", "teacher"}
    assert len(plain["users"]) == 12 + 90 and validate_roster(plain) == []
    bad = runner.invoke(main, ["fixtures", "generate", "--teachers", "0", "--sections", "4"])
    assert bad.exit_code == 2 and "sections need teachers" in bad.output

    app = create_app({"DB": ":memory:", "ROSTER": str(out), "SECRET_KEY": "t"}, environ={})
    try:
        sim = app.extensions["clever_sim"]
        assert sim.roster == doc  # stored whole, read back in the file's order
        token = sim.store.district_tokens(doc["apps"][0]["client_id"], doc["districts"][0]["id"])[0]
        body = app.test_client().get("/v3.0/users?limit=50",
                                     headers=bearer(token.access_token)).get_json()
        assert len(body["data"]) == 50 and any(link["rel"] == "next" for link in body["links"])
    finally:
        app.extensions["clever_sim"].close()


def test_cli_writes_utf8_to_a_pipe_whatever_the_locale(tmp_path):
    out = subprocess.run([sys.executable, "-m", "simulator.cli", "fixtures", "generate", "--seed", "1",
                          "--schools", "2", "--teachers", "6", "--students", "30", "--sections", "6"],
                         capture_output=True, env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"},
                         cwd=Path(__file__).resolve().parent.parent, check=True)
    path = tmp_path / "piped.json"
    path.write_bytes(out.stdout)
    assert load_roster(path)["districts"]
    assert b"generated 1 districts, 2 schools" in out.stderr
