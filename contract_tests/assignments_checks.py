"""Seed Step 1: the assignments API Clever calls with a teacher's bearer token."""

from __future__ import annotations

import json
import re
from collections import Counter

from .harness import Fail, Fetch, Skip, check, clip, me_calls, media_type, new_nonce
from .session import Contract

S_GET = ("Clever makes a GET request to a URL that the application partner provides. That "
         "request will include an Authorization header with a bearer token.")
S_JSON = "You will need to respond to the initial request with a JSON list of assignments"
S_SCHEMA = ("Within the array of assignments, there is a list of assignment objects. Each "
            "assignment must have a name, a unique id that can be later associated with a grade, "
            "and the type of \"assignment\". The description and standards array are optional.")
S_UNIQUE = ("Each assignment must have a name, a unique id that can be later associated with a "
            "grade, and the type of \"assignment\".")
S_STABLE = ("Assignment IDs should be stable \u2026 If we receive a new Assignment ID from you, "
            "we\u2019ll assume it\u2019s a new assignment")
S_ALNUM = ("Clever\u2019s recommendation is that Assignment IDs should be alphanumeric and under "
           "64 characters, as these IDs are passed through URLs")
S_ME = ("Your application uses the bearer token to GET https://api.clever.com/v2.0/me to get the "
        "IDs and the user's type")

EXAMPLE = ('{"assignments": [{"name": "Assignment 1", "id": "a100001", "type": "assignment", '
           '"description": "The first assignment", "standards": ["CCSS.ELA-LITERACY.SL.1.2"]}]}')
_ALNUM = re.compile(r"[A-Za-z0-9]+")


def _readable(c: Contract) -> Fetch:
    """The first fetch when it produced a JSON list; Skip otherwise (ASSIGN-001 says why)."""
    fetch = c.first_fetch()
    if not fetch.readable:
        why = fetch.error or (f"HTTP {fetch.status}" if fetch.status != 200 else "not valid JSON")
        raise Skip(f"not judged: the assignments list could not be read ({why}); see ASSIGN-001")
    return fetch


@check("ASSIGN-001", "required", "Assignments API answers a teacher's token with 200 JSON",
       seed=f"{S_GET} \u2026 {S_JSON}",
       rule="GET assignments_url with a teacher's il token (Authorization: Bearer) → 200, "
            "Content-Type application/json, a JSON body (no byte order mark before it)")
def assignments_answer(c: Contract) -> str:
    fetch = c.first_fetch()
    teacher, _ = c.teacher_token(0)
    who = f"(the bearer token is a real il token of teacher {teacher['name']} ({teacher['id']}) " \
          f"of district {teacher['district']}, minted by the simulator)"
    if fetch.error:
        raise Fail(f"your assignments URL did not answer: {fetch.error}", sent=fetch.request,
                   got=fetch.error,
                   fix=f"serve GET {c.cfg.assignments_url} (the [app].assignments_url in "
                       f"{c.cfg.path}) and answer within a few seconds")
    if fetch.status != 200:
        if fetch.status in (401, 403):
            fix = (f"the token is valid {who}: check it against the simulator — GET "
                   f"{c.sim_url}/v3.0/me with Authorization: Bearer <token> — not against "
                   f"api.clever.com, and accept any teacher of a connected district")
        elif fetch.status in (301, 302, 303, 307, 308):
            fix = "answer the list directly: Clever does not follow redirects to a login page"
        elif fetch.status == 404:
            fix = f"serve the list at exactly {c.cfg.assignments_url}, or fix [app].assignments_url"
        else:
            fix = "see your app's log for the error behind this answer"
        raise Fail(f"answered HTTP {fetch.status} to a valid teacher token, not 200",
                   sent=fetch.request, got=fetch.got(), note=who, fix=fix)
    ctype = media_type(fetch.content_type)
    if ctype != "application/json" and not ctype.endswith("+json"):
        raise Fail(f"answered with Content-Type {fetch.content_type or '(none)'}, not application/json",
                   sent=fetch.request, got=fetch.got(),
                   fix="send the list as JSON with Content-Type: application/json "
                       "(Flask: jsonify(...); Express: res.json(...); Node http: "
                       "res.setHeader('Content-Type', 'application/json'); Java HttpServer: "
                       "exchange.getResponseHeaders().set(\"Content-Type\", \"application/json\"))")
    if fetch.json_error is not None:
        summary, fix = body_mistake(fetch)
        raise Fail(summary, sent=fetch.request, got=fetch.got(), fix=fix)
    if fetch.bom:
        raise Fail("the body starts with a UTF-8 byte order mark (bytes EF BB BF) before the JSON",
                   sent=fetch.request, got=fetch.got(),
                   fix="send the JSON without a byte order mark: JSON sent over a network must not "
                       "start with one (RFC 8259, section 8.1), and parsers such as JavaScript's "
                       "JSON.parse and Go's encoding/json reject it; look for a source or template "
                       "file saved as \"UTF-8 with BOM\" (common in PHP and .NET) or a '\\ufeff' "
                       "written before the body")
    items = fetch.doc.get("assignments") if isinstance(fetch.doc, dict) else None
    n = f"{len(items)} assignments" if isinstance(items, list) else "a JSON body"
    return f"200 {ctype}, {n}, in {fetch.seconds:.2f} s"


UTF8_FIX = ("encode the body as UTF-8, the only encoding JSON may use between systems (RFC 8259, "
            "section 8.1) (Perl: JSON::PP->new->utf8 and a :raw socket; PHP: json_encode of UTF-8 "
            "strings; Java: getBytes(StandardCharsets.UTF_8))")


def body_mistake(fetch: Fetch) -> tuple[str, str]:
    """Why a 200 body is not JSON, in words (summary, fix): the encoding mistakes named."""
    raw = fetch.raw
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start]
        around = raw[max(0, exc.start - 24):exc.start + 8].decode("utf-8", "backslashreplace")
        latin = raw.decode("cp1252", "replace")
        return (f"the body is not UTF-8: byte 0x{bad:02X} at offset {exc.start} (…{around}…) is not "
                f"valid UTF-8; read as Latin-1/Windows-1252 it says "
                f"\"{latin[max(0, exc.start - 24):exc.start + 8]}\", so your app wrote the JSON in a "
                f"single-byte encoding", UTF8_FIX)
    summary = f"the body is not valid JSON ({fetch.json_error})"
    fix = f"answer a JSON document like {EXAMPLE}"
    length = fetch.headers.get("content-length", "")
    multibyte = sum(1 for b in raw if b >= 0xC0)   # UTF-8 lead bytes: one per non-ASCII character
    if length.isdigit() and int(length) == len(raw) and multibyte:
        summary = (f"the body is cut off: it ends after the {len(raw)} bytes your Content-Length "
                   f"announced, inside the JSON ({fetch.json_error}); the body holds {multibyte} "
                   f"non-ASCII character(s), 2–4 bytes each in UTF-8, so a Content-Length counted in "
                   f"characters instead of bytes cuts it short")
        fix = ("set Content-Length to the number of bytes you send, after encoding to UTF-8 (Perl: "
               "length(Encode::encode_utf8($json)), or bytes::length; Node: Buffer.byteLength(body); "
               "Java: body.getBytes(UTF_8).length), or leave it to your framework")
    return summary, fix


def unframed(fetch: Fetch) -> str:
    """Why an answer's end could only be seen when the connection closed ("" if it was framed)."""
    h = fetch.headers
    if not h or "content-length" in h or "transfer-encoding" in h or fetch.http_version != "HTTP/1.1" \
            or "close" in h.get("connection", "").lower():
        return ""
    return ("your answer is HTTP/1.1 with no Content-Length, no Transfer-Encoding: chunked and no "
            "Connection: close, so the client cannot tell where the body ends and waits until your "
            "app closes the connection")


def json_type(value: object) -> str:
    """JSON's name for a parsed value's type (partners read "array", not Python's "list")."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    return {str: "string", list: "array", dict: "object"}.get(type(value), type(value).__name__)


def schema_problems(doc: object) -> list[str]:
    """Every way ``doc`` breaks the seed's assignments schema, in words."""
    if isinstance(doc, list):
        return ["the body is a bare JSON array: wrap it in an object, "
                "{\"assignments\": [ ...your array... ]}"]
    if not isinstance(doc, dict):
        return [f"the body is a JSON {json_type(doc)}, not an object with an \"assignments\" array"]
    if "assignments" not in doc:
        keys = ", ".join(sorted(doc)[:8]) or "none"
        arrays = [k for k, v in doc.items() if isinstance(v, list) and v and isinstance(v[0], dict)]
        hint = (f": the assignment objects are under \"{arrays[0]}\"; name that key \"assignments\""
                if arrays else "")
        return [f"no \"assignments\" key (keys: {keys}){hint}"]
    items = doc["assignments"]
    if not isinstance(items, list):
        return [f"\"assignments\" is a JSON {json_type(items)}, not an array: put the assignment "
                f"objects in an array, [{{\"id\": …, \"name\": …, \"type\": \"assignment\"}}, …]"]
    if not items:
        return ["\"assignments\" is empty: teachers would have nothing to choose (and the suite "
                "needs one to test logins and grades)"]
    problems = []
    for i, a in enumerate(items):
        where = f"assignments[{i}]"
        if not isinstance(a, dict):
            problems.append(f"{where} is a JSON {json_type(a)}, not an object")
            continue
        for key in ("name", "id"):
            if key not in a:
                problems.append(f"{where}.{key} is missing")
            elif not isinstance(a[key], str):
                hint = f" (send it as a string: \"{a[key]}\")" if isinstance(a[key], (int, float)) \
                    and not isinstance(a[key], bool) else ""
                problems.append(f"{where}.{key} is {json.dumps(a[key])[:40]}, not a string{hint}")
            elif not a[key].strip():
                problems.append(f"{where}.{key} is empty")
        if "type" not in a:
            problems.append(f"{where}.type is missing: every assignment needs \"type\": \"assignment\"")
        elif a["type"] != "assignment":
            problems.append(f"{where}.type is {json.dumps(a['type'])[:40]}, not \"assignment\"")
        if "description" in a and not isinstance(a["description"], str):
            problems.append(f"{where}.description is {json.dumps(a['description'])[:40]}: when present "
                            f"it must be a string")
        if "standards" in a:
            s = a["standards"]
            if not isinstance(s, list) or not all(isinstance(x, str) for x in s):
                problems.append(f"{where}.standards is {json.dumps(s)[:60]}: when present it must be an "
                                f"array of strings")
    return problems


@check("ASSIGN-002", "required", "Assignments list has the seed's shape",
       seed=S_SCHEMA,
       rule="{\"assignments\": [...]}, non-empty; each has name (string), id (string), "
            "type == \"assignment\"; optional description (string), standards (array of strings)")
def assignments_schema(c: Contract) -> str:
    fetch = _readable(c)
    problems = schema_problems(fetch.doc)
    if problems:
        shown = "\n".join(f"- {p}" for p in problems[:12])
        more = f"\n… and {len(problems) - 12} more" if len(problems) > 12 else ""
        raise Fail(f"{len(problems)} problem(s) with the list: {problems[0]}", sent=fetch.request,
                   got=f"{shown}{more}\n\nbody: {clip(fetch.text, 800)}",
                   fix=f"answer exactly this shape: {EXAMPLE}")
    n = len(fetch.doc["assignments"])
    return f"{n} assignments, each with name, id and type \"assignment\""


@check("ASSIGN-003", "required", "Assignment ids are unique",
       seed=S_UNIQUE, rule="no id appears twice in one answer")
def assignments_unique(c: Contract) -> str:
    fetch = _readable(c)
    ids = fetch.ids()
    if not ids:
        raise Skip("not judged: no string ids in the list (see ASSIGN-002)")
    dupes = {i: n for i, n in Counter(ids).items() if n > 1}
    if dupes:
        listed = ", ".join(f"{i!r} ×{n}" for i, n in list(dupes.items())[:10])
        raise Fail(f"{len(dupes)} id(s) appear more than once: {listed}", sent=fetch.request,
                   got=clip(fetch.text, 800),
                   fix="give every assignment its own id: a grade names its assignment only by id, "
                       "so two assignments with one id cannot be told apart in Schoology")
    return f"{len(ids)} distinct ids"


@check("ASSIGN-004", "required", "Assignment ids are stable across calls and teachers",
       seed=S_STABLE,
       rule="a second call answers the same ids; an assignment listed for two teachers of one "
            "district (same name) has the same id for both")
def assignments_stable(c: Contract) -> str:
    first = _readable(c)
    ids1 = first.ids()
    if not ids1:
        raise Skip("not judged: no string ids in the list (see ASSIGN-002)")
    _, token = c.teacher_token(0)
    again = c.fetch_assignments(token)
    if not again.readable:
        raise Fail("the second call for the same teacher failed", sent=again.request, got=again.got(),
                   fix="answer every call the same way (see ASSIGN-001)")
    ids2 = again.ids()
    if set(ids1) != set(ids2):
        gone, new = sorted(set(ids1) - set(ids2)), sorted(set(ids2) - set(ids1))
        raise Fail(f"the ids changed between two calls a moment apart: {len(gone)} gone, {len(new)} new",
                   sent=f"{first.request}\n(twice, same teacher)",
                   got=f"first call:  {ids1[:12]}\nsecond call: {ids2[:12]}\n"
                       f"gone: {gone[:10]}\nnew:  {new[:10]}",
                   fix="derive ids from your stored content (a database key), never from the "
                       "request, a counter or a random value: Clever treats a new id as a new "
                       "assignment and grades for the old one stop matching")
    note = "same ids on a second call"
    if len(c.teachers) >= 2:
        teacher2, token2 = c.teacher_token(1)
        other = c.fetch_assignments(token2)
        if not other.readable:
            raise Fail(f"the call for a second teacher of the same district ({teacher2['id']}) failed",
                       sent=other.request, got=other.got(),
                       fix="answer every teacher of a connected district (see ASSIGN-001)")
        names1 = _names(first)
        names2 = _names(other)
        differ = [(n, names1[n], names2[n]) for n in set(names1) & set(names2) if names1[n] != names2[n]]
        if differ:
            shown = "\n".join(f"{n!r}: {a!r} vs {b!r}" for n, a, b in differ[:10])
            raise Fail(f"{len(differ)} assignment(s) have different ids for two teachers of one district",
                       sent=f"{first.request}\n(teacher 1), and the same with teacher {teacher2['id']}",
                       got=shown,
                       fix="use one id per piece of content for everyone: Schoology links made by "
                           "one teacher must match grades your app sends for any student")
        shared = len(set(names1) & set(names2))
        note += f"; {shared} assignment(s) listed for both teachers with the same ids"
    return note


def _names(fetch: Fetch) -> dict[str, str]:
    return {a["name"]: a["id"] for a in fetch.assignments() if isinstance(a, dict)
            and isinstance(a.get("name"), str) and isinstance(a.get("id"), str)}


@check("ASSIGN-005", "recommended", "Assignment ids are alphanumeric and under 64 characters",
       seed=S_ALNUM, rule="every id matches [A-Za-z0-9]+ and has at most 63 characters")
def assignments_alnum(c: Contract) -> str:
    fetch = _readable(c)
    ids = fetch.ids()
    if not ids:
        raise Skip("not judged: no string ids in the list (see ASSIGN-002)")
    bad = [i for i in ids if not _ALNUM.fullmatch(i) or len(i) >= 64]
    if bad:
        why = "; ".join(f"{i[:70]!r} ({len(i)} chars{'' if _ALNUM.fullmatch(i) else ', not alphanumeric'})"
                        for i in bad[:6])
        raise Fail(f"{len(bad)} id(s) break Clever's recommendation: {why}", sent=fetch.request,
                   got=why,
                   fix="use ASCII letters and digits only, fewer than 64 of them (ids travel in "
                       "Schoology launch URLs as state=assignment:{id})")
    return f"{len(ids)} ids, all alphanumeric, longest {max(len(i) for i in ids)} characters"


@check("ASSIGN-006", "recommended", "Assignments API refuses a missing or invalid token",
       seed=S_GET, rule="no Authorization header → 401/403; an unknown bearer token → 401/403")
def assignments_auth(c: Contract) -> str:
    missing = c.fetch_assignments(None)
    bogus_token = "invalid-" + new_nonce()
    bogus = c.fetch_assignments(bogus_token)
    problems, seen = [], []
    for label, fetch in (("without a token", missing), (f"with the unknown token {bogus_token}", bogus)):
        if fetch.error:
            problems.append(f"{label}: {fetch.error}")
        elif fetch.status not in (401, 403):
            problems.append(f"{label}: HTTP {fetch.status} (expected 401 or 403)")
        seen.append(f"{label}: {fetch.got() if fetch.error or fetch.status not in (401, 403) else fetch.status}")
    if problems:
        raise Fail("served the assignments list without a valid token: " + "; ".join(problems),
                   sent=f"{missing.request}\n\n{bogus.request}", got="\n".join(seen),
                   fix=f"check the bearer token before answering: GET {c.sim_url}/v3.0/me with it "
                       f"(Clever answers 401 for an unknown token) and answer 401 when it is "
                       f"missing or refused")
    return f"{missing.status} without a token, {bogus.status} with an unknown one"


@check("ASSIGN-007", "recommended", "Assignments API answers within the time limit",
       seed=S_GET,
       rule="the first answer arrives within 10 s (a teacher is waiting in Schoology)")
def assignments_fast(c: Contract) -> str:
    fetch = c.first_fetch()
    limit = c.cfg.assignments_timeout_s
    if fetch.error and "no answer" not in fetch.error:
        raise Skip("not judged: the assignments URL could not be reached (see ASSIGN-001)")
    if fetch.error or fetch.seconds > limit:
        why = unframed(fetch)
        if why:
            raise Fail(f"took {fetch.seconds:.2f} s to answer (limit {limit:g} s): {why}",
                       sent=fetch.request, got=fetch.got() + "\nresponse headers:\n" +
                       "\n".join(f"  {k}: {v}" for k, v in fetch.headers.items()),
                       fix="send Content-Length (the body's size in bytes) or Connection: close "
                           "and close the socket right after the body")
        raise Fail(f"took {fetch.seconds:.2f} s to answer (limit {limit:g} s)", sent=fetch.request,
                   got=fetch.got(),
                   fix="answer from stored data: cache the list (and the /me lookup per token) "
                       "instead of building it on every request")
    return f"answered in {fetch.seconds:.2f} s (limit {limit:g} s)"


@check("ASSIGN-008", "reported", "Assignments API looks up the teacher with /me",
       seed=S_ME, rule="reported only: whether the app called /me with the teacher's token")
def assignments_me(c: Contract) -> str:
    fetch = c.first_fetch()
    if fetch.error:
        raise Skip("not judged: the assignments URL could not be reached (see ASSIGN-001)")
    calls = me_calls(c.sim.journal_since(fetch.mark), fetch.token)
    if calls:
        e = calls[0]
        return f"called GET {e['path']} with the teacher's token → {e['status']}"
    return "did not call /me with the teacher's token (fine when the list is the same for everyone)"


S_TEACHER = ("Teachers will choose from the list of assignments that you provide to Clever, so the "
             "division of content into assignments should be comprehensible to a teacher")


def double_encoded(text: str) -> str | None:
    """``text`` decoded once more when it is UTF-8 read as Latin-1/Windows-1252 ("GÃ©o" →
    "Géo"); None when it is not. Real names almost never hold such byte-like pairs."""
    if not any("\u0080" <= ch <= "\u00ff" for ch in text):
        return None
    raw = bytearray()
    for ch in text:   # each character back to the byte it was read from
        if ord(ch) < 0x100:
            raw.append(ord(ch))
            continue
        try:
            raw += ch.encode("cp1252")
        except UnicodeEncodeError:
            return None
    try:
        fixed = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return fixed if fixed != text else None


@check("ASSIGN-009", "recommended", "Assignment names are text a teacher can read",
       seed=S_TEACHER,
       rule="no name or description is UTF-8 encoded twice (\"GÃ©omÃ©trie\" for \"Géométrie\")")
def assignments_readable(c: Contract) -> str:
    fetch = _readable(c)
    found = []
    for i, a in enumerate(fetch.assignments()):
        for key in ("name", "description"):
            value = a.get(key) if isinstance(a, dict) else None
            fixed = double_encoded(value) if isinstance(value, str) else None
            if fixed is not None:
                found.append(f"assignments[{i}].{key} is {json.dumps(value, ensure_ascii=False)}, "
                             f"meant {json.dumps(fixed, ensure_ascii=False)}")
    if found:
        raise Fail(f"{len(found)} text(s) are UTF-8 encoded twice, so teachers read mojibake: {found[0]}",
                   sent=fetch.request, got="\n".join(found[:10]),
                   fix="encode to UTF-8 once: text your app already holds as UTF-8 bytes must not go "
                       "through a UTF-8 encoder again (Perl: do not encode_utf8 before "
                       "JSON::PP->utf8, or use JSON::PP without ->utf8 on byte strings; PHP: no "
                       "utf8_encode on UTF-8 text; MySQL: a latin1 connection to a utf8 table)")
    texts = sum(1 for a in fetch.assignments() if isinstance(a, dict) for k in ("name", "description")
                if isinstance(a.get(k), str))
    return f"{texts} names and descriptions, none encoded twice"
