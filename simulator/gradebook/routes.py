"""The Schoology gradebook pages, exports and live updates.

Routes parse → call ``gradebook.domain`` → render.  Pages work without JavaScript;
``static/live.js`` adds live cell updates from the server-sent events stream below.

Live stream (``…/gradebook/events[?q=filter]``): ``event: grade`` per stored grade of the
section's students (``id:`` = the grade's seq, so a reconnect's ``Last-Event-ID`` resumes;
a grid cell's event carries its row's ``total`` and its column's class ``average`` as the
page shows them, over the students ``q`` keeps),
``event: layout`` when the section's assignments change or the simulator was reset,
a ``: heartbeat`` comment every ~15 s, and the stream ends after ~5 minutes (the browser
reconnects).  At most a few streams run at once per tenant, and the server caps long waits
overall (``serving.WaitDispatcher``: streams never hold a worker thread); more get 503 +
Retry-After and the script falls back to polling ``gradebook.json``. A closed tab ends its
stream within a second (waitress reports the closed connection; granian notices it at the
next write, so streams it serves write a heartbeat every ``limits.WRITE_PROBE_S``).
"""

from __future__ import annotations

import csv
import functools
import io
import json
import logging
import re
import threading
import time
from typing import Callable, Iterator
from urllib.parse import quote

from flask import (Blueprint, Flask, Response, current_app, render_template, request,
                   url_for)

from .. import limits
from ..errors import FieldProblem, ServiceUnavailable
from ..inspector.findings import findings_for
from ..jsontext import encode_by_item
from ..numbers import whole_number
from ..pages import isolate
from ..schoology.domain import Persona, full_name, member_role, persona
from ..web import admit_wait, current_user_id, sim
from . import domain

bp = Blueprint("gradebook", __name__)
log = logging.getLogger("clever_sim.gradebook")

HEARTBEAT_S = 15.0
STREAM_MAX_S = 300.0
MAX_STREAMS = 6
RETRY_MS = 2000
STOPPING = "the simulator is stopping"
TENANT_DELETED = "the tenant was deleted"
BATCH = 500          # grades read per wake
COALESCE_S = 0.1     # pause after a batch, so a burst of grades costs a few reads a second
_streams_lock = threading.Lock()
_EXPORT = json.JSONEncoder(ensure_ascii=False)  # gradebook.json's text: json.dumps' spacing


def _detail_prefix(section_id: str) -> str:
    """``/schoology/sections/{id}/gradebook/`` (one url_for per page, not one per cell)."""
    return url_for("gradebook.cell_detail", section_id=section_id, grade_id="x")[:-1]


class Refused(Exception):
    """This person may not see this gradebook page: who may, and a one-click switch to them."""

    def __init__(self, status: int, title: str, detail: str, switch_to: list[dict]):
        super().__init__(title)
        self.status, self.title, self.detail, self.switch_to = status, title, detail, switch_to


@bp.errorhandler(Refused)
def _refused(exc: Refused):
    return render_template("gradebook_refused.html", title=exc.title, detail=exc.detail,
                           switch_to=exc.switch_to, back=request.path), exc.status


def _teachers(section: dict) -> list[dict]:
    schoology = sim().schoology
    out = []
    for user_id in dict.fromkeys(section.get("teachers") or ([section["teacher"]]
                                                             if section.get("teacher") else [])):
        found = schoology.clever.user(user_id)
        if found is not None:
            out.append({"id": user_id, "name": full_name(found[1]), "role": "teacher"})
    return out


def _viewer(section: dict, *, students_too: bool = True) -> Persona:
    """Who is looking: a teacher of the section, or (``students_too``) one of its students,
    who sees only their own grades. Anyone else is refused with a switch to its teacher."""
    me = persona(sim(), current_user_id())
    name = section.get("name") or section["id"]
    role = member_role(section, me.id) if me else None
    if role == "teacher" or (role == "student" and students_too):
        return me
    if me is None:
        raise Refused(401, "Log in to see this gradebook",
                      f"The gradebook of {isolate(name)} is for its teachers; each student sees "
                      "their own grades.", _teachers(section))
    if role == "student":
        raise Refused(403, "Students see their own grades only",
                      f"{isolate(me.name)} is a student of {isolate(name)}: the class-wide exports "
                      "and live updates are for its teachers. Your own grades are on the gradebook "
                      "page.",
                      _teachers(section))
    raise Refused(403, "Not your section",
                  f"{isolate(me.name)} ({me.role}) is not a teacher of {isolate(name)}.",
                  _teachers(section))


def not_found(what: str, detail: str):
    return render_template("gradebook_not_found.html", what=what, detail=detail), 404


GRIDS_AT_ONCE = 1  # whole-section renders (page, CSV, JSON) one app builds at a time


def _grid_gate() -> threading.BoundedSemaphore:
    app = current_app
    with _streams_lock:
        if "gradebook_grid_gate" not in app.extensions:
            app.extensions["gradebook_grid_gate"] = threading.BoundedSemaphore(GRIDS_AT_ONCE)
        return app.extensions["gradebook_grid_gate"]


def one_grid_at_a_time(view: Callable) -> Callable:
    """Build and render whole sections one at a time: a 600-grade section's grid and text
    are ~3–4 MB of short-lived small objects, and concurrent renders stacked them (8
    connections: +9 MB of RSS that the heap of small objects then kept, bench/soak.py).
    Renders run on the one interpreter lock anyway, so taking turns costs little."""

    @functools.wraps(view)
    def gated(*args, **kwargs):
        with _grid_gate():
            return view(*args, **kwargs)

    return gated


def _section(section_id: str) -> dict | None:
    return sim().clever.record("sections", section_id)


def _no_section(section_id: str):
    return not_found("Section not found",
                     f"No section with id {section_id!r} is in the roster.")


# --- pages ---------------------------------------------------------------------------

@bp.get("/schoology/gradebook")
def sections():
    """Every section, 50 a page (cursor paging by id: ``?after=`` / ``?before=``)."""
    schoology = sim().schoology
    after, before = request.args.get("after") or None, request.args.get("before") or None
    page = schoology.clever.records("sections", limit=domain.SECTIONS_PER_PAGE,
                              starting_after=None if before else after, ending_before=before)
    rows = domain.section_rows(schoology, page.rows)
    has_next = page.has_more if not before else True
    has_prev = bool(after or (before and page.has_more))
    return render_template("gradebook_sections.html", rows=rows,
                           next_after=rows[-1].id if rows and has_next else None,
                           prev_before=rows[0].id if rows and has_prev else None,
                           total=schoology.clever.roster_count("sections"))


def _grid(section: dict, *, lti: bool = False) -> domain.Grid:
    """The section's grid with the rejected grade POSTs of its students (the journal's index);
    ``lti``: with what the LTI messages need (``domain.build_grid``)."""
    s = sim()
    grid = domain.build_grid(s.schoology, section, lti=lti)

    def explain(entry) -> tuple[str, str | None]:
        found = findings_for(s.journal.materialize(entry))
        first = next((f for f in found if f.level == "error"), found[0] if found else None)
        return (first.text, first.hint) if first else (f"HTTP {entry.get('status')}", None)

    found = s.journal.rejected_grades(st.id for st in grid.students)
    grid.rejected = domain.rejections(found, explain,
                                      lambda entry: s.journal.materialize(entry).get("time"))
    return grid


bp.add_app_template_global(domain.two_places, "two_places")


@bp.app_template_global()
def rejected_url(r: domain.Rejection) -> str:
    """The inspector, filtered to one (student, app, assignment)'s rejected grade POSTs."""
    return url_for("inspector.journal", path="/v1/grade", status="4xx", user=r.user_id,
                   assignment=r.assignment_id, client=r.client_id)


@bp.get("/schoology/sections/<section_id>/gradebook")
@one_grid_at_a_time
def section_gradebook(section_id: str):
    section = _section(section_id)
    if section is None:
        return _no_section(section_id)
    me = _viewer(section)
    grid = _grid(section)
    if me.role == "student":
        grid = domain.only_student(grid, me.id)
    args = request.args
    query = (args.get("q") or "")[:100]
    sort = args.get("sort") or "name"
    if sort not in ("name", "total") and sort not in {c.link_id for c in grid.columns}:
        sort = "name"  # an unknown column: the usual order, never an error
    descending = args.get("order") == "desc"
    shown_of = len(grid.students)
    grid.arrange(query, sort, descending)
    return render_template("gradebook_section.html", grid=grid, section=section,
                           detail_prefix=_detail_prefix(section_id),
                           teacher_view=me.role == "teacher", query=query, sort=sort,
                           descending=descending, shown_of=shown_of)


@bp.get("/schoology/sections/<section_id>/gradebook/<grade_id>")
def cell_detail(section_id: str, grade_id: str):
    section = _section(section_id)
    if section is None:
        return _no_section(section_id)
    me = _viewer(section)
    detail = domain.cell_detail(sim().schoology, section, grade_id)
    if detail is not None and me.role == "student" and detail.cell.user_id != me.id:
        detail = None  # another student's grade: as if it did not exist
    if detail is None:
        return not_found("Grade not found",
                         f"No grade with id {grade_id!r} belongs to a student of "
                         f"{isolate(section.get('name') or section_id)}.")
    return render_template("gradebook_cell.html", d=detail, section=section)


# --- exports -------------------------------------------------------------------------

def _filename(section: dict, ext: str) -> str:
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "-", str(section["id"]))[:80] or "section"
    return f"gradebook-{safe}.{ext}"


@bp.get("/schoology/sections/<section_id>/gradebook.csv")
@one_grid_at_a_time
def export_csv(section_id: str):
    section = _section(section_id)
    if section is None:
        return _no_section(section_id)
    _viewer(section, students_too=False)
    out = io.StringIO()
    out.write("\ufeff")  # a UTF-8 BOM: without it Excel reads the file as ANSI and garbles "Nguyễn"
    csv.writer(out, lineterminator="\r\n").writerows(domain.csv_rows(domain.build_grid(sim().schoology,
                                                                                       section)))
    return Response(out.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition":
                             f'attachment; filename="{_filename(section, "csv")}"',
                             "Cache-Control": "no-store"})


@bp.get("/schoology/sections/<section_id>/gradebook.json")
@one_grid_at_a_time
def export_json(section_id: str):
    """The structured gradebook; also the live page's polling fallback (``seq`` included)."""
    section = _section(section_id)
    if section is None:
        return _no_section(section_id)
    _viewer(section, students_too=False)
    grid = _grid(section, lti=True)
    if request.args.get("q"):  # the live page's filter: its students, its class averages
        grid.arrange((request.args.get("q") or "")[:100])
    doc = domain.json_export(grid, _detail_prefix(section_id), lazy=True)
    response = current_app.response_class(encode_by_item(doc, ("cells", "not_linked"), _EXPORT),
                                          mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    if request.args.get("download"):
        response.headers["Content-Disposition"] = \
            f'attachment; filename="{_filename(section, "json")}"'
    return response


# --- live updates --------------------------------------------------------------------

def _cfg(key: str, default: float) -> float:
    value = current_app.config.get(key, default)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) \
        and value > 0 else default


def _start_seq() -> int | None:
    """Where a (re)connecting stream resumes: Last-Event-ID, else ``?after_seq``."""
    for raw in (request.headers.get("Last-Event-ID"), request.args.get("after_seq")):
        found = whole_number(raw.strip(), 0, 10 ** 18 - 1) if raw is not None else None
        if found is not None:
            return found
    return None


class _Streams:
    """How many live streams are open in one tenant, capped (each holds a thread)."""

    def __init__(self, cap: int):
        self.cap = cap
        self.open = 0
        self.ending = threading.Event()  # the server is stopping: every stream says bye
        self._lock = threading.Condition()

    def acquire(self) -> bool:
        with self._lock:
            if self.open >= self.cap:
                return False
            self.open += 1
            return True

    def release(self) -> None:
        with self._lock:
            self.open = max(0, self.open - 1)
            self._lock.notify_all()

    def end_all(self, timeout: float) -> bool:
        """Tell every stream to end and wait (up to ``timeout``) until the server has sent
        their last chunk; whether none is left."""
        self.ending.set()
        with self._lock:
            return self._lock.wait_for(lambda: self.open <= 0, timeout=timeout)


def end_streams(app: Flask, timeout: float = 2.0) -> int:
    """Before a server stops: end the live streams of ``app`` and its tenants with a
    ``bye`` event, waiting up to ``timeout`` seconds for them to leave the app; how many
    there were. The server then sends each stream's last chunk (``RunningServer.stop``
    waits for that), so a browser sees a finished response, no
    ERR_INCOMPLETE_CHUNKED_ENCODING, and reconnects (the page says the simulator is not
    answering). Streams asked for from then on get a short, whole answer."""
    from ..tenants import EXTENSION

    tenants = app.extensions.get(EXTENSION)
    counters = [(each.extensions["gradebook_streams"], each.extensions["clever_sim"])
                for each in [app] + [t.app for t in (tenants.list() if tenants else [])]
                if "gradebook_streams" in each.extensions]
    deadline = time.monotonic() + timeout
    count = 0
    for slots, s in counters:
        count += slots.open
        slots.ending.set()
        s.grades_changed()  # streams waiting for a grade wake now
    for slots, _ in counters:
        slots.end_all(max(0.0, deadline - time.monotonic()))
    return count


def streams(app=None) -> _Streams:
    """The app's live-stream counter (``streams(app).open`` is how many are running)."""
    app = app or current_app
    with _streams_lock:
        if "gradebook_streams" not in app.extensions:
            cap = app.config.get("GRADEBOOK_SSE_MAX_STREAMS", MAX_STREAMS)
            ok = isinstance(cap, int) and not isinstance(cap, bool) and cap > 0
            app.extensions["gradebook_streams"] = _Streams(cap if ok else MAX_STREAMS)
        return app.extensions["gradebook_streams"]


def _event(name: str, data: dict, event_id: int | None = None) -> str:
    # Compact JSON has no raw newlines; <>& escaped so the text is inert anywhere.
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {name}\ndata: {text}\n\n"


@bp.get("/schoology/sections/<section_id>/gradebook/events")
def events(section_id: str):
    section = _section(section_id)
    if section is None:
        return _no_section(section_id)
    _viewer(section, students_too=False)
    gone = admit_wait()  # 503 past the server's cap on waits
    slots = streams()
    if slots.ending.is_set():  # a reconnect while the server stops: a whole, short answer
        return Response(f"retry: {RETRY_MS}\n\n" + _event("bye", {"reason": STOPPING}),
                        mimetype="text/event-stream", headers={"Cache-Control": "no-store"})
    if not slots.acquire():
        raise ServiceUnavailable("Too many live gradebook streams", [FieldProblem(
            "stream", f"{slots.cap} live gradebook streams are open on this simulator, its limit",
            "close other gradebook tabs, or reload later; the page polls gradebook.json "
            "meanwhile")], retry_after=30)
    released = threading.Event()

    def release() -> None:
        if not released.is_set():
            released.set()
            slots.release()

    s = sim()
    start = _start_seq()
    # A server that learns of a closed tab only by writing to it gets a heartbeat that often.
    heartbeat = min(_cfg("GRADEBOOK_SSE_HEARTBEAT_S", HEARTBEAT_S),
                    request.environ.get(limits.WRITE_PROBE_S, HEARTBEAT_S))
    stream = _stream(s, section, start, heartbeat,
                     _cfg("GRADEBOOK_SSE_MAX_S", STREAM_MAX_S),
                     _detail_prefix(section_id), gone, (request.args.get("q") or "")[:100],
                     slots.ending)
    response = Response(stream, mimetype="text/event-stream",
                        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
    response.call_on_close(release)
    request.environ[limits.STREAMED] = True  # its tenant stays open until the stream ends
    return response


def _stream(s, section: dict, start_seq: int | None, heartbeat_s: float, max_s: float,
            detail_prefix: str, gone: Callable[[], bool], query: str = "",
            ending: threading.Event | None = None) -> Iterator[str]:
    """The generator behind the events stream (no request context needed)."""
    try:
        yield from _stream_body(s, section, start_seq, heartbeat_s, max_s, detail_prefix, gone,
                                query, ending or threading.Event())
    except Exception:  # noqa: BLE001 - store closed at shutdown etc.: end the stream quietly
        log.debug("gradebook stream ended by an error", exc_info=True)


def _stream_body(s, section: dict, start_seq: int | None, heartbeat_s: float, max_s: float,
                 detail_prefix: str, gone: Callable[[], bool], query: str,
                 ending: threading.Event) -> Iterator[str]:
    schoology = s.schoology
    students = {u for u in section.get("students") or [] if isinstance(u, str)}
    deadline = time.monotonic() + max_s
    layout = schoology.links(section_id=section["id"])

    def whole_grid() -> domain.Grid:
        """The section's grid as the page's filter shows it: a new grade updates its cell,
        and the row's total and the column's class average are sent with it."""
        built = domain.build_grid(schoology, section)
        built.arrange(query)
        return built

    grid = whole_grid()
    columns, scale = grid.columns, grid.scale
    by_link = {c.link_id: c for c in columns}
    names = {st.id: st.sort_name for st in domain.section_students(schoology, section)}
    apps: dict[str, str] = {}
    last_seq = schoology.clever.last_grade_seq() if start_seq is None else start_seq
    def app_name(client_id: str) -> str:
        if client_id not in apps:
            found = schoology.clever.app(client_id)
            apps[client_id] = found.name if found else client_id
        return apps[client_id]

    yield f"retry: {RETRY_MS}\n: connected\n\n"
    last_sent = time.monotonic()
    while True:
        if gone():  # the tab closed: free the slot now, not at the next heartbeat
            return
        if ending.is_set():  # the server is stopping: its last chunk follows this event
            yield _event("bye", {"reason": STOPPING})
            return
        if s.retired:  # its tenant was deleted: the store closes once this stream ends
            yield _event("bye", {"reason": TENANT_DELETED})
            return
        now = time.monotonic()
        if now >= deadline:
            yield _event("bye", {"reason": "stream time limit reached; reconnect"})
            return
        next_beat = max(0.0, heartbeat_s - (now - last_sent))
        # The probe runs under the simulator's grade lock: keep it to one indexed MAX(seq);
        # the records are read after it, outside the lock.
        newer = s.wait_for(lambda: schoology.clever.last_grade_seq() > last_seq,
                           min(1.0, deadline - now, next_beat),
                           lambda: gone() or ending.is_set())
        rows = schoology.clever.grades(after_seq=last_seq, limit=BATCH) if newer else []
        out = []
        for grade in rows or []:
            record = grade.as_json()
            last_seq = max(last_seq, grade.seq)
            cell = domain.place_grade(schoology, section, record, students=students,
                                      columns=columns, scale=scale)
            if cell is None:
                continue
            totals = {}
            if cell.link_id and cell.link_id in by_link:
                grid.put(cell)
                totals = {"total": grid.total_text(cell.user_id),
                          "average": grid.average_text(by_link[cell.link_id])}
            out.append(_event("grade", {
                "seq": record.get("seq"), "grade_id": cell.grade_id, "user_id": cell.user_id,
                "assignment_id": cell.assignment_id, "client_id": cell.client_id,
                "link_id": cell.link_id,
                "detail_url": detail_prefix + quote(cell.grade_id, safe=""),
                "cell": cell.text_values(), **({} if cell.link_id else {
                    # a "not linked yet" row is drawn from the event alone
                    "student_name": names.get(cell.user_id, cell.user_id),
                    "app_name": app_name(cell.client_id)}), **totals}, record.get("seq")))
        if not rows:
            current = schoology.links(section_id=section["id"])
            if current != layout:
                layout = current
                grid = whole_grid()
                columns, scale = grid.columns, grid.scale
                by_link = {c.link_id: c for c in columns}
                out.append(_event("layout", {"reason": "the section's assignments changed"}))
            elif schoology.clever.last_grade_seq() < last_seq:
                last_seq = schoology.clever.last_grade_seq()
                grid = whole_grid()
                out.append(_event("layout", {"reason": "the simulator was reset"}))
        if out:
            yield "".join(out)
            last_sent = time.monotonic()
        if rows:
            time.sleep(COALESCE_S)  # under a burst of grades, send batches, not one per wake
        elif time.monotonic() - last_sent >= heartbeat_s:
            yield ": heartbeat\n\n"
            last_sent = time.monotonic()
