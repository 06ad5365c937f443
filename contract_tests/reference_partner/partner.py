"""The app's parts, wired once per Flask app: its memory and its two Clever clients."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Mapping

from flask import current_app

from .clever import CleverClient
from .content import Assignment
from .grades import GradeClient
from .state import PartnerState
from .transport import Transport

EXTENSION = "reference_partner"


@dataclass
class Partner:
    """What the routes use: ``state`` (memory), ``clever`` (login, tokens), ``grades``."""

    state: PartnerState
    clever: CleverClient
    grades: GradeClient
    transport: Transport

    @classmethod
    def build(cls, cfg: Mapping[str, Any],
              assignments: "OrderedDict[str, Assignment]") -> "Partner":
        transport = Transport()
        clever = CleverClient(cfg, transport)
        return cls(PartnerState(assignments), clever,
                   GradeClient(cfg["GRADES_URL"], transport, clever), transport)

    @property
    def assignments(self) -> "OrderedDict[str, Assignment]":
        """The app's assignments by id (what its assignments API lists)."""
        return self.state.assignments

    def close(self) -> None:
        self.transport.close()


def current() -> Partner:
    """The partner of the app handling this request."""
    return current_app.extensions[EXTENSION]
