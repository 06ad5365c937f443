"""Fake Schoology pages (teacher and student flows) and the fake Clever portal.

Routes read the session and the form, call ``schoology.domain`` (and
``schoology.domain.link_assignment`` / ``clever.oauth`` / ``partner_client``), and render.
Every page works without JavaScript; every state-changing form carries a CSRF token.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

from flask import (Blueprint, flash, get_flashed_messages, redirect, render_template, request,
                   url_for)
from markupsafe import Markup

from .. import partner_client
from ..clever import oauth
from ..errors import BadRequest, SimError
from ..models import App
from ..numbers import whole_number
from ..pages import isolate
from ..web import (MAX_SLOTS, check_csrf, current_slot, current_user_id, in_slot, sign_in,
                   signed_in, sim, slot_for, slot_root, url_in_slot)
from . import domain

bp = Blueprint("schoology", __name__)


def _me() -> domain.Persona | None:
    return domain.persona(sim(), current_user_id())


def _require_me() -> domain.Persona:
    return domain.require_persona(sim(), current_user_id(), current_slot())


def _here_in(slot: int) -> str:
    """This page as slot ``slot`` sees it (a GET page; else that slot's Schoology home)."""
    if request.method != "GET":
        return url_in_slot(slot, "schoology.home")
    query = request.query_string.decode("latin-1")  # as the browser sent it (still encoded)
    return in_slot(quote(request.path, safe="/"), slot) + (f"?{query}" if query else "")


@bp.app_context_processor
def _page_context() -> dict:
    """Every page's header shows who is logged in in this tab (its persona slot) and the
    browser's other personas, one click away (Schoology, gradebook, inspector alike)."""
    others = []
    slot = current_slot()
    for n, user_id in enumerate(signed_in()):
        person = domain.persona(sim(), user_id) if user_id and n != slot else None
        if person is not None:
            others.append({"slot": n, "person": person, "url": _here_in(n)})
    return {"me": _me(), "grading_type_labels": domain.GRADING_TYPE_LABELS,
            "persona_slot": slot, "other_personas": others}


def _form_again() -> str | None:
    """A refused form's way back, for its answer page: reloading that answer would send the
    same form again (an expired CSRF token stays expired, a full browser stays full), so
    the link is the form's address opened as a page (a GET: every one leads to the page
    holding the form, in this tab's persona slot). None for a page that was not a form's."""
    if request.method != "POST":
        return None
    return request.script_root + quote(request.path, safe="/")


@bp.errorhandler(domain.PageError)
def _page_error(exc: domain.PageError):
    """A refusal in plain words (an unknown persona, a full browser) as an HTML page."""
    return render_template("schoology_error.html", title=exc.title, detail=exc.detail,
                           hints=exc.hints, problems=[], again_url=_form_again()), exc.status


@bp.errorhandler(SimError)
def _sim_error(exc: SimError):
    """Rule breaks on these pages (CSRF, unknown persona) as an HTML page, not JSON."""
    problems = [f"{e.field}: {e.problem}" + (f" ({e.hint})" if e.hint else "") for e in exc.errors]
    return render_template("schoology_error.html", title=exc.message, detail="",
                           hints=[], problems=problems, again_url=_form_again()), exc.status


# --- home and persona -------------------------------------------------------------------

@bp.get("/schoology")
def home():
    me = _me()
    sections = domain.my_sections(sim(), me) if me else []
    args = request.args
    raw_page = args.get("page", "1")
    page = whole_number(raw_page, 1, 999_999) or 1
    mine = domain.user_schools(me.record) if me else []
    picker = domain.persona_choices(sim(), school_id=args.get("school") or None,
                                    query=args.get("q") or None, page=page,
                                    default_school=mine[0] if mine else None)
    groups = picker.groups
    picked = args.get("section") or ""
    section = sim().clever.record("sections", picked) if 0 < len(picked) <= 200 else None
    if section is not None:  # "who is in which section": that section's people only
        groups = [{"label": f"{section.get('name') or section['id']} — teachers, then students",
                   "people": domain.section_roster(sim(), section)}]
    return render_template("schoology_home.html", sections=sections, picker=picker,
                           groups=groups,
                           section_choices=domain.section_choices(sim(), me, only_mine=picker.large),
                           picked_section=section, messages=get_flashed_messages())


@bp.post("/schoology/persona")
def switch_persona():
    """``slot=new``: sign in as another persona (the slot already holding them, else a free
    one) and go there, this tab's persona unchanged; otherwise this tab's slot changes hands."""
    check_csrf()
    user_id = request.form.get("user_id", "")
    found = sim().clever.user(user_id) if user_id else None
    if found is None:
        raise domain.PageError(400, "Unknown persona",
                               f"{user_id!r} is not a teacher or student in the roster.",
                               ["Pick someone from the list on the Schoology home page."])
    slot = current_slot()
    if request.form.get("slot") == "new":
        slot = slot_for(user_id)
        if slot is None:
            raise domain.PageError(
                400, "Every persona slot of this browser is taken",
                f"This browser holds {MAX_SLOTS} personas, the limit; none is "
                f"{isolate(domain.full_name(found[1]))}.",
                ["Use “Switch persona” to change this tab's persona instead, or log one "
                 "persona out (Log out on its Schoology home page)."])
    sign_in(user_id, slot)
    flash(Markup("You are now <bdi>{}</bdi> ({}){}").format(
        domain.full_name(found[1]), found[0].replace("_", " "),
        f" in persona slot {slot} of this browser." if slot else "."))
    back = request.form.get("next", "")
    if domain.is_local_path(back):  # "view as" buttons come back to the page they were on
        return redirect(in_slot(back, slot), code=303)
    return redirect(url_in_slot(slot, "schoology.home"), code=303)


# --- sections -----------------------------------------------------------------------------

@bp.get("/schoology/sections/<section_id>")
def section_page(section_id: str):
    me = _require_me()
    section = domain.get_section(sim(), section_id)
    role = domain.require_member(sim(), me, section)
    return render_template("schoology_section.html", section=section, role=role,
                           materials=domain.section_materials(sim(), section),
                           roster=domain.section_roster(sim(), section) if role == "teacher" else [],
                           messages=get_flashed_messages())


@bp.get("/schoology/sections/<section_id>/assignments/<link_id>")
def material_page(section_id: str, link_id: str):
    me = _require_me()
    section = domain.get_section(sim(), section_id)
    role = domain.require_member(sim(), me, section)
    return render_template("schoology_assignment.html", section=section, role=role,
                           material=domain.get_material(sim(), section, link_id))


@bp.post("/schoology/sections/<section_id>/assignments/<link_id>/remove")
def remove_material(section_id: str, link_id: str):
    """Teacher: remove the assignment from the section (grades already posted are kept)."""
    check_csrf()
    _, section = _teacher_section(section_id)
    material = domain.get_material(sim(), section, link_id)
    sim().schoology.unlink(material["id"])
    sim().grades_changed()  # open gradebooks redraw their columns
    flash(Markup("Removed “<bdi>{}</bdi>” from <bdi>{}</bdi>; grades the app already posted are "
                 "kept and show under “Not linked yet”.").format(
        material["name"], section.get("name") or section_id))
    return redirect(url_for("schoology.section_page", section_id=section_id), code=303)


@bp.post("/schoology/sections/<section_id>/assignments/<link_id>/open")
def open_material(section_id: str, link_id: str):
    """Student "Open": the link acts as Log in with Clever with state=assignment:{id}."""
    check_csrf()
    me = _require_me()
    section = domain.get_section(sim(), section_id)
    domain.require_member(sim(), me, section, "student")
    material = domain.get_material(sim(), section, link_id)
    app = sim().clever.app(material["client_id"])
    if app is None:
        raise domain.PageError(404, "App no longer registered",
                               f"The Clever app {material['client_id']!r} behind this assignment "
                               "is not registered any more.")
    # The launch names this tab's slot (/u/{n}/oauth/authorize), so Clever logs in this
    # tab's persona whoever else this browser holds; under a tenant (/t/{name}/) it stays
    # in that tenant's Clever.
    return redirect(slot_root(current_slot(), explicit=True)
                    + domain.launch_path(app, material["assignment_id"]), code=303)


# --- teacher: Add Materials → Clever app --------------------------------------------------

def _teacher_section(section_id: str) -> tuple[domain.Persona, dict]:
    me = _require_me()
    section = domain.get_section(sim(), section_id)
    domain.require_member(sim(), me, section, "teacher")
    return me, section


@bp.get("/schoology/sections/<section_id>/add")
def add_materials(section_id: str):
    _, section = _teacher_section(section_id)
    apps = domain.apps_for_district(sim(), section["district"], with_assignments=True)
    return render_template("schoology_add.html", section=section, apps=apps)


def _fetch(me: domain.Persona, app: App) -> partner_client.AssignmentsResult:
    s = sim()
    token = oauth.mint_il_token(s, app, me.id)["access_token"]
    return partner_client.fetch_assignments(
        app.assignments_url, token, journal=s.journal, clock=s.clock,
        client_id=app.client_id, user_id=me.id,
        connect_timeout=float(s.cfg.get("PARTNER_CONNECT_TIMEOUT_S", partner_client.CONNECT_TIMEOUT_S)),
        read_timeout=float(s.cfg.get("PARTNER_READ_TIMEOUT_S", partner_client.READ_TIMEOUT_S)))


@bp.get("/schoology/sections/<section_id>/add/<client_id>")
def pick_assignment(section_id: str, client_id: str):
    """Fetch the partner's list live; show it, or every problem in plain words (502)."""
    me, section = _teacher_section(section_id)
    app = domain.require_addable_app(sim(), section, client_id)
    result = _fetch(me, app)
    linked = {l.assignment_id for l in sim().schoology.links(section_id=section_id,
                                                                 client_id=client_id)}
    return render_template("schoology_pick.html", section=section, app=app, result=result,
                           linked=linked), (200 if result.ok else 502)


def _settings_page(section: dict, app: App, form: domain.SettingsForm, status: int = 200):
    settings = domain.district_settings(sim(), section)
    return render_template("schoology_settings.html", section=section, app=app, form=form,
                           categories=settings.get("grading_categories", []),
                           periods=settings.get("grading_periods", []),
                           grading_types=list(domain.GRADING_TYPE_LABELS.items())), status


# The settings page is a GET page (Post/Redirect/Get): the pick list's "Choose" and a
# settings form with problems answer 303 to it, its values in the address, so Back, Forward
# and reload reopen it (no "Confirm Form Resubmission", nothing submitted twice).
PICKED_FIELDS = ("assignment_id", "name", "description")
SETTINGS_URL_MAX = 8192  # longer (a huge description): the POST answers with the page itself


def _settings_url(section_id: str, client_id: str, values: dict, *, check: bool) -> str | None:
    """The settings page's address holding ``values`` (and ``check=1``: show their problems),
    or None when it would be too long for every server and proxy to take."""
    fields = PICKED_FIELDS + (("grading_category", "due_date", "due_time", "grading_type",
                               "grading_period", "max_points") if check else ())
    query = [(k, values.get(k) or "") for k in fields]
    query += [("standards", s) for s in values.get("standards", [])]
    if check:
        query += [("grading_enabled", "on")] if values.get("grading_enabled") else []
        query.append(("check", "1"))
    url = url_for("schoology.settings_page", section_id=section_id, client_id=client_id)
    url += "?" + urlencode(query)
    return url if len(url) <= SETTINGS_URL_MAX else None


def _checked_form(values: dict, section_id: str, client_id: str
                  ) -> tuple[domain.SettingsForm, dict | None]:
    """The form with every problem of ``values``, and the checked body when there are none."""
    form = domain.SettingsForm(values)
    body, problems = domain.parse_settings(values, section_id, client_id)
    if problems:
        form.add(problems)
        return form, None
    try:
        return form, domain.check_link(sim(), body)
    except BadRequest as exc:
        form.add(exc.errors or [])
        if not exc.errors:
            form.general.append(exc.message)
        return form, None


def _picked_form(section_id: str, client_id: str, picked: dict) -> domain.SettingsForm:
    """The settings form for a freshly picked assignment (its current settings if linked)."""
    form = domain.default_settings(picked)
    existing = sim().schoology.links(section_id=section_id, client_id=client_id,
                                      assignment_id=picked["assignment_id"])
    if existing:  # "Change": the form starts from the assignment's current settings
        form = domain.settings_of(existing[0], picked)
    if not picked["assignment_id"]:
        form.general.append("assignment_id: is missing; pick an assignment from the list")
    return form


def _picked(source) -> dict:
    """The picked partner assignment as a form or an address carries it."""
    return {**{k: source.get(k, "") for k in PICKED_FIELDS},
            "standards": [s for s in source.getlist("standards") if s]}


@bp.post("/schoology/sections/<section_id>/add/<client_id>/settings")
def assignment_settings(section_id: str, client_id: str):
    """"Choose" on the pick list: on to the settings page (GET) for that assignment."""
    check_csrf()
    _, section = _teacher_section(section_id)
    app = domain.require_addable_app(sim(), section, client_id)
    picked = _picked(request.form)
    url = _settings_url(section_id, client_id, picked, check=False)
    if url is None:
        return _settings_page(section, app, _picked_form(section_id, client_id, picked))
    return redirect(url, code=303)


@bp.get("/schoology/sections/<section_id>/add/<client_id>/settings")
def settings_page(section_id: str, client_id: str):
    """The settings form of the assignment in the address; ``check=1``: with its problems.
    Without an assignment (an address copied bare) it is the app's pick list."""
    if "assignment_id" not in request.args:
        return redirect(url_for("schoology.pick_assignment", section_id=section_id,
                                client_id=client_id), code=303)
    _, section = _teacher_section(section_id)
    app = domain.require_addable_app(sim(), section, client_id)
    if request.args.get("check") == "1":
        values = domain.form_values(request.args, request.args.getlist("standards"))
        form, body = _checked_form(values, section_id, client_id)
        return _settings_page(section, app, form, 200 if body is not None else 400)
    return _settings_page(section, app, _picked_form(section_id, client_id, _picked(request.args)))


@bp.post("/schoology/sections/<section_id>/add/<client_id>")
def create_assignment(section_id: str, client_id: str):
    """Create the Schoology assignment (domain.link_assignment) and go to the section; with
    problems, back to the settings page showing them."""
    check_csrf()
    _, section = _teacher_section(section_id)
    app = domain.require_addable_app(sim(), section, client_id)
    values = domain.form_values(request.form, request.form.getlist("standards"))
    form, body = _checked_form(values, section_id, client_id)
    if body is None:
        url = _settings_url(section_id, client_id, values, check=True)
        if url is None:
            return _settings_page(section, app, form, 400)
        return redirect(url, code=303)
    existed = bool(sim().schoology.links(section_id=section_id, client_id=client_id,
                                          assignment_id=body.get("assignment_id")))
    link = domain.link_assignment(sim(), body)
    flash(Markup("{} “<bdi>{}</bdi>” (<bdi>{}</bdi>) {} grading.").format(
        "Updated" if existed else "Added", link.name, app.name,
        "with" if link.setting("grading_enabled") else "without"))
    return redirect(url_for("schoology.section_page", section_id=section_id), code=303)


# --- a form's address opened as a page ---------------------------------------------------
# The addresses below only take a form's POST. A browser GETs them too: Back or Forward onto
# an entry that was a POST, a reopened closed tab, an address copied from the bar. Each
# sends the tab to the page that holds the form (keeping its slot), not to a JSON 405.

@bp.get("/schoology/persona")
def persona_form_page():
    """The persona switcher lives on the Schoology home page."""
    return redirect(url_for("schoology.home"), code=303)


@bp.get("/schoology/sections/<section_id>/assignments/<link_id>/remove")
@bp.get("/schoology/sections/<section_id>/assignments/<link_id>/open")
def material_form_page(section_id: str, link_id: str):
    """Remove and Open are buttons of the section's assignment page."""
    return redirect(url_for("schoology.material_page", section_id=section_id, link_id=link_id),
                    code=303)


@bp.get("/portal/apps/<client_id>/launch")
def portal_launch_page(client_id: str):
    """A tile is a button of the portal page."""
    return redirect(url_for("schoology.portal"), code=303)


# --- fake Clever portal -------------------------------------------------------------------

@bp.get("/portal")
def portal():
    me = _me()
    apps = domain.apps_for_district(sim(), me.record["district"], with_assignments=False) if me else []
    return render_template("portal.html", apps=apps)


@bp.post("/portal/apps/<client_id>/launch")
def portal_launch(client_id: str):
    """A tile click: Clever-initiated login to the primary redirect URI, no state."""
    check_csrf()
    me = _require_me()
    app = domain.require_portal_app(sim(), me, client_id)
    req = oauth.AuthorizeRequest(app, app.primary_redirect_uri, None, None)
    return redirect(oauth.login_redirect(sim(), req, me.id), code=303)
