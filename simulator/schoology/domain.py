"""Fake Schoology and the fake Clever portal: page data and form rules (no Flask here).

Routes (``schoology.routes``) read the session and the form, call these functions and
render templates. Creating a Schoology assignment (the teacher's form here, ``POST /_sim/links``
in the control API) goes through ``link_assignment`` so the rules live in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, time as dtime
from decimal import Decimal, InvalidOperation
from typing import Any, Mapping
from urllib.parse import urlencode

from .. import bodies
from ..errors import BadRequest, FieldProblem
from ..gradebook.domain import GRADING_TYPE_LABELS
from ..ids import object_id
from ..models import App, Link
from ..pages import isolate
from ..sim import Simulator

SETTINGS_FIELDS = ("grading_enabled", "grading_category", "due_date", "due_time", "grading_type",
                   "grading_period", "max_points")
HIDDEN_FIELDS = ("assignment_id", "name", "description", "standards")
GRADING_TYPES = tuple(GRADING_TYPE_LABELS)
# the bound the control API declares for a link (openapi.json LinkRequest), for the form too
MAX_POINTS = bodies.document()["components"]["schemas"]["LinkRequest"]["properties"]["max_points"]["maximum"]


def launch_state(assignment_id: str) -> str:
    """Schoology's launch ``state=assignment:{assignmentID}`` (the prefix literal, the id as given)."""
    return f"assignment:{assignment_id}"


class PageError(Exception):
    """A page that cannot be shown to this person, in plain words (rendered as HTML)."""

    def __init__(self, status: int, title: str, detail: str, hints: list[str] | None = None):
        super().__init__(title)
        self.status = status
        self.title = title
        self.detail = detail
        self.hints = list(hints or [])


# --- people ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Persona:
    """Who is logged in (the fake Clever session), as the pages need it."""

    id: str
    role: str            # "teacher" or "student"
    record: dict
    district: dict

    @property
    def name(self) -> str:
        return full_name(self.record)


def full_name(user: dict) -> str:
    name = user.get("name") or {}
    return " ".join(p for p in (name.get("first"), name.get("last")) if p) or user.get("id", "?")


def persona(sim: Simulator, user_id: str | None) -> Persona | None:
    """The logged-in person, or None when nobody (or an unknown id) is in the session."""
    if not user_id:
        return None
    found = sim.clever.user(user_id)
    if found is None:
        return None
    role, record = found
    district = sim.clever.record("districts", record["district"]) or {"id": record["district"]}
    return Persona(user_id, role, record, district)


def require_persona(sim: Simulator, user_id: str | None, slot: int = 0) -> Persona:
    """The persona of this tab's slot, or a 401 page saying how to get one."""
    me = persona(sim, user_id)
    if me is None:
        where = f" in persona slot {slot} of this browser" if slot else ""
        raise PageError(401, "Nobody is logged in" + where,
                        "Pick a teacher or a student on the Schoology home page first.",
                        ["Schoology and the fake Clever share the logins of this browser: "
                         "each tab is the persona its address names (/u/1/… is slot 1)."])
    return me


def user_schools(user: dict) -> list[str]:
    role = next(iter(user.get("roles", {}).values()), {})
    return [s for s in dict.fromkeys([role.get("school"), *role.get("schools", [])]) if s]


PERSONAS_ALL_MAX = 500      # up to this many people, the switcher lists everyone
PERSONAS_PAGE = 300         # otherwise: one school (or a search) at a time, this many a page


@dataclass
class PersonaPicker:
    """What the persona switcher shows: option groups, and for a large roster the school
    filter and search that choose which people are listed."""

    groups: list[dict]
    large: bool = False                                   # filter/search shown
    schools: list[dict] = field(default_factory=list)     # [{label, schools: [{id, name}]}]
    school: str | None = None
    query: str = ""
    page: int = 1
    more: bool = False


def persona_choices(sim: Simulator, *, school_id: str | None = None, query: str | None = None,
                    page: int = 1, default_school: str | None = None) -> PersonaPicker:
    """Teachers and students grouped by district and school (teachers first).

    A small roster lists everyone; a large one (Clever's sandbox has 65,000 people) lists
    one school, or the matches of a name search, a page at a time — never every option.
    """
    clever = sim.clever
    districts = {i: clever.record("districts", i) or {"id": i} for i in sim.district_ids}
    order = {d: i for i, d in enumerate(sim.district_ids)}
    query = (query or "").strip()[:100]
    everyone = None if (school_id or query) else clever.all_people(PERSONAS_ALL_MAX)
    if everyone is not None:
        return PersonaPicker(_groups(clever, districts, order, everyone))
    schools = clever.records("schools", limit=100_000).rows
    by_district: dict[str, list[dict]] = {}
    for sc in sorted(schools, key=lambda x: (str(x.get("name") or ""), x["id"])):
        by_district.setdefault(sc["district"], []).append({"id": sc["id"], "name": sc.get("name")})
    school_groups = [{"label": districts.get(d, {}).get("name") or d, "schools": rows}
                     for d, rows in sorted(by_district.items(), key=lambda kv: order.get(kv[0], 99))]
    if not school_id and not query:
        school_id = default_school  # the logged-in person's school, if any
    picker = PersonaPicker([], large=True, schools=school_groups, school=school_id or None,
                           query=query, page=max(1, page))
    offset = (picker.page - 1) * PERSONAS_PAGE
    if query:
        found = clever.search_people(query, limit=PERSONAS_PAGE)  # first page of matches only
        picker.groups = [{"label": f"People matching “{query}”", "people": found.rows}]
        picker.more = found.has_more
    elif school_id:
        found = clever.school_people(school_id, limit=PERSONAS_PAGE, offset=offset)
        school = clever.record("schools", school_id) or {"name": "(no school)", "district": ""}
        district = districts.get(school.get("district"), {})
        picker.groups = [{"label": f"{district.get('name') or school.get('district')} — "
                                   f"{school.get('name')}", "people": found.rows}]
        picker.more = found.has_more
    return picker


def section_roster(sim: Simulator, section: dict) -> list[dict]:
    """A section's teachers, then its students by name, as persona rows (id, name, role, title)."""
    out = []
    teachers = section.get("teachers") or ([section["teacher"]] if section.get("teacher") else [])
    for role, ids in (("teacher", teachers), ("student", section.get("students") or [])):
        rows = []
        for user_id in dict.fromkeys(i for i in ids if isinstance(i, str)):
            found = sim.clever.user(user_id)
            if found is not None:
                rows.append({"id": user_id, "name": full_name(found[1]), "role": role, "title": None})
        out += sorted(rows, key=lambda r: r["name"].casefold())
    return out


def section_choices(sim: Simulator, me: Persona | None, limit: int = 200,
                    only_mine: bool = False) -> list[dict]:
    """Sections to pick people from (id, name, teacher): mine first, then the rest, at most
    ``limit`` so a huge roster never lists thousands; ``only_mine`` (a large roster, where
    any 200 sections would be arbitrary) lists the logged-in person's sections alone."""
    clever = sim.clever
    mine = set(clever.user_section_ids(me.id)) if me else set()
    if only_mine:
        page = [sec for sec in (clever.record("sections", sid) for sid in sorted(mine)[:limit])
                if sec is not None]
    else:
        page = clever.records("sections", limit=limit).rows
    rows = []
    for sec in page:
        teacher = clever.user(sec.get("teacher") or "") if sec.get("teacher") else None
        rows.append({"id": sec["id"], "name": sec.get("name") or sec["id"],
                     "teacher": full_name(teacher[1]) if teacher else "", "mine": sec["id"] in mine})
    rows.sort(key=lambda r: (not r["mine"], r["name"].casefold()))
    return rows


def _groups(clever, districts: dict, order: dict, people: list[dict]) -> list[dict]:
    schools: dict[str, dict] = {}
    groups: dict[tuple[str, str], dict] = {}
    for person in people:
        school_id = person["school"]
        if school_id and school_id not in schools:
            schools[school_id] = clever.record("schools", school_id) or {"name": "(no school)"}
        school = schools.get(school_id, {"name": "(no school)"})
        district = districts.get(person["district"], {"name": person["district"]})
        key = (person["district"], school_id)
        group = groups.setdefault(key, {"label": f"{district.get('name')} — {school.get('name')}",
                                        "district_order": order.get(person["district"], 99),
                                        "people": []})
        group["people"].append(person)
    out = sorted(groups.values(), key=lambda g: (g["district_order"], g["label"]))
    for group in out:
        group["people"].sort(key=lambda p: (p["role"] != "teacher", p["name"]))
    return out


# --- sections ----------------------------------------------------------------------------

def is_local_path(path: str) -> bool:
    """A path on this site to send the browser back to (never another host: no ``//``,
    no backslash, no scheme, no control characters)."""
    return (0 < len(path) <= 2000 and path.startswith("/") and not path.startswith("//")
            and "\\" not in path and path.isprintable() and ":" not in path.split("?", 1)[0])


def member_role(section: dict, user_id: str) -> str | None:
    if user_id in section.get("teachers", []) or section.get("teacher") == user_id:
        return "teacher"
    if user_id in section.get("students", []):
        return "student"
    return None


def my_sections(sim: Simulator, me: Persona) -> list[dict]:
    """Sections I teach (teacher) or am enrolled in (student), by name."""
    out = []
    for section_id in sim.clever.user_section_ids(me.id):
        section = sim.clever.record("sections", section_id)
        if section is not None and member_role(section, me.id) == me.role:
            out.append({**section, "material_count": len(sim.schoology.links(section_id=section_id))})
    return sorted(out, key=lambda s: (s.get("name") or "", s["id"]))


def get_section(sim: Simulator, section_id: str) -> dict:
    section = sim.clever.record("sections", section_id)
    if section is None:
        raise PageError(404, "Section not found",
                        f"There is no section with id {section_id!r} in the roster.",
                        ["Open a section from the Schoology home page."])
    return section


def require_member(sim: Simulator, me: Persona, section: dict, role: str | None = None) -> str:
    """My role in the section; 403 when I am not in it (or not in the needed role)."""
    mine = member_role(section, me.id)
    if mine is None:
        raise PageError(403, "Not your section",
                        f"{isolate(me.name)} is not a member of {isolate(section.get('name', section['id']))}.",
                        ["Switch to a teacher or student of this section on the Schoology home page."])
    if role is not None and mine != role:
        what = "Only the section's teachers can add materials." if role == "teacher" else \
            "Only students enrolled in the section can open its assignments."
        raise PageError(403, f"Only for {role}s", what,
                        [f"You are logged in as a {mine} ({isolate(me.name)}); switch persona to try it."])
    return mine


def district_settings(sim: Simulator, section: dict) -> dict:
    """The district's Schoology grading periods, categories and scales."""
    district = sim.clever.record("districts", section["district"]) or {}
    return district.get("schoology") or {}


def _titles(items: list[dict]) -> dict[str, str]:
    return {i["id"]: i.get("title") or i["id"] for i in items}


def section_materials(sim: Simulator, section: dict) -> list[dict]:
    """The Schoology assignments linked in a section, with titles for the ids they hold."""
    settings = district_settings(sim, section)
    categories = _titles(settings.get("grading_categories", []))
    periods = _titles(settings.get("grading_periods", []))
    apps = {a.client_id: a for a in sim.clever.apps()}
    out = []
    for link in sim.schoology.links(section_id=section["id"]):
        app = apps.get(link.client_id)
        grading_type = link.setting("grading_type")
        out.append({**link.data,
                    "category_title": categories.get(link.setting("grading_category") or "", None),
                    "period_title": periods.get(link.setting("grading_period") or "", None),
                    "grading_type_label": GRADING_TYPE_LABELS.get(grading_type, grading_type),
                    "app_name": app.name if app else link.client_id,
                    "app_missing": app is None})
    return out


def get_material(sim: Simulator, section: dict, link_id: str) -> dict:
    for link in section_materials(sim, section):
        if link["id"] == link_id:
            return link
    raise PageError(404, "Assignment not found",
                    f"{section.get('name', section['id'])} has no assignment with id {link_id!r}.",
                    ["Go back to the section and pick one of its materials."])


# --- apps --------------------------------------------------------------------------------

def apps_for_district(sim: Simulator, district_id: str, *, with_assignments: bool) -> list[App]:
    apps = [a for a in sim.clever.apps() if district_id in a.districts]
    if with_assignments:
        apps = [a for a in apps if a.assignments_url]
    return apps


def require_addable_app(sim: Simulator, section: dict, client_id: str) -> App:
    app = sim.clever.app(client_id)
    if app is None or section["district"] not in app.districts:
        raise PageError(404, "App not available",
                        f"No Clever app {client_id!r} is connected to this section's district.",
                        ["Pick an app from Add Materials."])
    if not app.assignments_url:
        raise PageError(404, "App has no assignments list",
                        f"{isolate(app.name)} has no assignments URL, so Schoology cannot list its assignments.",
                        ["Set assignments_url in the app's registration ([app] in the config "
                         "or PATCH /_sim/apps/{client_id})."])
    return app


def require_portal_app(sim: Simulator, me: Persona, client_id: str) -> App:
    app = sim.clever.app(client_id)
    if app is None or me.record["district"] not in app.districts:
        raise PageError(404, "App not in your portal",
                        f"No Clever app {client_id!r} is connected to {me.district.get('name', 'your district')}.",
                        ["Pick an app tile on the portal page."])
    return app


# --- the settings form -------------------------------------------------------------------

@dataclass
class SettingsForm:
    """The Add Materials settings form: values as typed, problems per field."""

    values: dict[str, Any]
    errors: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def add(self, problems: list[FieldProblem]) -> None:
        for p in problems:
            text = p.problem + (f" ({p.hint})" if p.hint else "")
            key = "due_date" if p.field == "due_time" else p.field
            if key in SETTINGS_FIELDS:
                self.errors.setdefault(key, []).append(text)
            else:
                self.general.append(f"{p.field}: {text}")


def default_settings(picked: Mapping[str, Any]) -> SettingsForm:
    """A fresh settings form for the picked partner assignment (grading on, 100 points)."""
    return SettingsForm({
        "assignment_id": picked.get("assignment_id", ""), "name": picked.get("name", ""),
        "description": picked.get("description", ""), "standards": list(picked.get("standards", [])),
        "grading_enabled": True, "grading_category": "", "due_date": "", "due_time": "",
        "grading_type": "points", "grading_period": "", "max_points": "100",
    })


def settings_of(link: Link, picked: Mapping[str, Any]) -> SettingsForm:
    """The settings form filled with an existing Schoology assignment's settings."""
    form = default_settings(picked)
    due = str(link.setting("due_date") or "")
    max_points = link.setting("max_points")
    form.values.update({
        "grading_enabled": link.setting("grading_enabled", True) is not False,
        "grading_category": link.setting("grading_category") or "",
        "due_date": due[:10], "due_time": due[11:16] if len(due) > 10 else "",
        "grading_type": link.setting("grading_type") or "points",
        "grading_period": link.setting("grading_period") or "",
        "max_points": "100" if max_points is None else str(max_points)})
    return form


def form_values(form: Mapping[str, Any], standards: list[str]) -> dict[str, Any]:
    """The submitted values, as strings (checkbox as a bool), to re-show on error."""
    values = {k: (form.get(k) or "") for k in ("assignment_id", "name", "description",
                                                "grading_category", "due_date", "due_time",
                                                "grading_type", "grading_period", "max_points")}
    values["grading_enabled"] = form.get("grading_enabled") in ("on", "1", "true", "yes")
    values["standards"] = [s for s in standards if s]
    return values


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME = re.compile(r"\d{2}:\d{2}")


def parse_settings(values: dict[str, Any], section_id: str, client_id: str
                   ) -> tuple[dict[str, Any], list[FieldProblem]]:
    """The ``link_assignment`` body for a submitted settings form, and form-only problems."""
    problems: list[FieldProblem] = []
    body: dict[str, Any] = {
        "section_id": section_id, "client_id": client_id,
        "assignment_id": values["assignment_id"] or None,
        "name": values["name"] or None,
        "description": values["description"] or None,
        "standards": values["standards"],
        "grading_enabled": values["grading_enabled"],
        "grading_type": values["grading_type"] or "points",
        "grading_category": values["grading_category"] or None,
        "grading_period": values["grading_period"] or None,
    }
    raw_points = values["max_points"].strip()
    if not raw_points:
        problems.append(FieldProblem("max_points", "is required", "Schoology's default is 100"))
    else:
        try:
            number = Decimal(raw_points)
            if not number.is_finite():
                raise InvalidOperation
        except InvalidOperation:
            problems.append(FieldProblem("max_points", f"{raw_points!r} is not a number",
                                         "e.g. 100 or 12.5"))
        else:
            if not 0 < number <= MAX_POINTS:  # before int(): 10**5000 would not even print
                problems.append(FieldProblem("max_points", f"must be a number above 0 (at most {MAX_POINTS})",
                                             "Schoology's default is 100"))
            else:
                body["max_points"] = int(number) if number == number.to_integral_value() else float(number)
    if body["grading_type"] not in GRADING_TYPES:
        problems.append(FieldProblem("grading_type", "must be one of " +
                                     ", ".join(GRADING_TYPE_LABELS[t] for t in GRADING_TYPES)))
    due_date, due_time = values["due_date"].strip(), values["due_time"].strip()
    if due_date:
        try:
            if not _DATE.fullmatch(due_date):
                raise ValueError
            date.fromisoformat(due_date)
        except ValueError:
            problems.append(FieldProblem("due_date", f"{due_date!r} is not a date",
                                         "use YYYY-MM-DD, e.g. 2026-10-02"))
        else:
            body["due_date"] = due_date
        if due_time:
            try:
                if not _TIME.fullmatch(due_time):
                    raise ValueError
                dtime.fromisoformat(due_time)
            except ValueError:
                problems.append(FieldProblem("due_time", f"{due_time!r} is not a time",
                                             "use HH:MM, e.g. 23:59"))
            else:
                if "due_date" in body:
                    body["due_date"] = f"{due_date}T{due_time}"
    elif due_time:
        problems.append(FieldProblem("due_date", "is needed when a due time is given"))
    return {k: v for k, v in body.items() if v is not None}, problems


# --- student launch and portal -----------------------------------------------------------

def launch_path(app: App, assignment_id: str) -> str:
    """The simulator's own authorize URL a Schoology assignment link points at (Clever's grade passback guide, Step 2)."""
    return "/oauth/authorize?" + urlencode({
        "response_type": "code", "client_id": app.client_id,
        "redirect_uri": app.primary_redirect_uri, "state": launch_state(assignment_id)})


def link_view(link: Link) -> dict:
    """A Schoology assignment as the control API answers its creation."""
    return {**link.as_json(), "launch_path": "/_sim/launch"}  # where a student's "Open" goes


def check_link(sim: Simulator, body: Any) -> dict[str, Any]:
    """The checked body of a Schoology assignment, or BadRequest: the settings page shows the
    same problems again when reopened (GET) as when its form was submitted."""
    body = bodies.check_request("post", "/_sim/links", body, "Invalid Schoology assignment")
    problems: list[FieldProblem] = []
    section = sim.clever.record("sections", body["section_id"])
    if section is None:
        problems.append(FieldProblem("section_id", "no such section in the roster"))
    if problems:
        raise BadRequest("Invalid Schoology assignment", problems)
    sim.clever.require_app(body["client_id"])
    district = sim.clever.record("districts", section["district"]) or {}
    schoology = district.get("schoology", {})
    for key, table in (("grading_category", "grading_categories"), ("grading_period", "grading_periods")):
        value = body.get(key)
        choices = [c["id"] for c in schoology.get(table, [])]
        if value is not None and value not in choices:
            problems.append(FieldProblem(key, f"{value!r} is not one of the district's {table}",
                                         "choices: " + ", ".join(choices)))
    if problems:
        raise BadRequest("Invalid Schoology assignment", problems)
    return body


def link_assignment(sim: Simulator, body: Any) -> Link:
    """Create the Schoology assignment a teacher would make from a partner assignment."""
    body = check_link(sim, body)
    section_id, client_id, assignment_id = body["section_id"], body["client_id"], body["assignment_id"]
    name, description, due_date = body.get("name"), body.get("description"), body.get("due_date")
    standards = body.get("standards", [])
    enabled = body.get("grading_enabled", True)
    grading_type = body.get("grading_type", "points")
    max_points = body.get("max_points", 100)
    section = sim.clever.record("sections", section_id)
    app = sim.clever.require_app(client_id)
    link_id, created = object_id(), sim.clock.iso()
    data = {
        "id": link_id, "section_id": section_id, "client_id": app.client_id,
        "assignment_id": assignment_id, "name": name or assignment_id, "description": description,
        "standards": standards, "grading_enabled": enabled, "grading_type": grading_type,
        "grading_category": body.get("grading_category"), "grading_period": body.get("grading_period"),
        "due_date": due_date, "max_points": max_points,
        "grading_scale": section.get("schoology", {}).get("grading_scale"),
        "created": created,
    }
    link = sim.schoology.link(Link(link_id, section_id, app.client_id, assignment_id,
                                          created, data))
    sim.grades_changed()
    return link
