"""The simulator's runtime: store, clock, journal, faults, rate limits, grade notifications.

One ``Simulator`` per Flask app (kept in ``app.extensions["clever_sim"]``); nothing here
imports Flask, so domain code and tools can use it directly.
"""

from __future__ import annotations

import hashlib
import json
import threading
from typing import Any, Callable

from . import apps as apps_mod
from . import ids
from .clock import Clock
from .config import resolve_db_path
from .faults import Faults
from .journal import Journal
from .ratelimit import RateLimiter
from .roster import default_roster_path, load_roster
from .store import Store


class Simulator:
    """Everything one running simulator knows."""

    def __init__(self, cfg: dict[str, Any], clock: Clock | None = None):
        self.cfg = cfg
        self.clock = clock or Clock()
        self.store = Store(resolve_db_path(cfg))
        self.journal = Journal(cfg["JOURNAL_CAP"])
        self.faults = Faults()
        self.rate = RateLimiter(cfg["RATE_LIMIT_PER_MIN"])
        self._grades_changed = threading.Condition()
        self.roster = self._load_roster()
        self._register_startup_apps()

    # --- start-up ----------------------------------------------------------------------

    def _load_roster(self) -> dict:
        """Load the configured roster; replace the stored one only when it changed."""
        source = self.cfg.get("ROSTER") or default_roster_path()
        doc = load_roster(source)
        digest = hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()
        with self.store.read() as db:
            row = db.execute("SELECT value FROM meta WHERE key = 'roster_digest'").fetchone()
        if row is None or row["value"] != digest:
            self.store.replace_roster(doc)
            with self.store.transaction() as db:
                db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('roster_digest', ?)",
                           (digest,))
        return doc

    def _register_startup_apps(self) -> None:
        for spec in list(self.roster.get("apps", [])) + list(self.cfg.get("APPS", [])):
            existing = self.store.get_app(spec["client_id"]) if spec.get("client_id") else None
            self.register_app(spec, existing)

    @property
    def district_ids(self) -> list[str]:
        return [d["id"] for d in self.roster["districts"]]

    # --- apps --------------------------------------------------------------------------

    def register_app(self, spec: Any, existing: dict | None = None) -> dict:
        """Register or update an app and make sure it has a district-app token per district."""
        app = apps_mod.normalize_app(spec, self.district_ids, existing, self.clock.iso())
        self.store.upsert_app(app)
        self.store.delete_district_tokens_not_in(app["client_id"], app["districts"])
        have = {t["district_id"] for t in self.store.district_tokens(app["client_id"])}
        for district_id in app["districts"]:
            if district_id not in have:
                self.store.insert_token({
                    "access_token": ids.district_token(), "kind": "district", "id": ids.object_id(),
                    "client_id": app["client_id"], "district_id": district_id, "user_id": None,
                    "scopes": app["scopes"], "created": self.clock.iso()})
        return app

    def app_view(self, app: dict) -> dict:
        return apps_mod.public_view(app, self.store.district_tokens(app["client_id"]))

    # --- grades: notify and wait -------------------------------------------------------

    def grades_changed(self) -> None:
        """Wake every waiter (long-polls, live gradebook) after a grade was stored."""
        with self._grades_changed:
            self._grades_changed.notify_all()

    def wait_for(self, probe: Callable[[], Any], timeout: float) -> Any:
        """Call ``probe`` until it returns something truthy or ``timeout`` seconds pass."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            with self._grades_changed:
                found = probe()
                if found:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return found
                self._grades_changed.wait(min(remaining, 1.0))

    # --- reset and shutdown ------------------------------------------------------------

    def reset(self) -> None:
        """Back to a clean slate for the next test: roster and apps stay, activity goes."""
        self.store.reset_activity()
        self.journal.clear()
        self.faults.clear()
        self.rate.clear()
        self.clock.reset()
        self.grades_changed()

    def close(self) -> None:
        self.store.close()
