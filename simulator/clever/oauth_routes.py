"""OAuth routes (``/oauth/authorize``, ``/oauth/tokens``, ``/oauth/tokeninfo``) and the fake
Clever login page: parse the request, call ``clever.oauth``, serialise the answer."""

from __future__ import annotations

from flask import Blueprint, jsonify, redirect, render_template, request, session, url_for

from ..errors import BadRequest, FieldProblem, InvalidClient
from ..numbers import whole_number
from ..web import (SESSION_USER, bearer_token, check_csrf, form_or_json, local_path, local_query,
                   note, sim)
from . import oauth, tokens

bp = Blueprint("oauth", __name__)

@bp.get("/oauth/authorize")
def authorize():
    params = {k: v for k, v in request.args.items()}
    req = oauth.check_authorize(sim(), params)
    note(client_id=req.app["client_id"])
    error_url = oauth.authorize_error_redirect(req, params.get("response_type"))
    if error_url:
        return redirect(error_url, code=302)
    user_id = session.get(SESSION_USER)
    if user_id and sim().store.get_user(user_id) is not None:
        note(user_id=user_id)
        return redirect(oauth.login_redirect(sim(), req, user_id), code=302)
    return _login_page(req, params)


LOGIN_PAGE_SIZE = 200  # people per page of the picker (a large school has thousands)


def _login_page(req: oauth.AuthorizeRequest, params: dict):
    """The persona picker: district → school → user, plain links and one POST per choice.

    Everything comes from store queries (one district's schools, one school's people, a
    page at a time), so the page stays small and fast with a district of any size."""
    s = sim()
    store = s.store
    picked_district = params.get("district_id") or params.get("sim_district")
    picked_school = params.get("sim_school")
    districts = [d for d in (store.get_record("districts", i) for i in s.district_ids
                             if i in req.app["districts"]) if d is not None]
    if len(districts) == 1:
        picked_district = districts[0]["id"]
    schools = []
    if picked_district:
        schools = sorted(store.list_records("schools", district_id=picked_district,
                                            limit=100_000).rows,
                         key=lambda sc: (str(sc.get("name") or ""), sc["id"]))
    users, page, more = [], _page_number(params.get("sim_page")), False
    if picked_school and picked_district:
        found = store.school_people(picked_school, district_id=picked_district,
                                    limit=LOGIN_PAGE_SIZE, offset=(page - 1) * LOGIN_PAGE_SIZE)
        users, more = found.rows, found.has_more
    base = {k: v for k, v in params.items() if k not in ("sim_district", "sim_school", "sim_page")}
    return render_template("login.html", app=req.app, districts=districts, schools=schools,
                           users=users, picked_district=picked_district,
                           picked_school=picked_school, base=base, page=page, more=more,
                           query=request.query_string.decode())


def _page_number(raw: str | None) -> int:
    return whole_number(raw, 1, 999_999) or 1


@bp.post("/oauth/login")
def login():
    """Log a persona into the fake Clever, then continue the authorize request."""
    check_csrf()
    user_id = request.form.get("user_id", "")
    if sim().store.get_user(user_id) is None:
        raise BadRequest("Unknown persona", [FieldProblem("user_id", "is not in the roster",
                                                          "pick a user from the list")])
    session[SESSION_USER] = user_id
    next_query = local_query(request.form.get("next"))  # None (→ whoami) when not a query
    if next_query:
        return redirect(url_for("oauth.authorize") + "?" + next_query, code=303)
    return redirect(url_for("oauth.whoami"), code=303)


@bp.post("/oauth/logout")
def logout():
    check_csrf()
    session.pop(SESSION_USER, None)
    return redirect(local_path(request.form.get("back"), url_for("oauth.whoami")), code=303)


@bp.get("/oauth/whoami")
def whoami():
    """Who is logged into the fake Clever in this browser (a small status page)."""
    user_id = session.get(SESSION_USER)
    found = sim().store.get_user(user_id) if user_id else None
    return render_template("whoami.html", user=found[1] if found else None,
                           role=found[0] if found else None)


@bp.post("/oauth/tokens")
def token_exchange():
    body = form_or_json()
    basic = oauth.parse_basic(request.headers.get("Authorization"))
    app = oauth.authenticate_client(sim(), basic, body)
    note(client_id=app["client_id"])
    answer = oauth.exchange_code(sim(), app, body)
    issued = sim().store.get_token(answer["access_token"])  # None if revoked already
    note(user_id=issued["user_id"] if issued else None, token_kind="il")  # for the inspector
    response = jsonify(answer)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/oauth/tokens")
def district_tokens():
    basic = oauth.parse_basic(request.headers.get("Authorization"))
    if basic is None:
        raise InvalidClient("Listing district-app tokens needs HTTP Basic client_id:client_secret")
    app = oauth.authenticate_client(sim(), basic, {})
    note(client_id=app["client_id"])
    return jsonify(oauth.district_token_listing(sim(), app, dict(request.args.items())))


@bp.get("/oauth/tokeninfo")
def tokeninfo():
    token = tokens.resolve(sim(), bearer_token())
    note(client_id=token["client_id"], user_id=token.get("user_id"), token_kind=token["kind"])
    return jsonify(oauth.tokeninfo(sim(), token))
