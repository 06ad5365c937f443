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
import hashlib
import importlib.resources
import json
import os
import random
import re
import secrets
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from . import jsontext
from .schema_precheck import SchemaCompiler
from .ids import ROLE_WORDS, ROLES, legacy_role_ids

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "RosterProblem",
    "RosterError",
    "validate_roster",
    "load_roster",
    "default_roster_path",
    "load_schema",
    "new_object_id",
    "read_roster_bytes",
    "parse_roster_bytes",
    "check_roster",
    "load_roster_file",
    "file_digest",
]

_SCHEMA_FILE = "roster.schema.json"
_DEFAULT_FIXTURE = "default.json"
_RECORD_KINDS = ("districts", "schools", "terms", "courses", "users", "sections")
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

    def one_line(self) -> str:
        """What a command prints on its one line of stderr: the file's own problem as is
        (missing, not JSON, empty: no pointer to check a file that is not there), else the
        first problem, how many more, and the command that lists them all."""
        first = self.problems[0]
        if len(self.problems) == 1 and first.path == "$" and first.message.startswith(_ROSTER_FILE):
            return first.message
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        return (f"roster fixture is invalid: {first.path}: {first.message}{more}; "
                f"`clever-sim fixtures validate FILE` lists every problem")


# What this module says about the roster file as a whole (unreadable, not JSON, empty, ...).
_ROSTER_FILE = ("cannot read roster file ", "roster file ")


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
    """The roster schema's validator, with a fast ``items``: array items that a compiled
    check proves valid are skipped; only the others are walked by jsonschema, so every
    reported problem (path and message) is exactly jsonschema's own."""
    import jsonschema  # here, not at import: a restart checks no roster

    schema = load_schema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    compiler = SchemaCompiler(schema)
    plain_items = cls.VALIDATORS.get("items")

    def fast_items(validator, items, instance, item_schema):
        if plain_items is None or not isinstance(items, dict) or "prefixItems" in item_schema:
            if plain_items is not None:
                yield from plain_items(validator, items, instance, item_schema)
            return
        if not validator.is_type(instance, "array"):
            return
        valid = compiler.compile(items)
        for index, item in enumerate(instance):
            if not valid(item):
                yield from validator.descend(instance=item, schema=items, path=index)

    fast_cls = jsontext.ecma_validator(cls, {"items": fast_items})
    return fast_cls(schema)


def new_object_id(rng: random.Random | None = None) -> str:
    """A new Clever-style object id: 24 lowercase hex characters (deterministic with ``rng``)."""
    if rng is None:
        return secrets.token_hex(12)
    return f"{rng.getrandbits(96):024x}"


# --- paths and messages ---------------------------------------------------------------

def _path_key(parts: Iterable[Any]) -> tuple:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, str(p)) for p in parts)


def _short(value: Any, limit: int = 60) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _schema_message(error: jsonschema.ValidationError) -> str:
    custom = error.schema.get("x-messages", {}) if isinstance(error.schema, dict) else {}
    template = custom.get(error.validator) if isinstance(custom, dict) else None
    if template:
        values = {"instance": _short(error.instance), "type": jsontext.kind(error.instance)}
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
    return [RosterProblem(jsontext.json_path(e.absolute_path), _schema_message(e)) for e in errors]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # C0, DEL, C1


def _control_problem(what: str, value: Any, owner: str) -> str | None:
    """Why an id holding a control character is refused (docs/decisions.md), or None."""
    found = _CONTROL.search(value) if isinstance(value, str) else None
    if found is None:
        return None
    shown = '"' + "".join(f"\\u{ord(c):04x}" if _CONTROL.match(c) else json.dumps(c, ensure_ascii=False)[1:-1]
                          for c in value) + '"'  # as JSON, every control character as \\uXXXX
    return (f"{what} {shown} of {owner} holds a control character "
            f"(U+{ord(found.group()):04X} at index {found.start()}), which no id may hold (it "
            f"cannot be typed or seen in a URL or a page, and SQLite's JSON functions cut a text "
            f"at a NUL): remove it")


def _roles_text(user: dict) -> str:
    """"a teacher and a staff member": how messages name what a user is."""
    return " and ".join(ROLE_WORDS.get(r, repr(r)) for r in ROLES if r in user["roles"])


def _user_label(user: dict) -> str:
    name = user.get("name", {})
    return f"{user['id']!r} ({name.get('first', '')} {name.get('last', '')})".replace(" )", ")")


def _registration_problems(app: dict, districts: list[str]) -> list[tuple[str, str]]:
    """What ``POST /_sim/apps`` refuses in a roster's app, as (field, problem): ``serve``
    registers it by those rules, so a roster that broke one passed ``fixtures validate`` and
    then failed the start as "internal error: BadRequest" (a 300-character client_id)."""
    from .apps import normalize_app
    from .errors import SimError

    try:
        normalize_app(app, districts, None, "")
    except SimError as exc:
        return [(e.field, e.problem) for e in exc.errors]
    return []


def _field_parts(field: str) -> tuple:
    """``"redirect_uris[0]"`` -> ``("redirect_uris", 0)``: a request field as path parts."""
    found = re.fullmatch(r"(\w+)\[(\d+)\]", field)
    return (found.group(1), int(found.group(2))) if found else (field,)


def _referential_problems(doc: dict) -> list[RosterProblem]:
    found: list[tuple[tuple, RosterProblem]] = []

    def report(parts: tuple, message: str) -> None:
        found.append((_path_key(parts), RosterProblem(jsontext.json_path(parts), message)))

    # Ids are unique across every kind of record.
    first_seen: dict[str, tuple] = {}
    index: dict[str, dict[str, dict]] = {kind: {} for kind in _RECORD_KINDS}
    for kind in _RECORD_KINDS:
        for i, record in enumerate(doc.get(kind, ())):  # courses are optional
            rid = record["id"]
            here = (kind, i, "id")
            if rid in first_seen:
                report(here, f"duplicate id {rid!r}: already used at {jsontext.json_path(first_seen[rid])}")
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
                report(parts + (j,), f"{what} {uid!r} is listed twice (first at {jsontext.json_path(parts + (seen[uid],))})")
            else:
                seen[uid] = j

    def check_plain(parts: tuple, what: str, value: Any, owner: str) -> None:
        problem = _control_problem(what, value, owner)
        if problem is not None:
            report(parts, problem)

    # Districts: grading config ids are unique within the district.
    for i, district in enumerate(doc["districts"]):
        schoology = district.get("schoology") or {}
        contact = district.get("district_contact")
        if isinstance(contact, dict):
            check_plain(("districts", i, "district_contact", "id"), "district contact id",
                        contact.get("id"), f"district {district['id']!r}")
        for key in ("grading_periods", "grading_categories", "grading_scales"):
            seen_ids: dict[str, int] = {}
            for j, item in enumerate(schoology.get(key, [])):
                parts = ("districts", i, "schoology", key, j, "id")
                check_plain(parts, f"{key[:-1].replace('_', ' ')} id", item["id"],
                            f"district {district['id']!r}")
                if item["id"] in seen_ids:
                    report(parts, f"duplicate {key[:-1].replace('_', ' ')} id {item['id']!r}: already used at "
                                  f"{jsontext.json_path(parts[:4] + (seen_ids[item['id']], 'id'))}")
                else:
                    seen_ids[item["id"]] = j

    for i, school in enumerate(doc["schools"]):
        check_district("schools", i, school)

    for i, term in enumerate(doc["terms"]):
        check_district("terms", i, term)

    for i, user in enumerate(doc["users"]):
        did = check_district("users", i, user)
        roles = user["roles"]
        if "student" in roles and len(roles) > 1:
            others = ", ".join(r for r in roles if r != "student")
            report(("users", i, "roles"), f"a student holds no other role (this user is also {others}): "
                                          f"make the {others} role a separate user")
        for role, data in roles.items():
            if "school" in data:
                check_school(("users", i, "roles", role, "school"), data["school"], did, "user")
            for j, sid in enumerate(data.get("schools", [])):
                check_school(("users", i, "roles", role, "schools", j), sid, did, "user")

    # v2 ids (one per non-student role) are unique and never another record's id.
    legacy_seen: dict[str, str] = {}
    for i, user in enumerate(doc["users"]):
        for role, legacy in legacy_role_ids(user).items():
            parts = ("users", i, "roles", role, "legacy_id")
            given = "legacy_id" in user["roles"][role]
            if given:
                check_plain(parts, "v2 id", legacy, f"user {_user_label(user)}")
            where = jsontext.json_path(parts) if given else f"the v2 id derived for {jsontext.json_path(parts[:4])}"
            if legacy in legacy_seen:
                report(parts, f"v2 id {legacy!r} is used twice: {where} and {legacy_seen[legacy]}")
            elif legacy in first_seen:
                report(parts, f"v2 id {legacy!r} is also the id at {jsontext.json_path(first_seen[legacy])}: "
                              f"a v2 id names one record")
            else:
                legacy_seen[legacy] = where

    members = {uid: (user["roles"], user["district"]) for uid, user in users.items()}
    # Who may be listed where without a problem: the users holding a role in a district,
    # so a section whose every member is among them is passed in one set operation.
    holding: dict[tuple[str, str], set[str]] = {}
    for uid, (roles, did) in members.items():
        for role in roles:
            found_set = holding.get((role, did))
            if found_set is None:
                found_set = holding[(role, did)] = set()
            found_set.add(uid)

    def check_member(parts: tuple, uid: str, want: str, did: str | None,
                     owner: str = "section") -> None:
        user = users.get(uid)
        if user is None:
            report(parts, f"unknown {want} {uid!r}: no user has this id")
            return
        if want not in user["roles"]:
            report(parts, f"user {_user_label(user)} is {_roles_text(user)}, not a {want}")
        if did is not None and user["district"] in districts and user["district"] != did:
            report(parts, f"{want} {_user_label(user)} is in district {user['district']!r}, "
                          f"but the {owner} is in district {did!r}")

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
        for key, want in (("teachers", "teacher"), ("students", "student")):
            ids = section[key]
            fine = holding.get((want, did)) if did is not None else None
            for j, uid in enumerate(ids if fine is None or not fine.issuperset(ids) else ()):
                # Fast path: a known member of the right role in the section's district
                # (or an unknown district, which check_member would not report either).
                info = members.get(uid)
                if info is None or want not in info[0] or (
                        did is not None and info[1] != did and info[1] in districts):
                    check_member(("sections", i, key, j), uid, want, did)
            if len(set(ids)) != len(ids):
                check_no_repeats(("sections", i, key), ids, want)
        scale = (section.get("schoology") or {}).get("grading_scale")
        if scale is not None and did is not None:
            scales = ((districts[did].get("schoology") or {}).get("grading_scales") or [])
            if scale not in {s["id"] for s in scales}:
                known = ", ".join(repr(s["id"]) for s in scales) or "none"
                report(("sections", i, "schoology", "grading_scale"),
                       f"unknown grading scale {scale!r}: not among the grading_scales of district {did!r} "
                       f"(known: {known})")

    for i, user in enumerate(doc["users"]):
        links = (user["roles"].get("contact") or {}).get("student_relationships") or []
        for j, link in enumerate(links):
            check_member(("users", i, "roles", "contact", "student_relationships", j, "student"),
                         link["student"], "student",
                         user["district"] if user["district"] in districts else None, "contact")
        check_no_repeats(("users", i, "roles", "contact", "student_relationships"),
                         [link["student"] for link in links], "student")

    client_ids: dict[str, int] = {}
    for i, app in enumerate(doc["apps"]):
        for j, did in enumerate(app.get("districts", [])):
            if did not in districts:
                report(("apps", i, "districts", j), f"unknown district {did!r}: no district has this id")
        check_no_repeats(("apps", i, "districts"), app.get("districts", []), "district")
        cid = app["client_id"]
        check_plain(("apps", i, "client_id"), "client_id", cid, f"app {app.get('name', '')!r}")
        said = {key for key, _ in found}
        for field, problem in _registration_problems(app, list(districts)):
            where = ("apps", i, *_field_parts(field))  # "redirect_uris[0]": its list item
            if _path_key(where) not in said:  # one problem per field
                report(where, problem)
        if cid in client_ids:
            report(("apps", i, "client_id"), f"duplicate client_id {cid!r}: already used at "
                                             f"{jsontext.json_path(('apps', client_ids[cid], 'client_id'))}")
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

def read_roster_bytes(path: str | os.PathLike) -> bytes:
    """The roster file's bytes; RosterError (with the reason) when it cannot be read."""
    path = Path(path)
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise RosterError([RosterProblem("$", f"cannot read roster file {str(path)!r}: no such file")]) from None
    except OSError as exc:
        raise RosterError([RosterProblem("$", f"cannot read roster file {str(path)!r}: "
                                              f"{exc.strerror or exc}")]) from None


def _roster_text(raw: bytes, path: Path) -> str:
    """A roster file's bytes as text (UTF-8, optional BOM, universal newlines)."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RosterError([RosterProblem("$", f"roster file {str(path)!r} is not UTF-8 text "
                                              f"(byte offset {exc.start})")]) from None
    if "\r" in text:  # as text-mode reading does (universal newlines): same line numbers
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def parse_roster_bytes(raw: bytes, path: str | os.PathLike) -> object:
    """Decode (UTF-8, optional BOM) and parse a roster file's bytes, as ``_read_json`` does."""
    path = Path(path)
    text = _roster_text(raw, path)
    del raw
    return _parse_json_text(text, path)


def _read_json(path: Path) -> object:
    return parse_roster_bytes(read_roster_bytes(path), path)


def file_digest(path: str | os.PathLike, salt: bytes = b"") -> str | None:
    """sha256 of ``salt`` + the file's bytes, read in blocks; None when it cannot be read."""
    digest = hashlib.sha256(salt)
    try:
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def load_roster_file(path: str | os.PathLike, *, salt: bytes = b"",
                     unless_digest: str | None = None) -> tuple[dict | None, str]:
    """(checked roster, digest of ``salt`` + the file's bytes); the roster is None when the
    digest equals ``unless_digest`` (the file is unchanged: nothing parsed or checked).

    The bytes are dropped before parsing, so at most the text and the document are held.
    """
    if unless_digest is not None:  # a streamed digest first: an unchanged file is never held
        if file_digest(path, salt) == unless_digest:  # None when unreadable: reported below
            return None, unless_digest
    raw = read_roster_bytes(path)
    digest = hashlib.sha256(salt)
    digest.update(raw)
    digest = digest.hexdigest()
    path = Path(path)
    text = _roster_text(raw, path)
    raw = b""
    doc = _parse_json_text(text, path)
    del text  # the checks run on the document alone
    return check_roster(doc), digest


def _parse_json_text(text: str, path: Path) -> object:
    if not text.strip():  # e.g. left by a `fixtures generate > file` that failed
        raise RosterError([RosterProblem(
            "$", f"roster file {str(path)!r} is empty: a roster is one JSON object "
                 "(`clever-sim fixtures show-default` prints the packaged one to start from)")])
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict:
        out = dict(items)
        if len(out) != len(items):  # rare: find which keys repeat, in order
            seen: set[str] = set()
            for key, _ in items:
                if key in seen:
                    duplicates.append(key)
                seen.add(key)
        return out

    try:
        doc = jsontext.loads(text, object_pairs_hook=pairs)
    except jsontext.JSONTextError as exc:
        raise RosterError([RosterProblem(
            exc.path(), f"roster file {str(path)!r} is not valid JSON: {exc.problem}")]) from None
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
    return check_roster(doc)


def check_roster(doc: object) -> dict:
    """``doc`` itself when valid (not copied); RosterError listing every problem otherwise."""
    problems = validate_roster(doc)
    if problems:
        raise RosterError(problems)
    return doc  # type: ignore[return-value]  # validated: a dict


# --- streamed loading -------------------------------------------------------------------
# A big roster is read a record at a time: each record is checked against its item schema
# (the compiled pre-check) as it is read and handed over in batches to be stored, and only
# what the reference checks read is kept (``_slim``). Anything the stream does not prove
# valid (a problem, or a shape it does not handle) raises ``NotStreamable``: the caller
# rolls back what it stored and loads the file whole, which reports every problem with the
# same paths and messages as always. Streamed or whole, a roster is accepted exactly when
# ``load_roster_file`` accepts it.

_STREAMED_KINDS = ("districts", "schools", "terms", "courses", "users", "sections", "apps")
_CHUNK = 1 << 20
_WHITESPACE = " \t\n\r"
_ROLE_REFS = ("school", "schools", "legacy_id")  # what the reference checks read of a role


class NotStreamable(Exception):
    """The streamed read did not prove the roster valid: load the file whole instead."""


def _streamable(schema: Any) -> bool:
    """Whether a top-level list's schema is checked exactly by its item schema plus the
    same schema over a list of the first item alone (``RosterStream.finish``)."""
    if not isinstance(schema, dict) or not isinstance(schema.get("items"), dict):
        return False
    known = {"type", "items", "minItems", "description", "x-messages", "$comment"}
    return set(schema) <= known and schema.get("minItems", 0) in (0, 1) \
        and schema.get("type", "array") == "array"


def _slim(kind: str, record: dict, interned: dict[str, str], shared: dict) -> dict:
    """The part of a checked record the reference checks read, with its ids interned (a
    section's students are the users' own strings) and equal ``roles`` shared (the students
    of a school hold one; the checks only read them). Few districts, schools, terms and
    apps: whole."""
    keep = interned.setdefault  # (text, text): the first equal string seen, from then on

    def intern(text: str) -> str:
        return keep(text, text)

    if kind == "users":
        key = tuple((role, *((name, data[name] if name != "schools" else tuple(data[name]))
                             for name in _ROLE_REFS if name in data),
                     tuple(link["student"] for link in data.get("student_relationships", ())))
                    for role, data in record["roles"].items())
        roles = shared.get(key)
        if roles is None:
            roles = shared[key] = {role: _slim_role(data, intern)
                                   for role, data in record["roles"].items()}
        return {"id": intern(record["id"]), "district": intern(record["district"]), "roles": roles}
    if kind == "sections":
        out = {"id": record["id"], "district": intern(record["district"]),
               "school": intern(record["school"]), "teacher": intern(record["teacher"]),
               "teachers": list(map(keep, record["teachers"], record["teachers"])),
               "students": list(map(keep, record["students"], record["students"]))}
        if "term_id" in record:
            out["term_id"] = intern(record["term_id"])
        scale = (record.get("schoology") or {}).get("grading_scale")
        if scale is not None:
            out["schoology"] = {"grading_scale": scale}
        return out
    if kind == "courses":
        return {"id": record["id"]}
    return record


def _slim_role(data: dict, intern: Callable[[str], str]) -> dict:
    kept = {name: data[name] for name in _ROLE_REFS if name in data}
    if isinstance(kept.get("school"), str):
        kept["school"] = intern(kept["school"])
    if "student_relationships" in data:
        kept["student_relationships"] = [{"student": intern(link["student"])}
                                         for link in data["student_relationships"]]
    return kept


class RosterStream:
    """One roster file read ``chunk`` bytes and a record at a time (``batches``), then
    checked as a whole (``finish``); ``digest`` is sha256 of ``salt`` + the file's bytes
    once read. The text held is the current chunk plus the record it ends in."""

    def __init__(self, path: str | os.PathLike, *, salt: bytes = b"", batch: int = 2000,
                 chunk: int = _CHUNK):
        self.path = Path(path)
        self._chunk = chunk
        self.digest: str | None = None
        self.counts: dict[str, int] = {}
        self.apps: list[dict] = []
        self._salt = salt
        self._batch = batch
        self._slim_doc: dict[str, Any] = {}
        self._skeleton: dict[str, Any] = {}

    # reading -----------------------------------------------------------------------------

    def batches(self) -> Iterable[tuple[str, list[dict], list[str | None]]]:
        """(kind, records, their JSON texts) for every ``batch`` checked records of a kind,
        in the file's order; a text is None where the record was not written compactly."""
        try:
            fh = open(self.path, "rb")
        except OSError:
            raise NotStreamable("cannot open") from None
        with fh:
            yield from self._read(fh)

    def _read(self, fh) -> Iterable[tuple[str, list[dict], list[str | None]]]:
        import codecs

        sha = hashlib.sha256(self._salt)
        decoder = codecs.getincrementaldecoder("utf-8-sig")("strict")

        def duplicates_refused(items: list[tuple[str, Any]]) -> dict:
            out = dict(items)
            if len(out) != len(items):
                raise NotStreamable("a key repeats")
            return out

        scan = json.JSONDecoder(object_pairs_hook=duplicates_refused,
                                **jsontext.number_hooks()).raw_decode
        buf, pos, eof = "", 0, False

        def more() -> None:
            nonlocal buf, pos, eof
            raw = fh.read(self._chunk)
            sha.update(raw)
            try:
                text = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError:
                raise NotStreamable("not UTF-8") from None
            eof = not raw
            buf, pos = buf[pos:] + text, 0

        def skip_space() -> str:
            """The next character that is not whitespace ('' at the end of the file)."""
            nonlocal pos
            while True:
                while pos < len(buf) and buf[pos] in _WHITESPACE:
                    pos += 1
                if pos < len(buf):
                    return buf[pos]
                if eof:
                    return ""
                more()

        def value(max_depth: int) -> tuple[Any, str]:
            """The JSON value at ``pos`` and its text, checked as ``jsontext.loads`` checks."""
            nonlocal pos
            while True:
                try:
                    found, end = scan(buf, pos)
                except (json.JSONDecodeError, StopIteration):
                    if eof:
                        raise NotStreamable("not JSON") from None
                    more()  # the value continues in the next chunk
                    continue
                except (ValueError, ArithmeticError, RecursionError):
                    raise NotStreamable("a number or nesting beyond the limits") from None
                if end >= len(buf) and not eof:  # a number may go on in the next chunk
                    more()
                    continue
                text = buf[pos:end]
                try:
                    jsontext.check_parsed(text, found, max_depth)
                except jsontext.JSONTextError:
                    raise NotStreamable("nested too deep, or a lone surrogate") from None
                pos = end
                return found, text

        def expect(char: str) -> None:
            nonlocal pos
            if skip_space() != char:
                raise NotStreamable(f"expected {char!r}")
            pos += 1

        def closed(char: str) -> bool:
            """Past the ',' (False) or the closing ``char`` (True) after a value."""
            nonlocal pos
            following = skip_space()
            pos += 1
            if following == char:
                return True
            if following != ",":
                raise NotStreamable(f"expected ',' or {char!r}")
            return False

        # What lives on (the validator ``finish`` uses) is built before the first record:
        # made in between, it would pin the arenas of the freed records (+40 MB at ready).
        _validator()
        compiler = SchemaCompiler(load_schema(), remember=True)
        properties = compiler.root.get("properties", {})
        interned: dict[str, str] = {}
        shared_roles: dict[tuple, dict] = {}

        more()
        expect("{")
        if skip_space() == "}":
            pos += 1
        else:
            while True:
                if skip_space() != '"':
                    raise NotStreamable("expected a key")
                key, _ = value(jsontext.MAX_DEPTH)
                if key in self._skeleton:
                    raise NotStreamable("a key repeats")
                expect(":")
                if key in _STREAMED_KINDS and skip_space() == "[" and _streamable(properties.get(key)):
                    pos += 1
                    check = compiler.compile(properties[key]["items"])
                    slim: list[dict] = []
                    records: list[dict] = []
                    texts: list[str | None] = []
                    first = None
                    if skip_space() == "]":
                        pos += 1
                    else:
                        while True:
                            skip_space()
                            record, text = value(jsontext.MAX_DEPTH - 2)
                            if not check(record):
                                raise NotStreamable("a record the pre-check does not prove valid")
                            if first is None:
                                first = record
                            slim.append(_slim(key, record, interned, shared_roles))
                            records.append(record)
                            texts.append(text if "\n" not in text and "\r" not in text else None)
                            if len(records) >= self._batch:
                                yield key, records, texts
                                records, texts = [], []
                            if closed("]"):
                                break
                    if records:
                        yield key, records, texts
                    self._skeleton[key] = [first] if first is not None else []
                    self._slim_doc[key] = slim
                    self.counts[key] = len(slim)
                else:
                    found, _ = value(jsontext.MAX_DEPTH - 1)
                    self._skeleton[key] = found
                if closed("}"):
                    break
        if skip_space() != "":
            raise NotStreamable("text after the roster")
        self.digest = sha.hexdigest()

    # checking the whole ----------------------------------------------------------------

    def finish(self) -> None:
        """Check what only the whole roster shows (the top-level schema with each list's
        first record standing for the rest, every reference); ``NotStreamable`` on any
        problem. Call once ``batches`` is exhausted."""
        if self.digest is None:
            raise NotStreamable("not read to the end")
        if _schema_problems(self._skeleton):
            raise NotStreamable("the top level does not match the schema")
        slim = {**self._skeleton, **self._slim_doc}
        self._skeleton = {}
        if _referential_problems(slim):
            raise NotStreamable("a reference problem")
        self.apps = slim.get("apps", [])
        self._slim_doc = {}
