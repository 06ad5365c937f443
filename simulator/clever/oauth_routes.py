"""OAuth routes (``/oauth/authorize``, ``/oauth/tokens``, ``/oauth/tokeninfo``) and the fake
Clever login page: parse the request, call ``clever.oauth``, serialise the answer."""

from __future__ import annotations

import functools
from typing import Callable

from flask import Blueprint, jsonify, redirect, render_template, request, url_for

from ..errors import BadRequest, FieldProblem, InvalidClient, SimError
from ..numbers import whole_number
from ..web import (MAX_SLOTS, bearer_token, check_csrf, current_slot, current_user_id,
                   form_or_json, local_path, local_query, note, sign_in, sign_out, signed_in, sim,
                   slot_for, slot_named, url_in_slot)
from . import oauth, tokens

bp = Blueprint("oauth", __name__)

@bp.get("/oauth/authorize")
def authorize():
    params = {k: v for k, v in request.args.items()}
    req = oauth.check_authorize(sim(), params)
    note(client_id=req.app.client_id)
    error_url = oauth.authorize_error_redirect(req, params.get("response_type"))
    if error_url:
        return redirect(error_url, code=302)
    # /u/{n}/oauth/authorize (Schoology's Open from a tab): that tab's persona. A bare one (a
    # partner's "Log in with Clever"): the browser's only persona, or a chooser when several.
    people = _signed_in_people()
    if slot_named():
        user_id = current_user_id()
    else:
        user_id = people[0]["id"] if len(people) == 1 else None
    if user_id and sim().clever.user(user_id) is not None:
        note(user_id=user_id)
        return redirect(oauth.login_redirect(sim(), req, user_id), code=302)
    return _login_page(req, params, [] if slot_named() else people)


def _signed_in_people() -> list[dict]:
    """This browser's personas still in the roster, once each, by slot."""
    out, seen = [], set()
    for n, user_id in enumerate(signed_in()):
        found = sim().clever.user(user_id) if user_id and user_id not in seen else None
        if found is not None:
            seen.add(user_id)
            name = found[1].get("name") or {}
            out.append({"id": user_id, "role": found[0], "slot": n,
                        "name": " ".join(p for p in (name.get("first"), name.get("last"))
                                         if isinstance(p, str) and p) or user_id})
    return out


LOGIN_PAGE_SIZE = 200  # people per page of the picker (a large school has thousands)


def _login_page(req: oauth.AuthorizeRequest, params: dict, choose: list[dict]):
    """The persona picker: district → school → user, plain links and one POST per choice.

    Everything comes from store queries (one district's schools, one school's people, a
    page at a time), so the page stays small and fast with a district of any size."""
    s = sim()
    clever = s.clever
    picked_district = params.get("district_id") or params.get("sim_district")
    picked_school = params.get("sim_school")
    districts = [d for d in (clever.record("districts", i) for i in s.district_ids
                             if i in req.app.districts) if d is not None]
    if len(districts) == 1:
        picked_district = districts[0]["id"]
    schools = []
    if picked_district:
        schools = sorted(clever.records("schools", district_id=picked_district,
                                            limit=100_000).rows,
                         key=lambda sc: (str(sc.get("name") or ""), sc["id"]))
    users, page, more = [], _page_number(params.get("sim_page")), False
    if picked_school and picked_district:
        found = clever.school_people(picked_school, district_id=picked_district,
                                    limit=LOGIN_PAGE_SIZE, offset=(page - 1) * LOGIN_PAGE_SIZE)
        users, more = found.rows, found.has_more
    base = {k: v for k, v in params.items() if k not in ("sim_district", "sim_school", "sim_page")}
    return render_template("login.html", app=req.app, districts=districts, schools=schools,
                           users=users, picked_district=picked_district,
                           picked_school=picked_school, base=base, page=page, more=more,
                           query=request.query_string.decode(), choose=choose)


def _page_number(raw: str | None) -> int:
    return whole_number(raw, 1, 999_999) or 1


def _form_page(again: Callable[[], str]) -> Callable:
    """The fake Clever's login and logout are forms in a browser: a refusal (an expired
    form after a restart, a full browser) is an HTML page with the way back to the form
    (``again()``) when the browser asks for HTML; scripts keep the JSON error."""
    def wrap(view: Callable) -> Callable:
        @functools.wraps(view)
        def answer(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except SimError as exc:
                if "text/html" not in request.headers.get("Accept", ""):
                    raise
                problems = [f"{e.field}: {e.problem}" + (f" ({e.hint})" if e.hint else "")
                            for e in exc.errors]
                return render_template("schoology_error.html", title=exc.message, detail="",
                                       hints=[], problems=problems, again_url=again()), exc.status
        return answer
    return wrap


def _login_form() -> str:
    """The login page the form was on (its authorize request), else the whoami page."""
    query = local_query(request.form.get("next"))
    return url_for("oauth.authorize") + "?" + query if query else url_for("oauth.whoami")


@bp.post("/oauth/login")
@_form_page(_login_form)
def login():
    """Log a persona into the fake Clever (the URL's slot, else the one already holding
    them, else a free one), then continue the authorize request as that slot."""
    check_csrf()
    user_id = request.form.get("user_id", "")
    if sim().clever.user(user_id) is None:
        raise BadRequest("Unknown persona", [FieldProblem("user_id", "is not in the roster",
                                                          "pick a user from the list")])
    slot = current_slot() if slot_named() else slot_for(user_id)
    if slot is None:
        raise BadRequest("Every persona slot of this browser is taken", [FieldProblem(
            "user_id", f"would be persona {MAX_SLOTS + 1} of this browser (the limit is "
            f"{MAX_SLOTS})", "log a persona out on the Schoology home page, or pick one this "
            "browser is already signed in as")])
    sign_in(user_id, slot)
    next_query = local_query(request.form.get("next"))  # None (→ whoami) when not a query
    if next_query:
        # the slot is named, so the authorize request logs in this persona, not a chooser
        return redirect(url_in_slot(slot, "oauth.authorize", explicit=True) + "?" + next_query,
                        code=303)
    return redirect(url_in_slot(slot, "oauth.whoami"), code=303)


@bp.post("/oauth/logout")
@_form_page(lambda: local_path(request.form.get("back"), url_for("oauth.whoami")))
def logout():
    check_csrf()
    sign_out(current_slot())  # this tab's persona only: the browser's others stay
    return redirect(local_path(request.form.get("back"), url_for("oauth.whoami")), code=303)


@bp.get("/oauth/whoami")
def whoami():
    """Who is logged into the fake Clever in this browser (a small status page)."""
    user_id = current_user_id()
    found = sim().clever.user(user_id) if user_id else None
    return render_template("whoami.html", user=found[1] if found else None,
                           role=found[0] if found else None, slot=current_slot(),
                           people=[{**p, "url": url_in_slot(p["slot"], "oauth.whoami")}
                                   for p in _signed_in_people()])


@bp.post("/oauth/tokens")
def token_exchange():
    body = form_or_json()
    basic = oauth.parse_basic(request.headers.get("Authorization"))
    app = oauth.authenticate_client(sim(), basic, body)
    note(client_id=app.client_id)
    answer = oauth.exchange_code(sim(), app, body)
    issued = sim().clever.token(answer["access_token"])  # None if revoked already
    note(user_id=issued.user_id if issued else None, token_kind="il")  # for the inspector
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/oauth/tokens")
def district_tokens():
    basic = oauth.parse_basic(request.headers.get("Authorization"))
    if basic is None:
        raise InvalidClient("Listing district-app tokens needs HTTP Basic client_id:client_secret")
    app = oauth.authenticate_client(sim(), basic, {})
    note(client_id=app.client_id)
    return jsonify(oauth.district_token_listing(sim(), app, dict(request.args.items())))


@bp.get("/oauth/tokeninfo")
def tokeninfo():
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token.client_id, user_id=token.user_id, token_kind=token.kind)
    return jsonify(oauth.tokeninfo(sim(), token))
