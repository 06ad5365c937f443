"""Clever as the simulator emulates it: the roster it serves, app registrations, tokens,
authorization codes and the grades partners post.

The backend is the only way into Clever's state: domain modules (``oauth``, ``grades``,
``data_api``) and routes call it, and it alone talks to the store (a repository of rows).
No Flask here.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, contextmanager
from typing import Any, Callable, Iterator

from .. import apps as apps_mod
from .. import ids
from ..clock import Clock
from ..errors import Revoked
from ..jsontext import dumps
from ..models import App, AuthCode, Grade, GradeVersion, Token
from ..store import Page, StateLoad, Store

# A snapshot's roster lists, in the order snapshots have always written them.
_ROSTER_ORDER = ("districts", "schools", "terms", "users", "sections", "apps", "courses")


class CleverBackend:
    """One simulator's Clever: every read and write of its roster, apps, tokens, codes, grades."""

    def __init__(self, store: Store, clock: Clock):
        self._store = store
        self._clock = clock
        self._district_ids: list[str] = []

    # --- the roster (read-only: it is replaced whole, at start-up or by a snapshot) -------

    def reload_district_ids(self) -> None:
        """Read the stored roster's district ids again (after the roster was replaced)."""
        self._district_ids = self._store.roster_ids("districts")

    @property
    def district_ids(self) -> list[str]:
        """The roster's districts, in the roster file's order."""
        return list(self._district_ids)

    def roster_count(self, kind: str) -> int:
        """How many records of one kind (``users``, ``sections``, …) the roster holds."""
        return self._store.count(kind)

    def roster_loaded(self) -> bool:
        return self._store.roster_loaded()

    def user(self, user_id: str) -> tuple[str, dict] | None:
        """(primary role, record) of a roster user, or None."""
        return self._store.get_user(user_id)

    def record(self, kind: str, record_id: str) -> dict | None:
        """A roster record (districts, schools, terms, users, sections, courses) by id."""
        return self._store.get_record(kind, record_id)

    def records(self, kind: str, **query: Any) -> Page:
        """A page of roster records sorted by id (``Store.list_records``' filters)."""
        return self._store.list_records(kind, **query)

    def legacy_ids(self) -> tuple[dict[str, str], dict[str, str]]:
        """(v3 id -> v2 id in the person's primary role, any v2 id -> v3 id)."""
        return self._store.legacy_ids()

    def legacy_role_ids(self) -> tuple[dict[tuple[str, str], str], dict[str, tuple[str, str]]]:
        """({(v3 id, role): v2 id}, {v2 id: (v3 id, role)}) of every non-student role."""
        return self._store.legacy_role_ids()

    def user_section_ids(self, user_id: str, *, roster_order: bool = False) -> list[str]:
        """A user's section ids, sorted by id (or in the roster file's order)."""
        return self._store.list_user_section_ids(user_id, roster_order=roster_order)

    def section_ids_of(self, user_ids: list[str]) -> dict[str, list[str]]:
        """Each user's section ids, for many users in one query."""
        return self._store.section_ids_of(user_ids)

    def sections_of(self, section_ids: list[str]) -> list[dict]:
        return self._store.sections_of(section_ids)

    def section_ids_where(self, column: str, value: str) -> list[str]:
        """Ids of the sections whose ``school_id``, ``term_id`` or ``course`` is ``value``."""
        return self._store.section_ids_where(column, value)

    def school_user_ids(self, school_id: str) -> list[str]:
        return self._store.school_user_ids(school_id)

    def school_people(self, school_id: str, **query: Any) -> Page:
        """People of one school, teachers first, then by name (the persona pickers)."""
        return self._store.school_people(school_id, **query)

    def search_people(self, text: str, **query: Any) -> Page:
        return self._store.search_people(text, **query)

    def all_people(self, limit: int) -> list[dict] | None:
        return self._store.all_people(limit)

    # --- apps ---------------------------------------------------------------------------

    def app(self, client_id: str) -> App | None:
        return self._store.get_app(client_id)

    def apps(self) -> list[App]:
        """Every registered app, oldest first."""
        return self._store.list_apps()

    def require_app(self, client_id: Any) -> App:
        """The registered app, or 404 naming ``client_id``."""
        app = self._store.get_app(client_id) if isinstance(client_id, str) else None
        if app is None:
            raise apps_mod.app_not_found(client_id)
        return app

    def register_app(self, spec: Any, existing: App | None = None) -> App:
        """Register or update an app and make sure it has a district-app token per district."""
        app = apps_mod.normalize_app(spec, self.district_ids, existing, self._clock.iso())
        store = self._store
        store.upsert_app(app)
        store.delete_district_tokens_not_in(app.client_id, app.districts)
        have = {t.district_id for t in store.district_tokens(app.client_id)}
        for district_id in app.districts:
            if district_id not in have:
                try:
                    store.insert_token(Token(
                        access_token=ids.district_token(), kind="district", id=ids.object_id(),
                        client_id=app.client_id, district_id=district_id, user_id=None,
                        scopes=app.scopes, created=self._clock.iso()))
                except Revoked:  # deleted by a DELETE /_sim/apps or a state load meanwhile
                    if existing is None:
                        raise apps_mod.app_removed_while_registered(app.client_id) from None
                    raise apps_mod.app_not_found(app.client_id) from None
        return app

    def app_view(self, app: App) -> dict:
        """An app as the control API shows it, with its district-app tokens."""
        return apps_mod.public_view(app, self._store.district_tokens(app.client_id))

    def delete_app(self, client_id: str) -> bool:
        """Delete an app with its tokens and codes; none of them works once this returns."""
        return self._store.delete_app(client_id)

    def app_count(self) -> int:
        return self._store.count("apps")

    # --- tokens and codes ---------------------------------------------------------------

    def token(self, access_token: str) -> Token | None:
        return self._store.get_token(access_token)

    @property
    def token_generation(self) -> int:
        """Read before looking a token up; a grade is refused if a revocation came since."""
        return self._store.token_generation

    def district_tokens(self, client_id: str, district_id: str | None = None) -> list[Token]:
        return self._store.district_tokens(client_id, district_id)

    def add_token(self, token: Token, *, from_code: str | None = None) -> None:
        """Store a new token (``Revoked`` when its app, or the code, went meanwhile)."""
        self._store.insert_token(token, from_code=from_code)

    def revoke_token(self, access_token: str, *, reissue: dict | None = None) -> Token | None:
        return self._store.revoke_token(access_token, reissue=reissue)

    def add_code(self, code: AuthCode, *, purge_expired_before: float | None = None) -> None:
        """Store a new code, deleting codes that expired before ``purge_expired_before``."""
        self._store.insert_code(code, purge_expired_before=purge_expired_before)

    def redeem_code(self, code: str, now: float) -> tuple[AuthCode | None, bool]:
        """(the code or None, whether this call was the first to use it)."""
        return self._store.redeem_code(code, now)

    # --- grades -------------------------------------------------------------------------

    def save_grade(self, **grade: Any) -> Grade:
        """Overwrite the (app, student, assignment) grade and append its history
        (``Store.save_grade``: group commit, version and first-seen time inside it)."""
        return self._store.save_grade(**grade)

    def grades(self, **filters: Any) -> list[Grade]:
        """Current grades matching every filter, oldest write first."""
        return self._store.list_grades(**filters)

    def grade_history(self, grade_id: str, **query: Any) -> list[dict]:
        """A grade's versions (records), oldest first."""
        return self._store.grade_history(grade_id, **query)

    def last_grade_seq(self) -> int:
        """The write order of the newest grade (0: none yet)."""
        return self._store.max_grade_seq()

    def grade_count(self) -> int:
        return self._store.count("grades")

    # --- snapshots ----------------------------------------------------------------------

    def consistent_view(self) -> AbstractContextManager[None]:
        """A block in which every read (this backend's and Schoology's) sees one moment."""
        return self._store.consistent_view()

    def export_state(self) -> dict[str, Any]:
        """Clever's part of a snapshot: roster, apps, tokens, grades and their history."""
        roster = self._store.roster_document()
        return {
            "roster": {kind: roster[kind] for kind in _ROSTER_ORDER if kind in roster},
            "apps": [app.as_json() for app in self._store.list_apps()],
            "tokens": [token.as_json() for token in self._store.list_tokens()],
            "grades": [{"id": g.id, "client_id": g.client_id, "user_id": g.user_id,
                        "assignment_id": g.assignment_id, "district_id": g.district_id,
                        "version": g.version, "record": g.record, "created": g.created,
                        "updated": g.updated, "seq": g.seq}
                       for g in self._store.list_grades(limit=None)],
            "grade_history": [{"seq": v.seq, "grade_id": v.grade_id, "version": v.version,
                               "record": v.record, "received_at": v.received_at}
                              for v in self._store.all_grade_versions()],
        }

    @contextmanager
    def replacing_state(self, roster: dict, roster_meta: Callable[[], dict[str, str]]
                        ) -> Iterator[StateLoad]:
        """Replace the roster (when it differs), apps, tokens, grades and links in one
        transaction (``Store.replacing_state``); each backend writes its part with
        ``load_state`` inside the block. Once committed, the roster's districts are read again."""
        with self._store.replacing_state(roster, roster_meta) as load:
            yield load
        self.reload_district_ids()

    def load_state(self, load: StateLoad, doc: dict[str, Any]) -> None:
        """Hand Clever's part of a (checked) snapshot back to the store, inside ``load``."""
        load.add_apps(App(client_id=a["client_id"], client_secret=a["client_secret"],
                          name=a["name"], redirect_uris=a["redirect_uris"],
                          assignments_url=a.get("assignments_url"), scopes=a["scopes"],
                          districts=a["districts"], created=a["created"]) for a in doc["apps"])
        load.add_tokens(Token(access_token=t["access_token"], kind=t["kind"], id=t["id"],
                              client_id=t["client_id"], district_id=t["district_id"],
                              user_id=t["user_id"], scopes=t["scopes"], created=t["created"])
                        for t in doc["tokens"])
        load.add_grades(Grade(id=g["id"], client_id=g["client_id"], user_id=g["user_id"],
                              assignment_id=g["assignment_id"], district_id=g["district_id"],
                              version=g["version"], seq=g["seq"], created=g["created"],
                              updated=g["updated"], record=g["record"], json=dumps(g["record"]))
                        for g in doc["grades"])
        load.add_grade_versions(GradeVersion(seq=h["seq"], grade_id=h["grade_id"],
                                             version=h["version"], record=h["record"],
                                             received_at=h["received_at"])
                                for h in doc["grade_history"])
