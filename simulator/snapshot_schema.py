"""Is a snapshot loadable? ``schemas/snapshot.schema.json`` defines the document; this checks
a document against it (jsonschema, worded by ``bodies.problems_of`` like every control-API
body) and then, in plain code, what a schema cannot state: which format and version to read,
the roster (its own schema and rules), the apps (an app registration's rules) and the
references and agreements between records.

Every problem is a ``SnapshotProblem`` with the JSON path of the offending value
(``$.grades[3].user_id``); at most ``MAX_PROBLEMS`` are listed and the rest counted. No Flask.
"""

from __future__ import annotations

import functools
import json
import math
from importlib import resources
from typing import Any, Callable, Iterable, Iterator, NamedTuple

import jsonschema

from .apps import normalize_app
from .bodies import problems_of
from .clock import MAX_OFFSET_S
from .errors import BadRequest
from .jsontext import described, ecma_validator, json_path, shown
from .roster import validate_roster
from .schema_precheck import SchemaCompiler

FORMAT = "clever-sim-snapshot"
VERSION = 1
MAX_PROBLEMS = 200  # reported at most; the rest are counted
_RECORD_LISTS = ("apps", "tokens", "grades", "grade_history", "schoology_assignments")
_APP_FIELDS = ("client_id", "client_secret", "name", "redirect_uris", "assignments_url",
               "scopes", "districts")


class SnapshotProblem(NamedTuple):
    """One problem in a snapshot: the JSON path of the offending value and what is wrong."""

    path: str
    message: str


def schema_text() -> str:
    """``schemas/snapshot.schema.json`` as shipped: the definition of the snapshot format."""
    return resources.files("simulator.schemas").joinpath("snapshot.schema.json") \
        .read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def _schema() -> dict:
    """The schema, read and checked on first use (a simulator that never loads a snapshot
    never reads it), with every ``$ref`` replaced by its definition: jsonschema then does not
    look a reference up for each field of each record (a third of its time)."""
    schema = json.loads(schema_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return _inlined(schema, schema["$defs"])


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    """jsonschema: slow, but its errors name the keyword and the path every message needs."""
    return ecma_validator(jsonschema.Draft202012Validator)(_schema())


def proven_valid(doc: Any) -> bool:
    """Whether ``doc`` is proven to satisfy the schema by the compiled pre-check (the
    roster's too): a valid snapshot, the usual one, is never walked by jsonschema; any other
    is, for its messages."""
    return _precheck()(doc)


@functools.lru_cache(maxsize=1)
def _precheck() -> Callable[[Any], bool]:
    """Compiled on first use (a simulator that never loads a snapshot never builds it)."""
    return SchemaCompiler(_schema()).compile(_schema())


_NOTES = frozenset({"description", "title", "$comment"})  # a $ref's siblings that only annotate


def _inlined(node: Any, defs: dict) -> Any:
    """``node`` with each ``{"$ref": "#/$defs/x"}`` replaced by ``defs["x"]`` (inlined too).
    A ``$ref`` may sit only beside annotations, so the replacement means the same."""
    if isinstance(node, list):
        return [_inlined(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref")
    if ref is None:
        return {key: _inlined(value, defs) for key, value in node.items() if key != "$defs"}
    siblings = set(node) - {"$ref"}
    if not ref.startswith("#/$defs/") or not siblings <= _NOTES:
        raise ValueError(f"snapshot.schema.json: cannot inline {ref!r} beside {sorted(siblings)}")
    return {**_inlined(defs[ref[len("#/$defs/"):]], defs),
            **{key: node[key] for key in siblings}}


class _Problems:
    """Problems in the order found; at most MAX_PROBLEMS kept, the rest counted."""

    def __init__(self) -> None:
        self.kept: list[SnapshotProblem] = []
        self.more = 0

    def add(self, path: str, message: str) -> None:
        if len(self.kept) < MAX_PROBLEMS:
            self.kept.append(SnapshotProblem(path, message))
        else:
            self.more += 1

    def same(self, record: dict, key: str, want: Any, where: str, column: str) -> None:
        """A record inside a record repeats one of its ids: they must agree."""
        if key in record and record[key] != want:
            self.add(f"{where}.{key}", f"is {shown(record[key])} but {column} is {shown(want)}")


def validate(doc: Any) -> tuple[list[SnapshotProblem], int]:
    """The problems of a snapshot document (at most MAX_PROBLEMS) and how many more there are."""
    found = _Problems()
    if isinstance(doc, dict) and not _readable(doc, found):
        return found.kept, found.more  # another format or version: nothing else is worth reading
    bad: set[tuple[str, int]] = set()  # (list, index) of records the schema refused
    if not proven_valid(doc):
        for problem in problems_of(_noting_records(_validator().iter_errors(doc), bad),
                                   name=json_path, value_words=described):
            found.add(problem.field, f"{problem.problem} ({problem.hint})" if problem.hint
                      else problem.problem)
    if not isinstance(doc, dict):
        return found.kept, found.more
    offset = doc.get("clock_offset_s")
    if isinstance(offset, float) and math.isnan(offset):  # a Python caller's: JSON has no NaN
        found.add("$.clock_offset_s", f"must be a number of seconds from 0 to {MAX_OFFSET_S}, "
                                      "not NaN")
    _References(doc, bad, found).check()
    return found.kept, found.more


def _readable(doc: dict, found: _Problems) -> bool:
    """Format and version say which schema applies; a document of another one is not read."""
    if doc.get("format") != FORMAT:
        found.add("$.format", f"must be {FORMAT!r}, not {described(doc.get('format'))} "
                              "(is this a clever-sim snapshot?)")
        return False
    version = doc.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        found.add("$.version", f"must be a whole number, not {described(version)}")
        return False
    if version != VERSION:
        newer = " (written by a newer clever-sim: upgrade this one)" if version > VERSION else ""
        found.add("$.version", f"is {version}; this clever-sim reads version {VERSION}{newer}")
        return False
    return True


def _noting_records(errors: Iterable[jsonschema.ValidationError],
                    bad: set[tuple[str, int]]) -> Iterator[jsonschema.ValidationError]:
    """The errors, noting each record they are in: only records the schema accepts are used
    in the reference checks (their fields have the types those checks read)."""
    for error in errors:
        path = error.absolute_path
        if len(path) >= 2 and path[0] in _RECORD_LISTS and isinstance(path[1], int):
            bad.add((path[0], path[1]))
        yield error


class _References:
    """What the schema cannot say: every reference resolves, ids appear once, records agree."""

    def __init__(self, doc: dict, bad: set[tuple[str, int]], found: _Problems):
        self.doc, self.bad, self.found = doc, bad, found
        self.roster_ok = False  # the checks against the roster run only on a valid one
        self.districts: set[str] = set()
        self.users: dict[str, dict] = {}
        self.sections: set[str] = set()
        self.app_districts: dict[str, set[str]] = {}
        self.apps_ok = False  # the checks against $.apps run only when every app is valid
        self.refused_grades: set[str] = set()  # ids of grades the schema refused

    def records(self, key: str) -> Iterator[tuple[str, dict]]:
        """(path, record) of each record of ``$.key`` that the schema accepted."""
        value = self.doc.get(key)
        for i, record in enumerate(value if isinstance(value, list) else []):
            if (key, i) not in self.bad:
                yield f"$.{key}[{i}]", record

    def check(self) -> None:
        """Every check, in the order of the document's parts."""
        self.roster()
        self.apps()
        self.tokens()
        grade_versions = self.grades()
        self.history(grade_versions)
        self.links()

    def roster(self) -> None:
        """The roster's own schema and rules (``clever-sim fixtures validate``), under $.roster."""
        roster = self.doc.get("roster")
        if not isinstance(roster, dict):
            return  # the schema said so
        problems = validate_roster(roster)
        for problem in problems:
            self.found.add("$.roster" + problem.path[1:], problem.message)
        if not problems:
            self.roster_ok = True
            self.districts = {d["id"] for d in roster["districts"]}
            self.users = {u["id"]: u for u in roster["users"]}
            self.sections = {s["id"] for s in roster["sections"]}

    def apps(self) -> None:
        """The rules of an app registration, and each client id once."""
        add = self.found.add
        apps = self.doc.get("apps")
        for where, app in self.records("apps"):
            if app["client_id"] in self.app_districts:
                add(f"{where}.client_id", f"{app['client_id']!r} appears twice")
                continue
            own = app["districts"]
            known = sorted(self.districts) if self.roster_ok else \
                [d for d in own if isinstance(d, str)] if isinstance(own, list) else []
            try:
                normalize_app({k: app[k] for k in _APP_FIELDS if k in app}, known, None,
                              app["created"])
            except BadRequest as exc:
                for e in exc.errors:
                    add(f"{where}.{e.field}", e.problem)
                continue
            self.app_districts[app["client_id"]] = set(app["districts"])
        self.apps_ok = isinstance(apps, list) and len(self.app_districts) == len(apps)

    def tokens(self) -> None:
        """A token's app, district and (il tokens) user exist and agree; each token once."""
        add = self.found.add
        seen: set[str] = set()
        for where, tok in self.records("tokens"):
            if tok["access_token"] in seen:
                add(f"{where}.access_token", "appears twice")
            seen.add(tok["access_token"])
            if self.apps_ok and tok["client_id"] not in self.app_districts:
                add(f"{where}.client_id", f"no app {tok['client_id']!r} in $.apps")
            if self.roster_ok and tok["district_id"] not in self.districts:
                add(f"{where}.district_id", f"no district {tok['district_id']!r} in $.roster.districts")
            if tok["kind"] == "district":
                if self.apps_ok and self.roster_ok and tok["client_id"] in self.app_districts \
                        and tok["district_id"] in self.districts \
                        and tok["district_id"] not in self.app_districts[tok["client_id"]]:
                    add(f"{where}.district_id", f"the app {tok['client_id']!r} is not connected "
                                                f"to district {tok['district_id']!r}")
            elif self.roster_ok:
                user = self.users.get(tok["user_id"])
                if user is None:
                    add(f"{where}.user_id", f"no user {tok['user_id']!r} in $.roster.users")
                elif user["district"] != tok["district_id"]:
                    add(f"{where}.district_id", f"is {tok['district_id']!r} but the user's "
                                                f"district is {user['district']!r}")

    def grades(self) -> dict[str, int]:
        """One grade per (app, student, assignment), of a student and an app that exist.
        → each grade's current version, by id."""
        add, same = self.found.add, self.found.same
        versions: dict[str, int] = {}
        seen_seq: set[int] = set()
        seen_keys: set[tuple[str, str, str]] = set()
        grades = self.doc.get("grades")
        self.refused_grades = {g["id"] for i, g in enumerate(grades if isinstance(grades, list) else [])
                               if ("grades", i) in self.bad and isinstance(g, dict)
                               and isinstance(g.get("id"), str)}
        for where, grade in self.records("grades"):
            if grade["id"] in versions:
                add(f"{where}.id", f"grade id {grade['id']!r} appears twice")
                continue
            versions[grade["id"]] = grade["version"]
            if grade["seq"] in seen_seq:
                add(f"{where}.seq", f"seq {grade['seq']} appears twice")
            seen_seq.add(grade["seq"])
            key = (grade["client_id"], grade["user_id"], grade["assignment_id"])
            if key in seen_keys:
                add(where, "a second grade for the same app, student and assignment "
                           "(there is one current grade per triple; older ones go in grade_history)")
            seen_keys.add(key)
            # a grade's app need not be in $.apps: deleting an app keeps its grades (and its
            # links), so a snapshot of the simulator holds them and has to load again
            if self.roster_ok:
                user = self.users.get(grade["user_id"])
                if user is None:
                    add(f"{where}.user_id", f"no user {grade['user_id']!r} in $.roster.users")
                elif "student" not in user["roles"]:
                    add(f"{where}.user_id", f"{grade['user_id']!r} is not a student")
                elif user["district"] != grade["district_id"]:
                    add(f"{where}.district_id", f"is {grade['district_id']!r} but the student's "
                                                f"district is {user['district']!r}")
            record, rwhere = grade["record"], f"{where}.record"
            same(record, "id", grade["id"], rwhere, "the grade's id")
            same(record, "userID", grade["user_id"], rwhere, "the grade's user_id")
            same(record, "assignmentID", grade["assignment_id"], rwhere, "the grade's assignment_id")
            same(record, "client_id", grade["client_id"], rwhere, "the grade's client_id")
            same(record, "version", grade["version"], rwhere, "the grade's version")
        return versions

    def history(self, grade_versions: dict[str, int]) -> None:
        """Every version belongs to a grade of the snapshot, once, and is not past its current one."""
        add, same = self.found.add, self.found.same
        seen_seq: set[int] = set()
        seen_versions: set[tuple[str, int]] = set()
        for where, entry in self.records("grade_history"):
            if entry["seq"] in seen_seq:
                add(f"{where}.seq", f"seq {entry['seq']} appears twice")
            seen_seq.add(entry["seq"])
            current = grade_versions.get(entry["grade_id"])
            if current is None and entry["grade_id"] in self.refused_grades:
                continue  # its grade is reported already
            if current is None:
                add(f"{where}.grade_id", f"no grade {entry['grade_id']!r} in $.grades")
            elif entry["version"] > current:
                add(f"{where}.version", f"is {entry['version']} but the grade's current "
                                        f"version is {current}")
            if (entry["grade_id"], entry["version"]) in seen_versions:
                add(f"{where}.version", f"version {entry['version']} of grade "
                                        f"{entry['grade_id']!r} appears twice")
            seen_versions.add((entry["grade_id"], entry["version"]))
            rwhere = f"{where}.record"
            same(entry["record"], "id", entry["grade_id"], rwhere, "the entry's grade_id")
            same(entry["record"], "version", entry["version"], rwhere, "the entry's version")

    def links(self) -> None:
        """A link is of a section of the roster, once (its app may be a deleted one, as grades')."""
        add, same = self.found.add, self.found.same
        seen: set[str] = set()
        seen_keys: set[tuple[str, str, str]] = set()
        for where, link in self.records("schoology_assignments"):
            if link["id"] in seen:
                add(f"{where}.id", f"link id {link['id']!r} appears twice")
            seen.add(link["id"])
            key = (link["section_id"], link["client_id"], link["assignment_id"])
            if key in seen_keys:
                add(where, "a second link of the same assignment in the same section for the same app")
            seen_keys.add(key)
            if self.roster_ok and link["section_id"] not in self.sections:
                add(f"{where}.section_id", f"no section {link['section_id']!r} in $.roster.sections")
            dwhere = f"{where}.data"
            for key_name in ("id", "section_id", "client_id", "assignment_id"):
                same(link["data"], key_name, link[key_name], dwhere, f"the link's {key_name}")
