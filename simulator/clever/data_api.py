"""Clever's data API: ``/me`` and every path of the v2.0, v2.1 and v3.0 documents.

Pure domain: every function takes the ``Simulator`` and a token (from ``tokens.resolve``)
and returns the response body as a dict, or raises an error from ``simulator.errors``.
No Flask here; ``data_routes`` parses the request and serialises the answer.

Rules in one place (each cites the Clever page it follows):

* Paths: the ``paths`` of Clever's Swagger documents (github.com/Clever/swagger-api), kept in
  ``simulator/schemas/clever-v*.json``: ``/{collection}``, ``/{collection}/{id}`` and
  ``/{collection}/{id}/{related}``.  v3.1 serves v3.0's paths and fields: Clever says "there
  are no major changes between v3.0 and v3.1" (dev.clever.com, "Upgrading to v3.x"), and the
  project holds no v3.1 data document.  Relation names match case-insensitively, because
  Clever's own links say ``/myTeachers`` where its document says ``/myteachers``.
* Fields: each version answers with its own document's fields only (a v2.1-only field never
  reaches v2.0); a value outside a version's enum becomes that enum's ``Other`` or ``""``;
  a null where the document does not allow one leaves the field out (``render``).
* Ids: v3 ids are the roster's; non-students have other v2 ids (``simulator.ids.legacy_user_id``,
  Clever's v3 upgrade guide), so v2 paths take and answer v2 ids, v3 paths v3 ids, and the
  other version's id of the same person is 404 naming the right one.
* SSO ("il") tokens "can only access /me, /districts/{id} … /users/{id}" — their own
  (dev.clever.com/docs/oauth-implementation); anything else is 403 "Resource not in token's
  scopes", Clever's wording (dev.clever.com, "Troubleshooting Logins"), checked before
  existence so an SSO token never learns what exists.
* A district-app token reads its district; another district's record or an unknown id is
  404 with Clever's noun ("Student not found").
* Lists page with ``limit`` (default 100), ``starting_after`` and ``ending_before``, sorted by
  id; a limit over 10000 is 413 (dev.clever.com, "API Responses and Error Messages").
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping
from urllib.parse import urlencode

from ..errors import BadRequest, FieldProblem, Forbidden, InvalidToken, NotFound, PayloadTooLarge
from ..numbers import whole_number
from ..models import Token
from ..sim import Simulator

V2_VERSIONS = ("v2.0", "v2.1")
V3_VERSIONS = ("v3.0", "v3.1")
VERSIONS = V2_VERSIONS + V3_VERSIONS
UNVERSIONED_ME = "v2.1"  # plain ``/me`` answers like ``/v2.1/me``
DOCUMENT = {"v2.0": "v2.0", "v2.1": "v2.1", "v3.0": "v3.0", "v3.1": "v3.0"}

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

_ID_RE = re.compile(r"[0-9a-fA-F]{24}")
_DIGITS = re.compile(r"[0-9]+")
OUT_OF_SCOPE = "Resource not in token's scopes"


class OutOfScope(Forbidden):
    """An SSO token reading past /me, its district and its own user (Clever's wording)."""

    message = OUT_OF_SCOPE


@dataclass(frozen=True)
class Collection:
    """One collection of a version's URL space: ``/v2.1/teachers`` reads users with role teacher."""

    segment: str          # URL path segment: students, users, sections, …
    kind: str             # store table: users, districts, schools, sections, terms, courses, resources
    role: str | None      # v2 person collections: the user role they hold
    noun: str             # Clever's word in "… not found"
    definition: str       # the document's definition of one record


_V3 = {c.segment: c for c in (
    Collection("courses", "courses", None, "Course", "Course"),
    Collection("districts", "districts", None, "District", "District"),
    Collection("resources", "resources", None, "Resource", "Resource"),
    Collection("schools", "schools", None, "School", "School"),
    Collection("sections", "sections", None, "Section", "Section"),
    Collection("terms", "terms", None, "Term", "Term"),
    Collection("users", "users", None, "User", "User"),
)}
_V2 = {c.segment: c for c in (
    Collection("contacts", "users", "contact", "Contact", "Contact"),
    Collection("courses", "courses", None, "Course", "Course"),
    Collection("district_admins", "users", "district_admin", "District admin", "DistrictAdmin"),
    Collection("districts", "districts", None, "District", "District"),
    Collection("school_admins", "users", "staff", "School admin", "SchoolAdmin"),
    Collection("schools", "schools", None, "School", "School"),
    Collection("sections", "sections", None, "Section", "Section"),
    Collection("students", "users", "student", "Student", "Student"),
    Collection("teachers", "users", "teacher", "Teacher", "Teacher"),
    Collection("terms", "terms", None, "Term", "Term"),
)}

V3_COLLECTIONS = tuple(_V3)
V2_COLLECTIONS = tuple(_V2)


def _collections(version: str) -> dict[str, Collection]:
    return _V3 if version in V3_VERSIONS else _V2


# --- the documents' facts ----------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def document(version: str) -> dict:
    """The project's JSON Schema file of a version (``simulator/schemas/clever-vX.json``)."""
    name = f"clever-{DOCUMENT[version]}.json"
    try:
        text = (resources.files("simulator.schemas") / name).read_text(encoding="utf-8")
    except Exception:  # noqa: BLE001 - not installed: the file next to this package
        text = (Path(__file__).resolve().parent.parent / "schemas" / name).read_text(encoding="utf-8")
    return json.loads(text)


@functools.lru_cache(maxsize=None)
def relations(version: str) -> dict[str, dict[str, str]]:
    """``{collection: {related (lower case): related as documented}}`` of a version."""
    out: dict[str, dict[str, str]] = {}
    for path in document(version)["paths"]:
        parts = path.strip("/").split("/")
        if len(parts) == 3:
            out.setdefault(parts[0], {})[parts[2].lower()] = parts[2]
    return out


def query_enum(version: str, path: str, name: str) -> list[str] | None:
    """The documented values of query parameter ``name`` on ``path`` (None: any or absent)."""
    return document(version)["paths"].get(path, {}).get("query", {}).get(name)


# --- rendering ----------------------------------------------------------------------------

def render(version: str, definition: str, value: Any) -> Any:
    """``value`` as the version's document defines ``definition``: only its fields, enums
    kept to its values, nulls only where it allows them."""
    defs = document(version)["definitions"]
    return _project(value, defs[definition], defs)


def _project(value: Any, node: dict, defs: dict) -> Any:
    if "$ref" in node:
        return _project(value, defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:  # [ref, null]
        return None if value is None else _project(value, node["anyOf"][0], defs)
    kinds = node.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    if value is None:
        return None
    if "properties" in node and isinstance(value, dict):
        out = {}
        for key, item in value.items():
            spec = node["properties"].get(key)
            if spec is None:
                continue
            shown = _project(item, spec, defs)
            if shown is None and not _nullable(spec):
                continue
            out[key] = shown
        return out
    if "array" in kinds and isinstance(value, list):
        return [_project(v, node.get("items", {}), defs) for v in value]
    if "enum" in node and value not in node["enum"]:
        for fallback in ("Other", ""):
            if fallback in node["enum"]:
                return fallback
        return None
    return value


def _nullable(spec: dict) -> bool:
    kinds = spec.get("type")
    return "anyOf" in spec or (isinstance(kinds, list) and "null" in kinds)


V2_SEGMENT = {"student": "students", "teacher": "teachers", "staff": "school_admins",
              "district_admin": "district_admins", "contact": "contacts"}
V2_TYPE = {"student": "student", "teacher": "teacher", "staff": "school_admin",
           "district_admin": "district_admin", "contact": "contact"}
ROLE_NOUN = {"student": "student", "teacher": "teacher", "staff": "school admin (staff)",
             "district_admin": "district admin", "contact": "contact"}


class Ids:
    """A version's view of user ids: v2 paths name non-students by their legacy (v2) id,
    one per role (v2 kept a teacher and a school admin who are one person as two records)."""

    def __init__(self, sim: Simulator, version: str):
        self.v2 = version in V2_VERSIONS
        self._to_v2, self._to_v3 = sim.clever.legacy_role_ids()
        self._v3_of_legacy = sim.clever.legacy_ids()[1]
        self._primary = sim.clever.legacy_ids()[0]

    def shown(self, user_id: str, role: str | None) -> str:
        """The id this version shows for a user in ``role`` (stored ids are v3 ids)."""
        if not self.v2:
            return user_id
        return self._to_v2.get((user_id, role or ""), user_id)

    def legacy(self, user_id: str, role: str) -> str | None:
        """The v2 id of a user's role (None for students)."""
        return self._to_v2.get((user_id, role))

    def stored(self, shown_id: str) -> tuple[str | None, str | None]:
        """(stored v3 id a path's id names, the v2 role that id is of), or (None, None) when
        it is the other version's id of a person."""
        if self.v2:
            if shown_id in self._to_v3:
                return self._to_v3[shown_id]
            return (None, None) if shown_id in self._primary else (shown_id, None)
        return (None, None) if shown_id in self._v3_of_legacy else (shown_id, None)

    def other_version_id(self, shown_id: str, role: str | None) -> str | None:
        """This version's id of the person whom ``shown_id`` names in the other version."""
        if not self.v2:
            return self._v3_of_legacy.get(shown_id)
        return self._to_v2.get((shown_id, role or "")) or self._primary.get(shown_id)


def record_data(version: str, coll: Collection, record: dict, ids: Ids) -> dict:
    """A stored record as this version shows it (never the fake Schoology's settings)."""
    if coll.kind == "users":
        if ids.v2:
            return render(version, coll.definition, _v2_person(record, coll.role or "", ids))
        return render(version, "User", _v3_user(record, ids))
    if coll.kind == "sections" and ids.v2:
        record = dict(record)
        if record.get("teacher"):
            record["teacher"] = ids.shown(record["teacher"], "teacher")
        record["teachers"] = [ids.shown(t, "teacher") for t in record.get("teachers") or []]
    return render(version, coll.definition, record)


def _v3_user(record: dict, ids: Ids) -> dict:
    """A v3 user with ``legacy_id`` in each non-student role, as Clever's recorded teacher."""
    roles = {}
    for role, fields in (record.get("roles") or {}).items():
        legacy = ids.legacy(record["id"], role)
        roles[role] = {**fields, "legacy_id": legacy} if legacy and isinstance(fields, dict) else fields
    return {**record, "roles": roles}


_USER_TOP = ("district", "name", "email", "created", "last_modified")


def _v2_person(record: dict, role: str, ids: Ids) -> dict:
    """A v3 user as a v2 Student/Teacher/…: the role's fields plus the user's top-level ones."""
    out: dict[str, Any] = {"id": ids.shown(record["id"], role)}
    out.update((k, record[k]) for k in _USER_TOP if k in record)
    fields = (record.get("roles") or {}).get(role) or {}
    for key, value in fields.items():
        out.setdefault(key, value)
    name = record.get("name") or {}
    if role in ("district_admin", "staff"):  # v2 AdminName: first and last only
        out["name"] = {k: name[k] for k in ("first", "last") if k in name}
    if role == "contact":  # v2 Contact: one name string and the students it relates to
        out["name"] = " ".join(p for p in (name.get("first"), name.get("last")) if p)
        links = fields.get("student_relationships") or []
        out["students"] = [r.get("student") for r in links if r.get("student")]
        if links:
            out.setdefault("relationship", links[0].get("relationship"))
            out.setdefault("type", links[0].get("type"))
    return out


# --- /me -------------------------------------------------------------------------------

def me(sim: Simulator, token: Token, version: str | None) -> dict:
    """``GET /me`` (``version`` None), ``/v2.x/me`` or ``/v3.x/me`` for this token.

    v3 names a user by its v3 id and ``type: user``; v2 by its v2 id and its role (Clever's
    v3 upgrade guide: ids of non-students differ between the versions).
    """
    version = version or UNVERSIONED_ME
    if token.kind != "il":
        district_id = token.district_id
        return {"type": "district",
                "data": {"id": district_id, "district": district_id, "type": "district",
                         "authorized_by": "district"},
                "links": [{"rel": "self", "uri": "/me"},
                          {"rel": "canonical", "uri": f"/{version}/districts/{district_id}"}]}
    found = sim.clever.user(token.user_id)
    if found is None:
        raise InvalidToken(errors=[FieldProblem(
            "Authorization", "the token's user is no longer in the roster",
            "log in again through /oauth/authorize to get a token of a current user")])
    role, user = found
    district_id = user["district"]
    user_id = Ids(sim, version).shown(user["id"], role)
    if version in V3_VERSIONS:
        kind, canonical = "user", f"/{version}/users/{user_id}"
    else:  # the primary role's record: a teacher who is also staff logs in as the teacher
        kind, canonical = V2_TYPE[role], f"/{version}/{V2_SEGMENT[role]}/{user_id}"
    return {"type": kind,
            "data": {"id": user_id, "district": district_id, "type": kind,
                     "authorized_by": "district"},
            "links": [{"rel": "self", "uri": "/me"},
                      {"rel": "canonical", "uri": canonical},
                      {"rel": "district", "uri": f"/{version}/districts/{district_id}"}]}


# --- one record --------------------------------------------------------------------------

def get_record(sim: Simulator, token: Token, version: str, collection: str, record_id: str) -> dict:
    """``GET /{version}/{collection}/{id}``: ``{"data": record, "links": [...]}``."""
    coll = _collection(version, collection)
    ids = Ids(sim, version)
    if token.kind == "il":
        _check_il_may_read(sim, token, coll, record_id, ids)
    record = _find(sim, token, version, coll, record_id, ids)
    return {"data": record_data(version, coll, record, ids),
            "links": record_links(sim, version, coll, record, ids)}


def _check_il_may_read(sim: Simulator, token: Token, coll: Collection, record_id: str,
                       ids: Ids) -> None:
    """An SSO token reads its own user and its own district; everything else is 403."""
    if coll.kind == "users" and ids.stored(record_id)[0] == token.user_id:
        return
    if coll.kind == "districts" and record_id == token.district_id:
        return
    raise OutOfScope(errors=[FieldProblem(
        "Authorization", "an SSO (il) token may read only /me, its own user and its district",
        "read other records with a district-app token (GET /oauth/tokens?owner_type=district)")])


def _find(sim: Simulator, token: Token, version: str, coll: Collection, shown_id: str,
          ids: Ids) -> dict:
    """The stored record a path names, or Clever's 404 (another district's, unknown, or
    the other version's id of a person)."""
    stored, id_role = ids.stored(shown_id) if coll.kind == "users" else (shown_id, None)
    if stored is None:
        mine, theirs = ("v2", "v3") if ids.v2 else ("v3", "v2")
        raise _not_found(version, coll,
                         f"is this person's {theirs} id; {version} names people by their {mine} id",
                         f"use {ids.other_version_id(shown_id, coll.role)} (the {mine} id"
                         + (", roles.<role>.legacy_id in v3)" if ids.v2 else ")"))
    record = sim.clever.record(coll.kind, stored) if coll.kind != "resources" else None
    if record is None or _district_of(coll, record) != token.district_id:
        raise _not_found(version, coll,
                         f"no {coll.noun.lower()} with this id in the token's district")
    held = record.get("roles") or {}
    if coll.role is not None and (coll.role not in held or id_role not in (None, coll.role)):
        other = id_role if id_role is not None and id_role != coll.role else next(
            (r for r in V2_SEGMENT if r in held and r != coll.role), "user")
        segment = V2_SEGMENT.get(other, "users")
        raise _not_found(version, coll,
                         f"is the id of a {ROLE_NOUN.get(other, other)}, not of a "
                         f"{ROLE_NOUN[coll.role]}",
                         f"read it at /{version}/{segment}/{shown_id}"
                         + (f", or this person's {coll.role} record at /{version}/{coll.segment}/"
                            f"{ids.legacy(stored, coll.role) or stored}" if coll.role in held else ""))
    return record


def _district_of(coll: Collection, record: dict) -> str | None:
    return record.get("id") if coll.kind == "districts" else record.get("district")


def _not_found(version: str, coll: Collection, problem: str, hint: str | None = None) -> NotFound:
    return NotFound(f"{coll.noun} not found", [FieldProblem(
        "id", problem,
        hint or f"list the district's {coll.segment} with GET /{version}/{coll.segment} "
                "(district-app token)")])


# --- lists -----------------------------------------------------------------------------

@dataclass(frozen=True)
class Paging:
    """Checked paging parameters of a list request."""

    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None


def list_records(sim: Simulator, token: Token, version: str, collection: str,
                 params: Mapping[str, str], query: str = "") -> dict:
    """``GET /{version}/{collection}``: one page of the token's district, Clever cursor paging.

    ``params`` are the query parameters (first value of each); ``query`` is the raw query
    string, echoed in the ``self`` link as given.
    """
    coll = _collection(version, collection)
    if token.kind == "il":
        raise OutOfScope(errors=[_il_lists_problem()])
    path = f"/{coll.segment}"
    filters = _filters(version, path, params)
    role = filters.get("role") or coll.role
    return _page(sim, token, version, coll, f"/{version}/{coll.segment}", params, query,
                 role=role, ids=None, extra=[(k, v) for k, v in filters.items()])


def list_related(sim: Simulator, token: Token, version: str, collection: str, record_id: str,
                 related: str, params: Mapping[str, str], query: str = "") -> dict:
    """``GET /{version}/{collection}/{id}/{related}``: the record's district, school, …
    (one record) or its sections, students, … (a page, as ``list_records``)."""
    coll = _collection(version, collection)
    documented = relations(version).get(coll.segment, {}).get(related.lower())
    if documented is None:
        raise NotFound(f"Not found: no endpoint at /{version}/{collection}/{record_id}/{related}",
                       [FieldProblem("path", f"{coll.segment} have no {related!r} relation in "
                                             f"Clever's {version} document",
                                     "one of: " + ", ".join(
                                         sorted(relations(version).get(coll.segment, {}).values())))])
    if token.kind == "il":
        raise OutOfScope(errors=[_il_lists_problem()])
    ids = Ids(sim, version)
    record = _find(sim, token, version, coll, record_id, ids)
    target_segment, single, resolve = _RELATIONS[(_family(version), coll.segment, related.lower())]
    target = _collections(version)[target_segment]
    found = resolve(sim, record, token)
    if single:
        if not found:
            raise _not_found(version, target, f"this {coll.noun.lower()} has no {related}",
                             f"read the {coll.noun.lower()} at /{version}/{coll.segment}/{record_id}")
        linked = sim.clever.record(target.kind, found[0])
        if linked is None or _district_of(target, linked) != token.district_id:
            raise _not_found(version, target, f"the {coll.noun.lower()}'s {related} is not in the roster")
        return {"data": record_data(version, target, linked, ids),
                "links": record_links(sim, version, target, linked, ids)}
    path = f"/{coll.segment}/{{id}}/{documented}"
    filters = _filters(version, path, params)
    if filters.get("primary") == "true":
        found = [i for i in found if _primary(sim, i, record, target)]
    role = filters.get("role") or target.role
    base = f"/{version}/{coll.segment}/{record_id}/{related}"
    return _page(sim, token, version, target, base, params, query, role=role, ids=found,
                 extra=[(k, v) for k, v in filters.items()])


def _il_lists_problem() -> FieldProblem:
    return FieldProblem(
        "Authorization", "an SSO (il) token may read only /me, its own user and its district; "
        "lists and related records need a district-app token",
        "read them with a district-app token (GET /oauth/tokens?owner_type=district)")


def _filters(version: str, path: str, params: Mapping[str, str]) -> dict[str, str]:
    """The documented filters of ``path`` that the request sends (``role``, ``primary``,
    ``count``), each checked against its documented values."""
    out: dict[str, str] = {}
    for name in ("role", "primary", "count"):
        if name not in params:
            continue
        allowed = query_enum(version, path, name)
        if name not in document(version)["paths"].get(path, {}).get("query", {}):
            continue  # not a parameter of this path: ignored, as Clever ignores unknown ones
        value = params[name]
        if allowed is not None and value not in allowed:
            shown = ", ".join(repr(a) if a == "" else a for a in allowed)
            raise BadRequest(f"Invalid {name} filter", [FieldProblem(
                name, f"must be one of {shown}", f"e.g. {name}={next(a for a in allowed if a)}")])
        if name != "count" and value:
            out[name] = value
    return out


def _primary(sim: Simulator, other_id: str, record: dict, target: Collection) -> bool:
    """``primary=true``: a school's users whose primary school it is, or a user's primary school."""
    if target.kind == "users":
        found = sim.clever.user(other_id)
        roles = (found[1].get("roles") or {}) if found else {}
        return any(r.get("school") == record["id"] for r in roles.values() if isinstance(r, dict))
    roles = record.get("roles") or {}
    return any(r.get("school") == other_id for r in roles.values() if isinstance(r, dict))


def _page(sim: Simulator, token: Token, version: str, coll: Collection, base: str,
          params: Mapping[str, str], query: str, *, role: str | None,
          ids: list[str] | None, extra: list[tuple[str, str]]) -> dict:
    """One page of ``coll`` (``ids``: only those records) with Clever's self/next/prev links."""
    paging = parse_paging(params)
    view = Ids(sim, version)
    by_legacy = coll.kind == "users" and view.v2 and role not in (None, "student")
    links = [{"rel": "self", "uri": f"{base}?{query}" if query else base}]
    if coll.kind == "resources":  # the roster holds no resources
        return {"data": [], "links": links}

    def page(limit: int, **cursor: str | None):
        return sim.clever.records(coll.kind, district_id=token.district_id, role=role,
                                      limit=limit, ids=ids, by_legacy_id=by_legacy, **cursor)

    result = page(paging.limit, starting_after=paging.starting_after,
                  ending_before=paging.ending_before)
    rows = result.rows
    if rows:
        first, last = view.shown(rows[0]["id"], role), view.shown(rows[-1]["id"], role)
        backwards = paging.ending_before is not None
        more_after = bool(page(1, starting_after=last).rows) if backwards else result.has_more
        more_before = result.has_more if backwards else (
            paging.starting_after is not None and bool(page(1, ending_before=first).rows))
        if more_after:
            links.append({"rel": "next", "uri": _page_uri(base, paging.limit, extra,
                                                          "starting_after", last)})
        if more_before:
            links.append({"rel": "prev", "uri": _page_uri(base, paging.limit, extra,
                                                          "ending_before", first)})
    segment = f"/{version}/{coll.segment}"
    return {"data": [{"data": record_data(version, coll, r, view),
                      "uri": f"{segment}/{view.shown(r['id'], coll.role)}"} for r in rows],
            "links": links}


def _page_uri(base: str, limit: int, extra: list[tuple[str, str]], cursor: str, value: str) -> str:
    return f"{base}?" + urlencode([("limit", str(limit)), *extra, (cursor, value)])


def parse_paging(params: Mapping[str, str]) -> Paging:
    """``limit`` (1–10000, default 100; over 10000 is 413 as Clever documents) and at most
    one of ``starting_after``/``ending_before``."""
    problems: list[FieldProblem] = []
    limit = DEFAULT_LIMIT
    raw_limit = params.get("limit")
    if raw_limit is not None:
        if _DIGITS.fullmatch(raw_limit) and whole_number(raw_limit, 0, MAX_LIMIT) is None:
            raise PayloadTooLarge("Request entity too large", [FieldProblem(
                "limit", f"is over {MAX_LIMIT}, the most Clever answers in one page",
                f"send limit={MAX_LIMIT} or less and follow the next link")])
        found = whole_number(raw_limit, 1, MAX_LIMIT)
        if found is not None:
            limit = found
        else:
            problems.append(FieldProblem("limit", f"must be a whole number from 1 to {MAX_LIMIT}",
                                         "e.g. limit=100"))
    cursors: dict[str, str | None] = {"starting_after": None, "ending_before": None}
    for name, which in (("starting_after", "last"), ("ending_before", "first")):
        raw = params.get(name)
        if raw is None:
            continue
        if _ID_RE.fullmatch(raw):
            cursors[name] = raw.lower()
        else:
            problems.append(FieldProblem(
                name, "must be a record id (24 hexadecimal characters)",
                f"send the id of the {which} record of the current page, as the "
                f"{'next' if name == 'starting_after' else 'prev'} link does"))
    if params.get("starting_after") is not None and params.get("ending_before") is not None:
        problems.append(FieldProblem(
            "ending_before", "cannot be combined with starting_after",
            "send starting_after to page forward or ending_before to page back, not both"))
    if problems:
        raise BadRequest("Invalid paging parameters", problems)
    return Paging(limit, cursors["starting_after"], cursors["ending_before"])


# --- relations -------------------------------------------------------------------------
# (family, collection, related) -> (target collection, single record?, ids of the targets).
# Every resolver takes the stored record and answers stored (v3) ids.

Resolver = Callable[[Simulator, dict, dict], list[str]]


def _one(key: str) -> Resolver:
    return lambda sim, rec, tok: [rec[key]] if rec.get(key) else []


def _district(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return [rec["district"]]


def _user_school(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    roles = rec.get("roles") or {}
    return [roles[r]["school"] for r in V2_SEGMENT
            if isinstance(roles.get(r), dict) and roles[r].get("school")][:1]


def _user_schools(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    out: list[str] = []
    for role in (rec.get("roles") or {}).values():
        if isinstance(role, dict):
            out += [role["school"]] if role.get("school") else []
            out += role.get("schools") or []
    return list(dict.fromkeys(out))


def _user_sections(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return sim.clever.user_section_ids(rec["id"])


def _taught_by(rec: dict, section: dict) -> bool:
    return rec["id"] in (section.get("teachers") or []) or section.get("teacher") == rec["id"]


def _my_students(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    sections = sim.clever.sections_of(sim.clever.user_section_ids(rec["id"]))
    return list(dict.fromkeys(s for sec in sections if _taught_by(rec, sec)
                              for s in sec.get("students") or []))


def _my_teachers(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    sections = sim.clever.sections_of(sim.clever.user_section_ids(rec["id"]))
    return list(dict.fromkeys(t for sec in sections if rec["id"] in (sec.get("students") or [])
                              for t in _section_teachers(sim, sec, tok)))


def _my_contacts(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    page = sim.clever.records("users", district_id=tok.district_id, role="contact",
                                  limit=MAX_LIMIT)
    return [u["id"] for u in page.rows
            if any(r.get("student") == rec["id"] for r in
                   ((u.get("roles") or {}).get("contact") or {}).get("student_relationships") or [])]


def _contact_students(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    links = ((rec.get("roles") or {}).get("contact") or {}).get("student_relationships") or []
    return [r["student"] for r in links if r.get("student")]


def _section_students(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return list(rec.get("students") or [])


def _section_teachers(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return list(dict.fromkeys(([rec["teacher"]] if rec.get("teacher") else [])
                              + list(rec.get("teachers") or [])))


def _section_users(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return _section_students(sim, rec, tok) + _section_teachers(sim, rec, tok)


def _sections_where(column: str) -> Resolver:
    return lambda sim, rec, tok: sim.clever.section_ids_where(column, rec["id"])


def _of_sections(column: str, key: str) -> Resolver:
    """Distinct ``key`` (school, term_id, course) of the sections whose ``column`` is this record."""
    def resolve(sim: Simulator, rec: dict, tok: Token) -> list[str]:
        sections = sim.clever.sections_of(sim.clever.section_ids_where(column, rec["id"]))
        return list(dict.fromkeys(s[key] for s in sections if s.get(key)))
    return resolve


def _school_users(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return sim.clever.school_user_ids(rec["id"])


def _none(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return []  # resources: the roster holds none


def _staff_schools(sim: Simulator, rec: dict, tok: Token) -> list[str]:
    return list(((rec.get("roles") or {}).get("staff") or {}).get("schools") or [])


_RELATIONS: dict[tuple[str, str, str], tuple[str, bool, Resolver]] = {
    # v3.0 (and v3.1)
    ("v3", "courses", "district"): ("districts", True, _district),
    ("v3", "courses", "resources"): ("resources", False, _none),
    ("v3", "courses", "schools"): ("schools", False, _of_sections("course", "school")),
    ("v3", "courses", "sections"): ("sections", False, _sections_where("course")),
    ("v3", "resources", "courses"): ("courses", False, _none),
    ("v3", "resources", "sections"): ("sections", False, _none),
    ("v3", "resources", "users"): ("users", False, _none),
    ("v3", "schools", "courses"): ("courses", False, _of_sections("school_id", "course")),
    ("v3", "schools", "district"): ("districts", True, _district),
    ("v3", "schools", "sections"): ("sections", False, _sections_where("school_id")),
    ("v3", "schools", "terms"): ("terms", False, _of_sections("school_id", "term_id")),
    ("v3", "schools", "users"): ("users", False, _school_users),
    ("v3", "sections", "course"): ("courses", True, _one("course")),
    ("v3", "sections", "district"): ("districts", True, _district),
    ("v3", "sections", "resources"): ("resources", False, _none),
    ("v3", "sections", "school"): ("schools", True, _one("school")),
    ("v3", "sections", "term"): ("terms", True, _one("term_id")),
    ("v3", "sections", "users"): ("users", False, _section_users),
    ("v3", "terms", "district"): ("districts", True, _district),
    ("v3", "terms", "schools"): ("schools", False, _of_sections("term_id", "school")),
    ("v3", "terms", "sections"): ("sections", False, _sections_where("term_id")),
    ("v3", "users", "district"): ("districts", True, _district),
    ("v3", "users", "mycontacts"): ("users", False, _my_contacts),
    ("v3", "users", "mystudents"): ("users", False, _my_students),
    ("v3", "users", "myteachers"): ("users", False, _my_teachers),
    ("v3", "users", "resources"): ("resources", False, _none),
    ("v3", "users", "schools"): ("schools", False, _user_schools),
    ("v3", "users", "sections"): ("sections", False, _user_sections),
    # v2.0 and v2.1
    ("v2", "contacts", "district"): ("districts", True, _district),
    ("v2", "contacts", "students"): ("students", False, _contact_students),
    ("v2", "courses", "district"): ("districts", True, _district),
    ("v2", "courses", "sections"): ("sections", False, _sections_where("course")),
    ("v2", "district_admins", "district"): ("districts", True, _district),
    ("v2", "school_admins", "district"): ("districts", True, _district),
    ("v2", "school_admins", "schools"): ("schools", False, _staff_schools),
    ("v2", "schools", "district"): ("districts", True, _district),
    ("v2", "schools", "sections"): ("sections", False, _sections_where("school_id")),
    ("v2", "schools", "students"): ("students", False, _school_users),
    ("v2", "schools", "teachers"): ("teachers", False, _school_users),
    ("v2", "sections", "course"): ("courses", True, _one("course")),
    ("v2", "sections", "district"): ("districts", True, _district),
    ("v2", "sections", "school"): ("schools", True, _one("school")),
    ("v2", "sections", "students"): ("students", False, _section_students),
    ("v2", "sections", "teacher"): ("teachers", True, _one("teacher")),
    ("v2", "sections", "teachers"): ("teachers", False, _section_teachers),
    ("v2", "sections", "term"): ("terms", True, _one("term_id")),
    ("v2", "students", "contacts"): ("contacts", False, _my_contacts),
    ("v2", "students", "district"): ("districts", True, _district),
    ("v2", "students", "school"): ("schools", True, _user_school),
    ("v2", "students", "schools"): ("schools", False, _user_schools),
    ("v2", "students", "sections"): ("sections", False, _user_sections),
    ("v2", "students", "teachers"): ("teachers", False, _my_teachers),
    ("v2", "teachers", "district"): ("districts", True, _district),
    ("v2", "teachers", "school"): ("schools", True, _user_school),
    ("v2", "teachers", "schools"): ("schools", False, _user_schools),
    ("v2", "teachers", "sections"): ("sections", False, _user_sections),
    ("v2", "teachers", "students"): ("students", False, _my_students),
    ("v2", "terms", "district"): ("districts", True, _district),
    ("v2", "terms", "sections"): ("sections", False, _sections_where("term_id")),
}


def _family(version: str) -> str:
    return "v3" if version in V3_VERSIONS else "v2"


# --- links of one record -------------------------------------------------------------------

def record_links(sim: Simulator, version: str, coll: Collection, record: dict,
                 ids: Ids) -> list[dict]:
    """The ``links`` of a single-record answer, as Clever's recorded v3.0 answers show them
    (v2 records carry their ``self`` link only)."""
    shown = ids.shown(record["id"], coll.role) if coll.kind == "users" else record["id"]
    self_uri = f"/{version}/{coll.segment}/{shown}"
    links = [{"rel": "self", "uri": self_uri}]
    if version in V2_VERSIONS:
        return links
    if coll.kind == "users":
        roles = record.get("roles") or {}
        rels = ["district", "sections"]
        rels += ["myStudents"] if "teacher" in roles else []
        rels += ["myContacts", "myTeachers"] if "student" in roles else []
        rels += ["schools"]
    elif coll.kind == "schools":
        rels = ["district", "sections", "users", "terms", "courses"]
    elif coll.kind == "sections":
        rels = ["district", "school"]
        rels += ["term"] if record.get("term_id") and sim.clever.record("terms", record["term_id"]) else []
        rels += ["course"] if record.get("course") and sim.clever.record("courses", record["course"]) else []
        rels += ["users"]
    elif coll.kind == "terms":
        rels = ["district", "schools", "sections"]
    elif coll.kind == "courses":
        rels = ["district", "schools", "sections", "resources"]
    else:  # districts
        rels = []
    return links + [{"rel": rel, "uri": f"{self_uri}/{rel}"} for rel in rels]


def _collection(version: str, collection: str) -> Collection:
    """The collection a path names (routes only match documented collections)."""
    return _collections(version)[collection]


def paths(version: str) -> Iterable[str]:
    """Every documented path of a version (for the route table and the tests)."""
    return document(version)["paths"].keys()
