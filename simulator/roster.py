"""The roster fixture: load, check and locate the JSON file the simulator serves as Clever.

A fixture is checked in two passes and every problem is reported at once, each with the
JSON path of the offending value (``$.users[3].roles.student.school``):

1. the JSON Schema ``simulator/schemas/roster.schema.json`` (shapes and types);
2. only when the schema passes, the referential rules (unique ids, references to
   districts/schools/terms/users inside the same district, section member roles,
   grading scales, app districts and client ids).

``load_roster`` raises ``RosterError`` on any problem, so a bad fixture never half-loads.
Plain Python: no Flask here.
"""

from __future__ import annotations

import copy
import functools
import importlib.resources
import json
import os
import random
import re
import secrets
from pathlib import Path
from typing import Any, Iterable, NamedTuple

import jsonschema

__all__ = [
    "RosterProblem",
    "RosterError",
    "validate_roster",
    "load_roster",
    "default_roster_path",
    "load_schema",
    "new_object_id",
]

_SCHEMA_FILE = "roster.schema.json"
_DEFAULT_FIXTURE = "default.json"
_RECORD_KINDS = ("districts", "schools", "terms", "users", "sections")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_MESSAGE = 300


class RosterProblem(NamedTuple):
    """One problem in a roster fixture: the JSON path of the offending value and what is wrong."""

    path: str
    message: str


class RosterError(Exception):
    """A roster fixture that cannot be loaded; ``problems`` lists every problem found."""

    def __init__(self, problems: Iterable[RosterProblem]):
        self.problems: list[RosterProblem] = list(problems)
        super().__init__(str(self))

    def __str__(self) -> str:
        return "\n".join(f"{p.path}: {p.message}" for p in self.problems)


# --- locating packaged files ----------------------------------------------------------

def _source_root() -> Path:
    """The directory holding the ``simulator`` package (the repo root in a checkout)."""
    return Path(__file__).resolve().parent.parent


def default_roster_path() -> Path:
    """Path of the packaged default roster (``simulator.fixtures`` or ``<checkout>/fixtures``)."""
    try:
        candidate = importlib.resources.files("simulator.fixtures") / _DEFAULT_FIXTURE
        if isinstance(candidate, Path) and candidate.is_file():
            return candidate
    except Exception:  # noqa: BLE001 - not installed as a wheel: fall back to the checkout
        pass
    return _source_root() / "fixtures" / _DEFAULT_FIXTURE


@functools.lru_cache(maxsize=1)
def _schema_text() -> str:
    try:
        return (importlib.resources.files("simulator.schemas") / _SCHEMA_FILE).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - fall back to the file next to this module
        return (Path(__file__).resolve().parent / "schemas" / _SCHEMA_FILE).read_text(encoding="utf-8")


def load_schema() -> dict:
    """The roster JSON Schema (draft 2020-12) as a fresh dict."""
    return json.loads(_schema_text())


@functools.lru_cache(maxsize=1)
def _validator() -> jsonschema.protocols.Validator:
    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema)


def new_object_id(rng: random.Random | None = None) -> str:
    """A new Clever-style object id: 24 lowercase hex characters (deterministic with ``rng``)."""
    if rng is None:
        return secrets.token_hex(12)
    return f"{rng.getrandbits(96):024x}"


# --- paths and messages ---------------------------------------------------------------

def _json_path(parts: Iterable[Any]) -> str:
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(str(part)):
            out.append(f".{part}")
        else:
            out.append("[" + json.dumps(str(part), ensure_ascii=False) + "]")
    return "".join(out)


def _path_key(parts: Iterable[Any]) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def _schema_message(error: jsonschema.ValidationError) -> str:
    custom = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    template = custom.get(error.validator) if isinstance(custom, dict) else None
    if template:
        values = {"instance": _short(error.instance), "type": _json_type(error.instance)}
        return re.sub(r"\{(instance|type)\}", lambda m: values[m.group(1)], template)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(repr(t) for t in expected) if isinstance(expected, list) else repr(expected)
        return f"{_short(error.instance)} is not of type {expected}"
    message = error.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 1] + "…"
    return message


# --- validation -----------------------------------------------------------------------

def _schema_problems(doc: object) -> list[RosterProblem]:
    errors = sorted(
        _validator().iter_errors(doc),
        key=lambda e: (_path_key(e.absolute_path), _schema_message(e)),
    )
    return [RosterProblem(_json_path(e.absolute_path), _schema_message(e)) for e in errors]


def _role_of(user: dict) -> str:
    return next(iter(user["roles"]))


def _user_label(user: dict) -> str:
    name = user.get("name", {})
    return f"{user['id']!r} ({name.get('first', '')} {name.get('last', '')})".replace(" )", ")")


def _referential_problems(doc: dict) -> list[RosterProblem]:
    found: list[tuple[tuple, RosterProblem]] = []

    def report(parts: tuple, message: str) -> None:
        found.append((_path_key(parts), RosterProblem(_json_path(parts), message)))

    # Ids are unique across every kind of record.
    first_seen: dict[str, tuple] = {}
    index: dict[str, dict[str, dict]] = {kind: {} for kind in _RECORD_KINDS}
    for kind in _RECORD_KINDS:
        for i, record in enumerate(doc[kind]):
            rid = record["id"]
            here = (kind, i, "id")
            if rid in first_seen:
                report(here, f"duplicate id {rid!r}: already used at {_json_path(first_seen[rid])}")
                continue
            first_seen[rid] = here
            index[kind][rid] = record

    districts, schools, terms, users = index["districts"], index["schools"], index["terms"], index["users"]

    def check_district(kind: str, i: int, record: dict) -> str | None:
        """Report an unknown district; return the record's district id when it exists."""
        did = record["district"]
        if did not in districts:
            report((kind, i, "district"), f"unknown district {did!r}: no district has this id")
            return None
        return did

    def check_school(parts: tuple, sid: str, did: str | None, owner: str) -> None:
        school = schools.get(sid)
        if school is None:
            report(parts, f"unknown school {sid!r}: no school has this id")
        elif did is not None and school["district"] in districts and school["district"] != did:
            report(parts, f"school {sid!r} ({school['name']}) is in district {school['district']!r}, "
                          f"but the {owner} is in district {did!r}")

    def check_no_repeats(parts: tuple, ids: list[str], what: str) -> None:
        seen: dict[str, int] = {}
        for j, uid in enumerate(ids):
            if uid in seen:
                report(parts + (j,), f"{what} {uid!r} is listed twice (first at {_json_path(parts + (seen[uid],))})")
            else:
                seen[uid] = j

    # Districts: grading config ids are unique within the district.
    for i, district in enumerate(doc["districts"]):
        schoology = district.get("schoology") or {}
        for key in ("grading_periods", "grading_categories", "grading_scales"):
            seen_ids: dict[str, int] = {}
            for j, item in enumerate(schoology.get(key, [])):
                parts = ("districts", i, "schoology", key, j, "id")
                if item["id"] in seen_ids:
                    report(parts, f"duplicate {key[:-1].replace('_', ' ')} id {item['id']!r}: already used at "
                                  f"{_json_path(parts[:4] + (seen_ids[item['id']], 'id'))}")
                else:
                    seen_ids[item["id"]] = j

    for i, school in enumerate(doc["schools"]):
        check_district("schools", i, school)

    for i, term in enumerate(doc["terms"]):
        check_district("terms", i, term)

    for i, user in enumerate(doc["users"]):
        did = check_district("users", i, user)
        role = _role_of(user)
        data = user["roles"][role]
        if "school" in data:
            check_school(("users", i, "roles", role, "school"), data["school"], did, "user")
        for j, sid in enumerate(data.get("schools", [])):
            check_school(("users", i, "roles", role, "schools", j), sid, did, "user")

    def check_member(parts: tuple, uid: str, want: str, did: str | None) -> None:
        user = users.get(uid)
        if user is None:
            report(parts, f"unknown {want} {uid!r}: no user has this id")
            return
        role = _role_of(user)
        if role != want:
            report(parts, f"user {_user_label(user)} is a {role}, not a {want}")
        if did is not None and user["district"] in districts and user["district"] != did:
            report(parts, f"{want} {_user_label(user)} is in district {user['district']!r}, "
                          f"but the section is in district {did!r}")

    for i, section in enumerate(doc["sections"]):
        did = check_district("sections", i, section)
        check_school(("sections", i, "school"), section["school"], did, "section")
        if "term_id" in section:
            term = terms.get(section["term_id"])
            if term is None:
                report(("sections", i, "term_id"), f"unknown term {section['term_id']!r}: no term has this id")
            elif did is not None and term["district"] in districts and term["district"] != did:
                report(("sections", i, "term_id"), f"term {section['term_id']!r} ({term['name']}) is in district "
                                                   f"{term['district']!r}, but the section is in district {did!r}")
        teachers = section["teachers"]
        if section["teacher"] not in teachers:
            report(("sections", i, "teacher"), f"teacher {section['teacher']!r} is not listed in teachers "
                                               f"(the primary teacher must be one of the section's teachers)")
            check_member(("sections", i, "teacher"), section["teacher"], "teacher", did)
        for j, uid in enumerate(teachers):
            check_member(("sections", i, "teachers", j), uid, "teacher", did)
        for j, uid in enumerate(section["students"]):
            check_member(("sections", i, "students", j), uid, "student", did)
        check_no_repeats(("sections", i, "teachers"), teachers, "teacher")
        check_no_repeats(("sections", i, "students"), section["students"], "student")
        scale = (section.get("schoology") or {}).get("grading_scale")
        if scale is not None and did is not None:
            scales = ((districts[did].get("schoology") or {}).get("grading_scales") or [])
            if scale not in {s["id"] for s in scales}:
                known = ", ".join(repr(s["id"]) for s in scales) or "none"
                report(("sections", i, "schoology", "grading_scale"),
                       f"unknown grading scale {scale!r}: not among the grading_scales of district {did!r} "
                       f"(known: {known})")

    client_ids: dict[str, int] = {}
    for i, app in enumerate(doc["apps"]):
        for j, did in enumerate(app.get("districts", [])):
            if did not in districts:
                report(("apps", i, "districts", j), f"unknown district {did!r}: no district has this id")
        check_no_repeats(("apps", i, "districts"), app.get("districts", []), "district")
        cid = app["client_id"]
        if cid in client_ids:
            report(("apps", i, "client_id"), f"duplicate client_id {cid!r}: already used at "
                                             f"{_json_path(('apps', client_ids[cid], 'client_id'))}")
        else:
            client_ids[cid] = i

    found.sort(key=lambda item: item[0])  # stable: problems at one path keep rule order
    return [problem for _, problem in found]


def validate_roster(doc: object) -> list[RosterProblem]:
    """Every problem in a roster document (schema first, then references); empty means valid."""
    problems = _schema_problems(doc)
    if problems:
        return problems
    return _referential_problems(doc)  # type: ignore[arg-type]  # the schema proved it is a dict


# --- loading --------------------------------------------------------------------------

def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _read_json(path: Path) -> object:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise RosterError([RosterProblem("$", f"cannot read roster file {str(path)!r}: no such file")]) from None
    except UnicodeDecodeError as exc:
        raise RosterError([RosterProblem("$", f"roster file {str(path)!r} is not UTF-8 text "
                                              f"(byte offset {exc.start})")]) from None
    except OSError as exc:
        raise RosterError([RosterProblem("$", f"cannot read roster file {str(path)!r}: "
                                              f"{exc.strerror or exc}")]) from None

    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        doc = json.loads(text, object_pairs_hook=pairs, parse_constant=_reject_constant)
    except json.JSONDecodeError as exc:
        raise RosterError([RosterProblem(
            "$", f"roster file {str(path)!r} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        )]) from None
    except ValueError as exc:
        raise RosterError([RosterProblem("$", f"roster file {str(path)!r} is not valid JSON: {exc}")]) from None
    if duplicates:
        raise RosterError([
            RosterProblem("$", f"roster file {str(path)!r} repeats the key {key!r} inside one JSON object "
                               f"(the earlier value would be silently lost)")
            for key in dict.fromkeys(duplicates)
        ])
    return doc


def load_roster(source: str | os.PathLike | dict) -> dict:
    """Read (file path) or take (dict) a roster, check it, and return it; raise RosterError if bad."""
    if isinstance(source, dict):
        doc: object = copy.deepcopy(source)
    elif isinstance(source, (str, os.PathLike)):
        doc = _read_json(Path(source))
    else:
        raise TypeError(f"load_roster() takes a file path or a dict, not {type(source).__name__}")
    problems = validate_roster(doc)
    if problems:
        raise RosterError(problems)
    return doc  # type: ignore[return-value]  # validated: a dict
