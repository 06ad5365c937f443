"""Schoology as the simulator emulates it: the assignments teachers link to partner
assignments, per section, over Clever's roster (its sections, people and districts).

The only way into Schoology's state for ``schoology.domain``, the gradebook and the
routes; it alone talks to the store. No Flask here.
"""

from __future__ import annotations

from typing import Any

from ..clever.backend import CleverBackend
from ..models import Link
from ..store import StateLoad, Store


class SchoologyBackend:
    """One simulator's Schoology: its assignment links, and Clever's roster as it shows it."""

    def __init__(self, store: Store, clever: CleverBackend):
        self._store = store
        self.clever = clever  # the roster, apps and grades Schoology reads

    def section(self, section_id: str) -> dict | None:
        """A roster section (Schoology's course section), or None."""
        return self.clever.record("sections", section_id)

    def district(self, district_id: str) -> dict | None:
        """A roster district, with its ``schoology`` settings (grading scales, categories)."""
        return self.clever.record("districts", district_id)

    def link(self, link: Link) -> Link:
        """Create the Schoology assignment, or update the settings of the one this section
        already has for the same partner assignment (it keeps its id and creation time)."""
        return self._store.link_assignment(link)

    def unlink(self, link_id: str) -> Link | None:
        """Remove a Schoology assignment (its grades stay: they show as not linked yet)."""
        return self._store.unlink_assignment(link_id)

    def links(self, **filters: Any) -> list[Link]:
        """Schoology assignments matching every filter (``section_id``, ``client_id``,
        ``assignment_id``), oldest first; a page with ``limit`` and ``offset``."""
        return self._store.list_links(**filters)

    def is_linked(self, client_id: str, assignment_id: str, user_id: str) -> bool:
        """Whether a teacher linked this assignment in a section the student is enrolled in."""
        return self._store.is_linked(client_id, assignment_id, user_id)

    def link_count(self) -> int:
        return self._store.count("schoology_assignments")

    def export_state(self) -> dict[str, Any]:
        """Schoology's part of a snapshot: every assignment link, oldest first."""
        return {"schoology_assignments": [
            {"id": ln.id, "section_id": ln.section_id, "client_id": ln.client_id,
             "assignment_id": ln.assignment_id, "data": ln.data, "created": ln.created}
            for ln in self._store.list_links()]}

    def load_state(self, load: StateLoad, doc: dict[str, Any]) -> None:
        """Hand Schoology's part of a (checked) snapshot back to the store, inside ``load``."""
        load.add_links(Link(id=s["id"], section_id=s["section_id"], client_id=s["client_id"],
                            assignment_id=s["assignment_id"], created=s["created"], data=s["data"])
                       for s in doc["schoology_assignments"])
