"""Clever's data API (DESIGN §3.2): ``/me``, records and lists of v2.0/v2.1 and v3.0/v3.1.

Pure domain: every function takes the ``Simulator`` and a token (from ``tokens.resolve``)
and returns the response body as a dict, or raises an error from ``simulator.errors``.
No Flask here; ``data_routes`` parses the request and serialises the answer.

Rules in one place:

* an il (SSO) token reads only ``/me``, its own user and its own district; anything
  else is 403 (even for ids that do not exist, so an SSO token never learns what exists);
* a district-app token reads every record of its district; a record of another district
  or an unknown id is 404 with Clever's wording ("Student not found", …);
* lists need a district-app token and page with Clever's cursors (``limit``,
  ``starting_after``, ``ending_before``), sorted by id.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Mapping
from urllib.parse import urlencode

from ..errors import BadRequest, FieldProblem, Forbidden, InvalidToken, NotFound
from ..numbers import whole_number
from ..sim import Simulator

V2_VERSIONS = ("v2.0", "v2.1")
V3_VERSIONS = ("v3.0", "v3.1")
VERSIONS = V2_VERSIONS + V3_VERSIONS
UNVERSIONED_ME = "v2.1"  # plain ``/me`` answers like ``/v2.1/me``

DEFAULT_LIMIT = 100
MAX_LIMIT = 10_000

# Values of ``role`` that Clever's v3 ``/users`` accepts (Swagger v3.0); the simulator's
# roster holds only students and teachers, so the other roles list nothing.
USER_ROLES = ("contact", "district_admin", "staff", "student", "teacher")

_ID_RE = re.compile(r"[0-9a-fA-F]{24}")


@dataclass(frozen=True)
class Collection:
    """One collection of a version's URL space: ``/v2.1/students`` reads users with role student."""

    segment: str          # URL path segment: students, users, sections, …
    kind: str             # store table: users, districts, schools, sections, terms
    role: str | None      # for v2 students/teachers: the user role it holds
    noun: str             # Clever's word in "… not found"


_V3 = {c.segment: c for c in (
    Collection("users", "users", None, "User"),
    Collection("districts", "districts", None, "District"),
    Collection("schools", "schools", None, "School"),
    Collection("sections", "sections", None, "Section"),
    Collection("terms", "terms", None, "Term"),
)}
_V2 = {c.segment: c for c in (
    Collection("students", "users", "student", "Student"),
    Collection("teachers", "users", "teacher", "Teacher"),
    Collection("districts", "districts", None, "District"),
    Collection("schools", "schools", None, "School"),
    Collection("sections", "sections", None, "Section"),
    Collection("terms", "terms", None, "Term"),
)}

V3_COLLECTIONS = tuple(_V3)
V2_COLLECTIONS = tuple(_V2)

_IL_SCOPE = FieldProblem(
    "Authorization", "an il (SSO) token may read only /me, its own user and its district",
    "read other records with a district-app token (GET /oauth/tokens?owner_type=district)")


@dataclass(frozen=True)
class Paging:
    """Checked paging parameters of a list request."""

    limit: int = DEFAULT_LIMIT
    starting_after: str | None = None
    ending_before: str | None = None


# --- /me -------------------------------------------------------------------------------

def me(sim: Simulator, token: dict, version: str | None) -> dict:
    """``GET /me`` (``version`` None), ``/v2.x/me`` or ``/v3.x/me`` for this token."""
    version = version or UNVERSIONED_ME
    if token["kind"] != "il":
        district_id = token["district_id"]
        return {"type": "district",
                "data": {"id": district_id, "district": district_id, "type": "district",
                         "authorized_by": "district"},
                "links": [{"rel": "self", "uri": "/me"},
                          {"rel": "canonical", "uri": f"/{version}/districts/{district_id}"}]}
    found = sim.store.get_user(token["user_id"])
    if found is None:
        raise InvalidToken(errors=[FieldProblem(
            "Authorization", "the token's user is no longer in the roster",
            "log in again through /oauth/authorize to get a token of a current user")])
    role, user = found
    user_id, district_id = user["id"], user["district"]
    if version in V3_VERSIONS:
        kind, canonical = "user", f"/{version}/users/{user_id}"
    else:
        kind, canonical = role, f"/{version}/{role}s/{user_id}"
    return {"type": kind,
            "data": {"id": user_id, "district": district_id, "type": kind,
                     "authorized_by": "district"},
            "links": [{"rel": "self", "uri": "/me"},
                      {"rel": "canonical", "uri": canonical},
                      {"rel": "district", "uri": f"/{version}/districts/{district_id}"}]}


# --- one record ------------------------------------------------------------------------

def get_record(sim: Simulator, token: dict, version: str, collection: str, record_id: str) -> dict:
    """``GET /{version}/{collection}/{id}``: ``{"data": record, "links": [...]}``."""
    coll = _collection(version, collection)
    if token["kind"] == "il":
        _check_il_may_read(token, coll, record_id)
    record = sim.store.get_record(coll.kind, record_id)
    if record is None or _district_of(coll, record) != token["district_id"]:
        raise _not_found(version, coll, f"no {coll.noun.lower()} with this id in the token's district")
    if coll.role is not None and coll.role not in record.get("roles", {}):
        other = next(iter(record.get("roles", {})), "user")
        raise _not_found(version, coll, f"is the id of a {other}, not of a {coll.role}",
                         f"read it at /{version}/{other}s/{record_id}")
    return {"data": render(version, coll, record), "links": record_links(version, coll, record)}


def _check_il_may_read(token: dict, coll: Collection, record_id: str) -> None:
    """An SSO token reads its own user and its own district; everything else is 403."""
    if coll.kind == "users" and record_id == token["user_id"]:
        return
    if coll.kind == "districts" and record_id == token["district_id"]:
        return
    raise Forbidden(errors=[_IL_SCOPE])


def _district_of(coll: Collection, record: dict) -> str | None:
    return record.get("id") if coll.kind == "districts" else record.get("district")


def _not_found(version: str, coll: Collection, problem: str, hint: str | None = None) -> NotFound:
    return NotFound(f"{coll.noun} not found", [FieldProblem(
        "id", problem,
        hint or f"list the district's {coll.segment} with GET /{version}/{coll.segment} "
                "(district-app token)")])


# --- lists -----------------------------------------------------------------------------

def list_records(sim: Simulator, token: dict, version: str, collection: str,
                 params: Mapping[str, str], query: str = "") -> dict:
    """``GET /{version}/{collection}``: one page of the token's district, Clever cursor paging.

    ``params`` are the query parameters (first value of each); ``query`` is the raw query
    string, echoed in the ``self`` link as given.
    """
    coll = _collection(version, collection)
    if token["kind"] == "il":
        raise Forbidden(errors=[_IL_SCOPE])
    paging = parse_paging(params)
    role = coll.role
    extra: list[tuple[str, str]] = []
    if version in V3_VERSIONS and coll.kind == "users" and "role" in params:
        role = parse_role(params["role"])
        extra.append(("role", role))
    page = sim.store.list_records(coll.kind, district_id=token["district_id"], role=role,
                                  limit=paging.limit, starting_after=paging.starting_after,
                                  ending_before=paging.ending_before)
    base = f"/{version}/{coll.segment}"
    links = [{"rel": "self", "uri": f"{base}?{query}" if query else base}]
    rows = page.rows
    if rows:
        first, last = rows[0]["id"], rows[-1]["id"]
        backwards = paging.ending_before is not None
        more_after = _exists(sim, coll.kind, token, role, starting_after=last) if backwards \
            else page.has_more
        more_before = page.has_more if backwards else (
            paging.starting_after is not None
            and _exists(sim, coll.kind, token, role, ending_before=first))
        if more_after:
            links.append({"rel": "next", "uri": _page_uri(base, paging.limit, extra,
                                                          "starting_after", last)})
        if more_before:
            links.append({"rel": "prev", "uri": _page_uri(base, paging.limit, extra,
                                                          "ending_before", first)})
    return {"data": [{"data": render(version, coll, r), "uri": f"{base}/{r['id']}"} for r in rows],
            "links": links}


def _exists(sim: Simulator, kind: str, token: dict, role: str | None, **cursor: str) -> bool:
    """Whether the district has any record past ``cursor`` (decides next/prev links)."""
    return bool(sim.store.list_records(kind, district_id=token["district_id"], role=role,
                                       limit=1, **cursor).rows)


def _page_uri(base: str, limit: int, extra: list[tuple[str, str]], cursor: str, value: str) -> str:
    return f"{base}?" + urlencode([("limit", str(limit)), *extra, (cursor, value)])


def parse_paging(params: Mapping[str, str]) -> Paging:
    """``limit`` (1–10000, default 100) and at most one of ``starting_after``/``ending_before``."""
    problems: list[FieldProblem] = []
    limit = DEFAULT_LIMIT
    raw_limit = params.get("limit")
    if raw_limit is not None:
        limit = whole_number(raw_limit, 1, MAX_LIMIT) or DEFAULT_LIMIT
        if limit != whole_number(raw_limit, 1, MAX_LIMIT):
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


def parse_role(raw: str) -> str:
    """The v3 ``/users?role=`` filter: one of Clever's user roles."""
    if raw in USER_ROLES:
        return raw
    raise BadRequest("Invalid role filter", [FieldProblem(
        "role", "must be one of " + ", ".join(USER_ROLES), "e.g. role=student")])


# --- rendering -------------------------------------------------------------------------

def render(version: str, coll: Collection, record: dict) -> dict:
    """A stored record as this version shows it (never the fake Schoology's settings)."""
    if version in V2_VERSIONS and coll.role is not None:
        return flatten_user(record, coll.role)
    return {k: v for k, v in record.items() if k != "schoology"}


_USER_TOP = ("id", "district", "name", "email", "created", "last_modified")


def flatten_user(record: dict, role: str) -> dict:
    """A v3 user as a v2 Student/Teacher: the role's fields plus the user's top-level fields."""
    out = {k: record[k] for k in _USER_TOP if k in record}
    for key, value in record.get("roles", {}).get(role, {}).items():
        out.setdefault(key, value)
    return out


def record_links(version: str, coll: Collection, record: dict) -> list[dict]:
    """The ``links`` of a single-record answer, as Clever's recorded responses show them."""
    self_uri = f"/{version}/{coll.segment}/{record['id']}"
    links = [{"rel": "self", "uri": self_uri}]
    if version in V2_VERSIONS:
        return links
    if coll.kind == "users":
        mine = "myStudents" if "teacher" in record.get("roles", {}) else "myTeachers"
        rels = ["district", "sections", mine, "schools"]
    elif coll.kind == "schools":
        rels = ["district", "sections", "users", "terms", "courses"]
    elif coll.kind == "sections":
        rels = ["district", "school"]
        rels += ["term"] if record.get("term_id") else []
        rels += ["course"] if record.get("course") else []
        rels += ["users"]
    elif coll.kind == "terms":
        rels = ["district", "schools", "sections"]
    else:  # districts
        rels = []
    return links + [{"rel": rel, "uri": f"{self_uri}/{rel}"} for rel in rels]


def _collection(version: str, collection: str) -> Collection:
    table = _V3 if version in V3_VERSIONS else _V2
    return table[collection]  # routes only match known (version, collection) pairs
