"""The fake Schoology gradebook: grid, letters, exports, LTI messages.

No Flask here.  Everything is computed from the Schoology backend with ``decimal.Decimal``:

* a **column** is a Schoology assignment (a link of a partner assignment to a section);
* a **cell** is the current grade of ``(link.client_id, student, link.assignment_id)``:
  points = LTI score × max points, percent = LTI score × 100, letter = the highest level
  of the section's grading scale whose ``min_percent`` ≤ percent (the exact percent, not
  the rounded one shown);
* grades of a section's students for assignments no teacher linked in any of the
  student's sections are listed as **not linked yet**; a grade whose assignment is
  linked in another of the student's sections belongs to that section's gradebook;
* the LTI 1.1 ``replaceResult`` uses ``sourcedId = "{section_id}:{link_id}:{user_id}"``
  and ``messageIdentifier = "{grade_id}-v{version}"``; the LTI 1.3 AGS score sends
  ``scoreGiven`` = points **before** the 1.0 clamp (AGS allows extra credit),
  ``scoreMaximum`` = max points, ``timestamp`` = the grade's ``last_modified``.
"""

from __future__ import annotations

import difflib
import json
import unicodedata
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import quote

from .. import scoring
from ..pages import when
from ..models import Link
from ..schoology.backend import SchoologyBackend

SECTIONS_PER_PAGE = 50
HISTORY_SHOWN = 500  # newest versions on a cell's page (older ones: /_sim/grades/{id}/history)
NONE_TEXT = "—"
PASS_PERCENT = Decimal(60)  # Pass/Fail: a pass from 60% up (the usual lowest passing mark)
GRADING_TYPE_LABELS = {"points": "Points", "percentage": "Percentage", "letter": "Letter grade",
                       "pass_fail": "Pass/Fail"}

_CTX = Context(prec=60, rounding=ROUND_HALF_UP)
_CENT = Decimal("0.01")
_HUNDRED = Decimal(100)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


# --- numbers -------------------------------------------------------------------------

def dec(value: Any) -> Decimal | None:
    """A finite Decimal of an int/float/Decimal/str, or None."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None
    return out if out.is_finite() else None


def two_places(value: Decimal) -> str:
    """Up to 2 decimals, HALF_UP, no trailing zeros: 16 → "16", 16.666 → "16.67", 0.5 → "0.5"."""
    q = value.quantize(_CENT, rounding=ROUND_HALF_UP, context=_CTX)
    text = format(q, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def number(value: Decimal | None) -> int | float | str | None:
    """A Decimal as a JSON number (``scoring.json_number``), None stays None."""
    return None if value is None else scoring.json_number(value)


# --- grading scales ------------------------------------------------------------------

@dataclass(frozen=True)
class Scale:
    id: str
    title: str
    levels: tuple[tuple[str, Decimal], ...]  # (letter, min_percent), highest first

    def letter(self, percent: Decimal | None) -> str | None:
        """The highest level whose min_percent ≤ percent (None when no level fits)."""
        if percent is None:
            return None
        for letter, minimum in self.levels:
            if minimum <= percent:
                return letter
        return None


def find_scale(district: dict | None, scale_id: str | None) -> Scale | None:
    """The district's Schoology grading scale with this id, levels sorted highest first."""
    if not district or not scale_id:
        return None
    for raw in (district.get("schoology") or {}).get("grading_scales") or []:
        if isinstance(raw, dict) and raw.get("id") == scale_id:
            levels = []
            for level in raw.get("levels") or []:
                minimum = dec(level.get("min_percent")) if isinstance(level, dict) else None
                if minimum is not None and isinstance(level.get("letter"), str):
                    levels.append((level["letter"], minimum))
            levels.sort(key=lambda lv: lv[1], reverse=True)
            return Scale(str(raw.get("id")), str(raw.get("title") or raw.get("id")), tuple(levels))
    return None


# --- people and columns --------------------------------------------------------------

@dataclass(frozen=True)
class Student:
    id: str
    first: str
    last: str

    @property
    def name(self) -> str:
        return f"{self.first} {self.last}".strip() or self.id

    @property
    def sort_name(self) -> str:
        return f"{self.last}, {self.first}" if self.last and self.first else self.name

    def sort_key(self) -> tuple:
        return (_collate(self.last), _collate(self.first), self.id)


def _collate(text: str) -> str:
    """Sort text as a roster reads: case- and accent-insensitive (Núñez between Nguyen and Nwosu)."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def student_of(user_id: str, record: dict | None) -> Student:
    name = (record or {}).get("name") or {}
    first = name.get("first") if isinstance(name.get("first"), str) else ""
    last = name.get("last") if isinstance(name.get("last"), str) else ""
    return Student(user_id, first, last)


@dataclass(frozen=True)
class Column:
    """One linked Schoology assignment of the section."""

    link_id: str
    client_id: str
    assignment_id: str
    name: str
    max_points: Decimal
    category: str | None
    period: str | None
    grading_enabled: bool
    grading_type: str = "points"

    @property
    def max_text(self) -> str:
        return two_places(self.max_points)

    @property
    def type_label(self) -> str:
        return GRADING_TYPE_LABELS.get(self.grading_type, self.grading_type)

    @property
    def label(self) -> str:
        """Column title in exports: the name, plus the partner's id when they differ."""
        return self.name if self.name == self.assignment_id else f"{self.name} [{self.assignment_id}]"


def _titles(district: dict | None, table: str) -> dict[str, str]:
    rows = (district or {}).get("schoology", {}).get(table) or []
    return {r["id"]: r.get("title") or r["id"] for r in rows if isinstance(r, dict) and "id" in r}


def column_of(link: Link, categories: dict[str, str], periods: dict[str, str]) -> Column:
    max_points = dec(link.setting("max_points"))
    if max_points is None or max_points <= 0:
        max_points = _HUNDRED  # Schoology's default
    category = link.setting("grading_category")
    period = link.setting("grading_period")
    return Column(
        link_id=link.id, client_id=link.client_id, assignment_id=link.assignment_id,
        name=str(link.name), max_points=max_points,
        category=categories.get(category, category) if category else None,
        period=periods.get(period, period) if period else None,
        grading_enabled=link.setting("grading_enabled", True) is not False,
        grading_type=str(link.setting("grading_type") or "points"))


# --- cells ---------------------------------------------------------------------------

@dataclass
class Cell:
    """One grade as the gradebook shows it."""

    grade_id: str
    user_id: str
    assignment_id: str
    client_id: str
    lti_score: str | None
    points: Decimal | None
    max_points: Decimal | None
    percent: Decimal | None
    letter: str | None
    clamped: bool
    out_of_range: bool
    raw: str
    version: int | None
    last_modified: str | None
    seq: int | None
    link_id: str | None = None
    unreadable: str | None = None  # why the stored record could not be shown
    record: dict | None = field(default=None, repr=False, compare=False)  # for the LTI messages
    grading_type: str = "points"   # the column's: what the cell shows first

    @property
    def passed(self) -> bool | None:
        """Pass/Fail: a pass from PASS_PERCENT up (None without a score)."""
        return None if self.percent is None else self.percent >= PASS_PERCENT

    @property
    def shown(self) -> str:
        """What the cell shows first, by the column's grading type."""
        if self.points is None:
            return NONE_TEXT
        if self.grading_type == "percentage":
            return self.percent_text
        if self.grading_type == "letter":
            return self.letter or self.percent_text
        if self.grading_type == "pass_fail":
            return "Pass" if self.passed else "Fail"
        return self.points_text

    @property
    def shown_rest(self) -> tuple[str, str, str]:
        """(after the first value, percent, letter) as the cell's smaller text."""
        if self.points is None:
            return "", "", ""
        if self.grading_type == "points":
            return f" / {self.max_text}", self.percent_text, self.letter or ""
        if self.grading_type == "letter" and self.letter:
            return "", self.percent_text, ""
        if self.grading_type == "pass_fail":
            return "", self.percent_text, ""
        if self.grading_type == "percentage":
            return "", "", self.letter or ""
        return "", "", ""

    @property
    def points_text(self) -> str:
        if self.points is None:
            return NONE_TEXT
        return two_places(self.points)

    @property
    def max_text(self) -> str:
        return two_places(self.max_points) if self.max_points is not None else ""

    @property
    def percent_text(self) -> str:
        return f"{two_places(self.percent)}%" if self.percent is not None else NONE_TEXT

    @property
    def flags(self) -> list[str]:
        out = []
        if self.clamped:
            out.append("extra credit clamped to 1.0")
        if self.out_of_range:
            out.append(f"raw value out of range ({self.raw})")
        if self.unreadable:
            out.append(self.unreadable)
        return out

    def text_values(self) -> dict:
        """Plain text for the page script (set with textContent, never as HTML): ``shown``
        first, then ``after``, ``percent_shown`` and ``letter_shown``, by the grading type."""
        after, percent_shown, letter_shown = self.shown_rest
        return {"points": self.points_text, "max_points": self.max_text,
                "percent": self.percent_text, "letter": self.letter or "",
                "shown": self.shown, "after": after, "percent_shown": percent_shown,
                "letter_shown": letter_shown, "grading_type": self.grading_type,
                "lti_score": self.lti_score or "", "flags": self.flags,
                "title": self.title, "raw": self.raw,
                "last_modified": self.last_modified or "",
                "last_modified_text": when(self.last_modified) if self.last_modified else ""}

    @property
    def title(self) -> str:
        lti = f"LTI {self.lti_score}" if self.lti_score else "no LTI score"
        return f"{lti}; sent {self.raw}" if self.raw else lti

    def as_json(self) -> dict:
        return {"grade_id": self.grade_id, "user_id": self.user_id,
                "assignment_id": self.assignment_id, "client_id": self.client_id,
                "link_id": self.link_id, "lti_score": self.lti_score,
                "points": number(self.points), "max_points": number(self.max_points),
                "percent": number(self.percent), "letter": self.letter,
                "clamped": self.clamped, "out_of_range": self.out_of_range, "raw": self.raw,
                "version": self.version, "last_modified": self.last_modified, "seq": self.seq,
                "display": self.text_values()}


def exact_payload(record: dict) -> Any:
    """The partner's body as sent (numbers exact, as Decimal), or None if unreadable."""
    payload = record.get("payload")
    if not isinstance(payload, str):
        return None
    try:
        return json.loads(payload, parse_float=Decimal)
    except (ValueError, RecursionError):
        return None


def raw_values(record: dict, exact: bool = True) -> dict[str, Decimal]:
    """The score fields the partner sent: exact from the payload, or (``exact=False``, the
    grid's fast path) from the record's JSON numbers."""
    body = exact_payload(record) if exact else None
    out: dict[str, Decimal] = {}
    for key in ("percentage", "scoreGiven", "scoreMaximum"):
        value = body.get(key) if isinstance(body, dict) else None
        if value is None or isinstance(value, bool):
            value = record.get(key)
        d = dec(value)
        if d is not None:
            out[key] = d
    return out


def raw_text(record: dict, raw: dict[str, Decimal] | None = None) -> str:
    raw = raw_values(record) if raw is None else raw
    if record.get("format") == "percentage" and "percentage" in raw:
        return f"percentage {scoring.number_text(raw['percentage'])}"
    if "scoreGiven" in raw and "scoreMaximum" in raw:
        return (f"scoreGiven {scoring.number_text(raw['scoreGiven'])} / "
                f"scoreMaximum {scoring.number_text(raw['scoreMaximum'])}")
    return str(record.get("format") or "")


def raw_ratio(record: dict, raw: dict[str, Decimal] | None = None) -> Decimal | None:
    """The unclamped fraction the partner sent (percentage, or scoreGiven/scoreMaximum)."""
    raw = raw_values(record) if raw is None else raw
    if record.get("format") == "percentage" and "percentage" in raw:
        return raw["percentage"]
    if "scoreGiven" in raw and raw.get("scoreMaximum"):
        return _CTX.divide(raw["scoreGiven"], raw["scoreMaximum"])
    return None


def build_cell(record: dict, column: Column | None, scale: Scale | None, *,
               exact: bool = False, keep_record: bool = True) -> Cell:
    """A grade record → a cell (points only when the assignment is linked: ``column``);
    ``keep_record=False``: the cell does not hold the record (only the LTI messages read it)."""
    raw = raw_values(record, exact)
    ratio = raw_ratio(record, raw)
    lti = dec(record.get("lti_score"))
    unreadable = None
    if lti is None or lti < 0 or lti > 1:
        unreadable = "stored LTI score is unreadable"
        lti = None
    percent = _CTX.multiply(lti, _HUNDRED) if lti is not None else None
    max_points = column.max_points if column is not None else None
    points = _CTX.multiply(lti, max_points) if lti is not None and max_points is not None else None
    version = record.get("version")
    return Cell(
        grade_id=str(record.get("id")), user_id=str(record.get("userID")),
        assignment_id=str(record.get("assignmentID")), client_id=str(record.get("client_id")),
        lti_score=record.get("lti_score") if lti is not None else None,
        points=points, max_points=max_points, percent=percent,
        letter=scale.letter(percent) if scale is not None else None,
        clamped=record.get("clamped") is True,
        out_of_range=ratio is not None and (ratio < 0 or ratio > 1),
        raw=raw_text(record, raw), version=version if isinstance(version, int) else None,
        last_modified=record.get("last_modified"), seq=record.get("seq"),
        link_id=column.link_id if column is not None else None, unreadable=unreadable,
        grading_type=column.grading_type if column is not None else "points",
        record=record if keep_record else None)


# --- the grid ------------------------------------------------------------------------

@dataclass
class Grid:
    section: dict
    district: dict | None
    scale: Scale | None
    columns: list[Column]
    students: list[Student]
    cells: dict[tuple[str, str], Cell]       # (user_id, link_id) → cell
    not_linked: list[tuple[Student, Cell]]
    seq: int                                 # grades up to this seq are in the grid
    apps: dict[str, str] = field(default_factory=dict)  # client_id → app name
    rejected: dict[tuple[str, str, str], Rejection] = field(default_factory=dict)

    def cell(self, user_id: str, link_id: str) -> Cell | None:
        return self.cells.get((user_id, link_id))

    def total(self, user_id: str) -> tuple[Decimal, Decimal, Decimal] | None:
        """(points, of max points, percent) over the graded cells of columns with grading on."""
        got = [(c.points, c.max_points) for col in self.columns if col.grading_enabled
               and (c := self.cells.get((user_id, col.link_id))) is not None
               and c.points is not None and c.max_points]
        if not got:
            return None
        points = sum((p for p, _ in got), Decimal(0))
        maximum = sum((m for _, m in got), Decimal(0))
        return points, maximum, _CTX.divide(_CTX.multiply(points, _HUNDRED), maximum)

    def average(self, column: Column) -> tuple[Decimal, int] | None:
        """(mean percent, how many graded) of one column over the shown students."""
        got = [c.percent for s in self.students
               if (c := self.cells.get((s.id, column.link_id))) is not None and c.percent is not None]
        if not got:
            return None
        return _CTX.divide(sum(got, Decimal(0)), Decimal(len(got))), len(got)

    def total_text(self, user_id: str) -> dict[str, str]:
        """A row's total as the page shows it (and live events send it): "16 / 20", "80%"."""
        t = self.total(user_id)
        return ({"points": f"{two_places(t[0])} / {two_places(t[1])}",
                 "percent": f"{two_places(t[2])}%"} if t else {"points": NONE_TEXT, "percent": ""})

    def average_text(self, column: Column) -> dict[str, str]:
        """A column's class average as the page shows it: "80%", "(3 graded)"."""
        avg = self.average(column)
        return ({"percent": f"{two_places(avg[0])}%", "graded": f"({avg[1]} graded)"}
                if avg else {"percent": NONE_TEXT, "graded": ""})

    def put(self, cell: Cell) -> bool:
        """A newer grade into its cell (``cell.link_id`` set); False when the grid had it already."""
        key = (cell.user_id, cell.link_id)
        old = self.cells.get(key)
        if old is not None and (old.seq or 0) >= (cell.seq or 0):
            return False
        self.cells[key] = cell
        return True

    def arrange(self, query: str = "", sort: str = "name", descending: bool = False) -> None:
        """Keep the students whose name or id holds ``query``; sort by name, total or one
        column's percent (``sort`` = a link id); ungraded last either way."""
        q = _collate(query.strip())
        if q:
            self.students = [s for s in self.students
                             if q in _collate(s.name) or q in _collate(s.sort_name) or q in s.id.casefold()]
        if sort == "name":
            self.students.sort(key=Student.sort_key, reverse=descending)
            return

        def value(s: Student) -> Decimal | None:
            if sort == "total":
                t = self.total(s.id)
                return t[2] if t else None
            c = self.cells.get((s.id, sort))
            return c.percent if c is not None else None

        graded = [s for s in self.students if value(s) is not None]
        ungraded = [s for s in self.students if value(s) is None]
        graded.sort(key=lambda s: (value(s), s.sort_key()), reverse=descending)
        self.students = graded + sorted(ungraded, key=Student.sort_key)

    def rejection(self, user_id: str, column: Column) -> Rejection | None:
        """Rejected grade POSTs behind one cell of the grid."""
        return self.rejected.get((user_id, column.client_id, column.assignment_id))

    def rejection_rows(self) -> list[tuple[Student, Rejection]]:
        """Every rejection of the section's students, by student then assignment."""
        by_id = {s.id: s for s in self.students}
        rows = [(by_id[k[0]], r) for k, r in self.rejected.items() if k[0] in by_id]
        rows.sort(key=lambda sr: (sr[0].sort_key(), sr[1].assignment_id, sr[1].client_id))
        return rows


def section_scale(schoology: SchoologyBackend, section: dict) -> tuple[dict | None, Scale | None]:
    district = schoology.district(section.get("district", ""))
    scale_id = (section.get("schoology") or {}).get("grading_scale")
    return district, find_scale(district, scale_id)


def section_students(schoology: SchoologyBackend, section: dict) -> list[Student]:
    ids = list(dict.fromkeys(s for s in section.get("students") or [] if isinstance(s, str)))
    out = []
    for user_id in ids:
        found = schoology.clever.user(user_id)
        out.append(student_of(user_id, found[1] if found else None))
    out.sort(key=Student.sort_key)
    return out


def section_columns(schoology: SchoologyBackend, section: dict, district: dict | None) -> list[Column]:
    categories = _titles(district, "grading_categories")
    periods = _titles(district, "grading_periods")
    links = sorted(schoology.links(section_id=section["id"]),  # creation order; ties by id
                   key=lambda ln: (ln.created or "", ln.assignment_id, ln.id))
    return [column_of(link, categories, periods) for link in links]


def build_grid(schoology: SchoologyBackend, section: dict, *, lti: bool = False) -> Grid:
    """The whole gradebook of one section (one query per student, one for the links).

    ``lti``: the linked cells keep their grade records, for the JSON export's LTI messages;
    without it no cell does (the page, the CSV and the live stream never read them, and a
    record is ~1 KB of decoded JSON: ~1.5 MB of a 1,200-grade section's 1.8 MB grid, held
    while a page renders and for as long as a live stream stays open)."""
    seq = schoology.clever.last_grade_seq()  # read first: a grade stored meanwhile is re-sent live
    district, scale = section_scale(schoology, section)
    columns = section_columns(schoology, section, district)
    by_key = {(c.client_id, c.assignment_id): c for c in columns}
    students = section_students(schoology, section)
    cells: dict[tuple[str, str], Cell] = {}
    not_linked: list[tuple[Student, Cell]] = []
    for student in students:
        for grade in schoology.clever.grades(user_id=student.id, limit=1_000_000):
            record = grade.as_json()
            column = by_key.get((record.get("client_id"), record.get("assignmentID")))
            if column is not None:
                cells[(student.id, column.link_id)] = build_cell(record, column, scale,
                                                                 keep_record=lti)
            elif not schoology.is_linked(str(record.get("client_id")), str(record.get("assignmentID")),
                                     student.id):
                not_linked.append((student, build_cell(record, None, scale, keep_record=False)))
    not_linked.sort(key=lambda sc: (sc[1].assignment_id, sc[0].sort_key()))
    apps = {a.client_id: a.name for a in schoology.clever.apps()}
    return Grid(section, district, scale, columns, students, cells, not_linked, seq, apps)


def only_student(grid: Grid, user_id: str) -> Grid:
    """The grid as one of its students sees it: their own row, grades and rejections only."""
    grid.students = [s for s in grid.students if s.id == user_id]
    grid.cells = {k: c for k, c in grid.cells.items() if k[0] == user_id}
    grid.not_linked = [(s, c) for s, c in grid.not_linked if s.id == user_id]
    grid.rejected = {k: r for k, r in grid.rejected.items() if k[0] == user_id}
    return grid


def place_grade(schoology: SchoologyBackend, section: dict, record: dict, *, students: set[str] | None = None,
                columns: list[Column] | None = None, scale: Scale | None = None
                ) -> Cell | None:
    """Where a newly stored grade shows in this section: its cell (``link_id`` set when in
    the grid, None when "not linked yet"), or None when it is not this section's."""
    user_id = record.get("userID")
    if students is None:
        students = {s for s in section.get("students") or [] if isinstance(s, str)}
    if user_id not in students:
        return None
    if columns is None:
        district, scale = section_scale(schoology, section)
        columns = section_columns(schoology, section, district)
    for column in columns:
        if (column.client_id, column.assignment_id) == (record.get("client_id"),
                                                        record.get("assignmentID")):
            return build_cell(record, column, scale)
    if schoology.is_linked(str(record.get("client_id")), str(record.get("assignmentID")), user_id):
        return None  # linked in another of the student's sections: shown there
    return build_cell(record, None, scale)


# --- rejected grade POSTs --------------------------------------------------------------

@dataclass
class Rejection:
    """The rejected ``POST /v1/grade`` attempts for one (student, app, assignment)."""

    user_id: str
    client_id: str
    assignment_id: str
    count: int = 0
    last_entry_id: int | None = None
    last_time: str | None = None
    last_status: int | None = None
    last_error: str = ""
    last_hint: str | None = None

    def summary(self) -> str:
        """One line for a cell's tooltip and screen readers."""
        tries = f"{self.count} rejected grade POST{'' if self.count == 1 else 's'}"
        return f"{tries}; last: {self.last_error}" if self.last_error else tries


def rejections(found: Iterable[tuple[tuple[str, str, str], int, Any]],
               explain: Callable[[Any], tuple[str, str | None]],
               when: Callable[[Any], str]) -> dict[tuple[str, str, str], Rejection]:
    """Rejected grade POSTs keyed by (user_id, client_id, assignment_id), from the journal's
    index (``Journal.rejected_grades``: key, count, newest entry); ``explain(entry)`` → (the
    error in plain words, the fix) and ``when(entry)`` → its time as shown, of each key's
    newest entry."""
    out: dict[tuple[str, str, str], Rejection] = {}
    for key, count, e in found:
        r = out[key] = Rejection(*key, count=count)
        r.last_entry_id, r.last_status, r.last_time = e.get("id"), e.get("status"), when(e)
        r.last_error, r.last_hint = explain(e)
    return out


# --- one student's story (the QA view) ------------------------------------------------

@dataclass
class StoryGrade:
    """One current grade of a student, placed where the gradebook shows it."""

    cell: Cell
    section: dict | None     # the section whose gradebook shows it (None: not linked yet)
    column: Column | None


def student_grades(schoology: SchoologyBackend, user_id: str) -> list[StoryGrade]:
    """Every current grade of the student, each in the section where it is linked."""
    sections = [sec for sid in schoology.clever.user_section_ids(user_id)
                if (sec := schoology.section(sid)) is not None]
    out = []
    for grade in schoology.clever.grades(user_id=user_id, limit=100_000):
        record = grade.as_json()
        placed: StoryGrade | None = None
        for section in sections:
            links = schoology.links(section_id=section["id"], client_id=str(record.get("client_id")),
                                     assignment_id=str(record.get("assignmentID")))
            if links:
                district, scale = section_scale(schoology, section)
                column = column_of(links[0], _titles(district, "grading_categories"),
                                   _titles(district, "grading_periods"))
                placed = StoryGrade(build_cell(record, column, scale), section, column)
                break
        out.append(placed or StoryGrade(build_cell(record, None, None), None, None))
    return out


# --- sections list -------------------------------------------------------------------

@dataclass
class SectionRow:
    id: str
    name: str
    district: str
    teachers: list[str]
    students: int
    links: int
    scale: str | None


def section_rows(schoology: SchoologyBackend, sections: Iterable[dict]) -> list[SectionRow]:
    out = []
    for s in sections:
        teachers = []
        for t in s.get("teachers") or ([s["teacher"]] if s.get("teacher") else []):
            found = schoology.clever.user(t)
            teachers.append(student_of(t, found[1] if found else None).name)
        _, scale = section_scale(schoology, s)
        out.append(SectionRow(s["id"], str(s.get("name") or s["id"]), str(s.get("district", "")),
                              teachers, len(set(s.get("students") or [])),
                              len(schoology.links(section_id=s["id"])),
                              scale.title if scale else None))
    return out


# --- exports -------------------------------------------------------------------------

def csv_safe(value: Any) -> str:
    """A CSV cell a spreadsheet will not run as a formula (OWASP: prefix with '), with a NUL
    shown as ␀ as on the pages (Python's csv reader refuses a file holding one)."""
    text = "" if value is None else str(value).replace("\x00", "\u2400")
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(grid: Grid) -> list[list[str]]:
    """Header + one row per student: name, id, then points/percent/letter per assignment."""
    header = ["student_name", "student_id"]
    for c in grid.columns:
        header += [f"{c.label} points (of {two_places(c.max_points)})", f"{c.label} percent",
                   f"{c.label} letter", f"{c.label} grade ({c.type_label})"]
    rows = [header]
    for s in grid.students:
        row = [s.sort_name, s.id]
        for c in grid.columns:
            cell = grid.cell(s.id, c.link_id)
            if cell is None or cell.points is None:
                row += ["", "", "", ""]
            else:
                row += [two_places(cell.points), two_places(cell.percent), cell.letter or "",
                        cell.shown]
        rows.append(row)
    return [[csv_safe(v) for v in row] for row in rows]


def json_export(grid: Grid, detail_prefix: str | None = None, *, lazy: bool = False) -> dict:
    """The structured gradebook (also the live page's polling snapshot); ``detail_prefix``:
    each cell's ``detail_url`` is it + the grade id. ``lazy``: ``cells`` and ``not_linked``
    are iterators that build each cell's dict (with its LTI messages) only when it is read,
    for ``jsontext.encode_by_item``: a 1,200-grade section's dicts were 0.8 MB at once."""
    section = grid.section
    cells = ({**cell.as_json(), "lti": _cell_lti(section["id"], c, cell)}
             for s in grid.students for c in grid.columns
             if (cell := grid.cell(s.id, c.link_id)) is not None)
    not_linked = ({**cell.as_json(), "student_name": st.sort_name,
                   "app_name": grid.apps.get(cell.client_id, cell.client_id), "lti": None}
                  for st, cell in grid.not_linked)
    if detail_prefix is not None:
        cells, not_linked = _with_detail_url(cells, detail_prefix), \
            _with_detail_url(not_linked, detail_prefix)
    return {
        "section": {"id": section["id"], "name": section.get("name"),
                    "district": section.get("district"),
                    "grading_scale": None if grid.scale is None else {
                        "id": grid.scale.id, "title": grid.scale.title,
                        "levels": [{"letter": lt, "min_percent": number(mp)}
                                   for lt, mp in grid.scale.levels]}},
        "assignments": [{"link_id": c.link_id, "client_id": c.client_id,
                         "assignment_id": c.assignment_id, "name": c.name,
                         "max_points": number(c.max_points), "category": c.category,
                         "grading_period": c.period, "grading_enabled": c.grading_enabled,
                         "grading_type": c.grading_type}
                        for c in grid.columns],
        "students": [{"id": s.id, "first": s.first, "last": s.last} for s in grid.students],
        "cells": cells if lazy else list(cells),
        "not_linked": not_linked if lazy else list(not_linked),
        "rejected": [{"user_id": r.user_id, "student_name": st.name, "client_id": r.client_id,
                      "assignment_id": r.assignment_id, "count": r.count,
                      "last_error": r.last_error, "last_hint": r.last_hint,
                      "last_status": r.last_status, "last_entry_id": r.last_entry_id,
                      "last_time": r.last_time} for st, r in grid.rejection_rows()],
        "totals": [{"user_id": s.id, "points": number(t[0]), "max_points": number(t[1]),
                    "percent": number(t[2]), "shown": grid.total_text(s.id)} if t else
                   {"user_id": s.id, "points": None, "max_points": None, "percent": None,
                    "shown": grid.total_text(s.id)}
                   for s in grid.students for t in (grid.total(s.id),)],
        "averages": [{"link_id": c.link_id, "percent": number(a[0]) if a else None,
                      "graded": a[1] if a else 0, "shown": grid.average_text(c)}
                     for c in grid.columns for a in (grid.average(c),)],
        "seq": grid.seq,
    }


# --- cell detail and LTI messages ----------------------------------------------------

def sourced_id(section_id: str, link_id: str, user_id: str) -> str:
    """The LTI 1.1 lis_result_sourcedid the simulator uses: ``section:link:user``."""
    return f"{section_id}:{link_id}:{user_id}"


def message_id(record: dict) -> str:
    """The LTI 1.1 ``imsx_messageIdentifier``: one per stored version of a grade."""
    return f"{record.get('id')}-v{record.get('version')}"


def lti11_xml(section_id: str, column: Column, record: dict) -> str:
    return scoring.replace_result_xml(sourced_id(section_id, column.link_id, str(record["userID"])),
                                      str(record["lti_score"]), message_id(record))


def ags_json(column: Column, record: dict) -> dict:
    """AGS score: scoreGiven = unclamped fraction × max points (AGS allows extra credit)."""
    ratio = raw_ratio(record)
    if ratio is None or ratio < 0:
        ratio = dec(record.get("lti_score")) or Decimal(0)
    given = _CTX.multiply(ratio, column.max_points)
    given = given.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP, context=_CTX).normalize(_CTX)
    return scoring.ags_score(str(record["userID"]), given, column.max_points,
                             str(record.get("last_modified") or ""))


def lti_messages(section_id: str, column: Column, record: dict) -> dict:
    """Both messages Clever would send for this grade in one Schoology assignment, as data.

    A stored score that cannot be an LTI value (a loaded snapshot may hold anything) gives
    ``lti11``/``lti13`` None and a ``problem`` saying why, never an exception.
    """
    out: dict[str, Any] = {"section_id": section_id, "link_id": column.link_id,
                           "max_points": number(column.max_points)}
    try:
        out["lti11"] = {
            "sourced_id": sourced_id(section_id, column.link_id, str(record["userID"])),
            "message_id": message_id(record), "content_type": "application/xml",
            "body": lti11_xml(section_id, column, record)}
        out["lti13"] = {"content_type": scoring.AGS_SCORE_MEDIA_TYPE,
                        "body": ags_json(column, record)}
    except (ValueError, TypeError, KeyError) as exc:
        out.update(lti11=None, lti13=None, problem=f"cannot build the LTI messages: {exc}")
    return out


def _with_detail_url(cells: Iterator[dict], prefix: str) -> Iterator[dict]:
    for cell in cells:
        cell["detail_url"] = prefix + quote(str(cell["grade_id"]), safe="")
        yield cell


def _cell_lti(section_id: str, column: Column, cell: Cell) -> dict | None:
    return lti_messages(section_id, column, cell.record) if cell.record is not None else None


def grade_lti(schoology: SchoologyBackend, grade_id: str) -> dict | None:
    """The current version of a grade with its LTI messages for every Schoology assignment
    it is passed back to (one per section of the student linking it; none when not linked
    yet), or None when no grade has this id."""
    history = schoology.clever.grade_history(grade_id, newest=1)
    if not history:
        return None
    record = history[-1]
    user_id = str(record.get("userID"))
    out = {"grade_id": str(record.get("id")), "user_id": user_id,
           "assignment_id": record.get("assignmentID"), "client_id": record.get("client_id"),
           "version": record.get("version"), "lti_score": record.get("lti_score"), "links": []}
    for link in schoology.links(client_id=str(record.get("client_id")),
                                 assignment_id=str(record.get("assignmentID"))):
        section = schoology.section(link.section_id)
        if section is None or user_id not in (section.get("students") or []):
            continue
        district = schoology.district(section.get("district", ""))
        column = column_of(link, _titles(district, "grading_categories"),
                           _titles(district, "grading_periods"))
        out["links"].append(lti_messages(section["id"], column, record))
    return out


def pretty_exact(value: Any, indent: int = 2, level: int = 0) -> str:
    """Indented JSON with Decimal numbers written exactly as the partner sent them."""
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k, ensure_ascii=False)}: {pretty_exact(v, indent, level + 1)}"
                 for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        return "[\n" + ",\n".join(inner + pretty_exact(v, indent, level + 1) for v in value) + \
            "\n" + pad + "]"
    if isinstance(value, Decimal):
        return scoring.number_text(value)
    return json.dumps(value, ensure_ascii=False)


def pretty_payload(record: dict) -> str:
    body = exact_payload(record)
    if body is None:
        return str(record.get("payload") or "")
    try:
        return pretty_exact(body)
    except RecursionError:
        return str(record.get("payload"))


def history_rows(history: list[dict]) -> list[dict]:
    """Every stored version, oldest first: time, format, raw values, LTI score, warnings,
    the raw payload and what changed in it since the version before (a unified diff)."""
    rows = []
    before: list[str] | None = None
    for rec in history:
        payload = pretty_payload(rec)
        lines = payload.splitlines()
        diff = None if before is None else "\n".join(
            difflib.unified_diff(before, lines, "previous version", f"version {rec.get('version')}",
                                 lineterm="", n=1))
        before = lines
        rows.append({"version": rec.get("version"), "time": rec.get("last_modified"),
                     "format": rec.get("format"), "raw": raw_text(rec),
                     "lti_score": rec.get("lti_score"), "clamped": rec.get("clamped") is True,
                     "warnings": [w for w in rec.get("warnings") or [] if isinstance(w, str)],
                     "token_kind": rec.get("token_kind"), "payload": payload, "diff": diff})
    return rows


@dataclass
class Detail:
    section: dict
    student: Student
    record: dict
    cell: Cell
    column: Column | None
    history: list[dict]
    payload: str
    context: str
    pox_xml: str | None
    ags: str | None
    sourced_id: str | None
    app_name: str | None
    problem: str | None = None


def cell_detail(schoology: SchoologyBackend, section: dict, grade_id: str) -> Detail | None:
    """Everything about one grade of a section's student, or None (→ 404)."""
    history = schoology.clever.grade_history(grade_id, newest=HISTORY_SHOWN)
    if not history:
        return None
    record = history[-1]
    user_id = record.get("userID")
    if user_id not in (section.get("students") or []):
        return None
    district, scale = section_scale(schoology, section)
    column = None
    for c in section_columns(schoology, section, district):
        if (c.client_id, c.assignment_id) == (record.get("client_id"), record.get("assignmentID")):
            column = c
            break
    found = schoology.clever.user(user_id)
    student = student_of(user_id, found[1] if found else None)
    cell = build_cell(record, column, scale, exact=True)
    context = record.get("context")
    pox = ags = sid = problem = None
    if column is not None and cell.lti_score is not None:
        sid = sourced_id(section["id"], column.link_id, user_id)
        messages = lti_messages(section["id"], column, record)
        problem = messages.get("problem")
        if problem is None:
            pox = messages["lti11"]["body"]
            ags = json.dumps(messages["lti13"]["body"], indent=2, ensure_ascii=False)
    app = schoology.clever.app(str(record.get("client_id")))
    return Detail(section=section, student=student, record=record, cell=cell, column=column,
                  history=history_rows(history), payload=pretty_payload(record),
                  context=json.dumps(context if isinstance(context, dict) else {}, indent=2,
                                     ensure_ascii=False, default=str),
                  pox_xml=pox, ags=ags, sourced_id=sid, app_name=app.name if app else None,
                  problem=problem)
