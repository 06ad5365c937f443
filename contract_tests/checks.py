"""Every check of the contract suite, in run order, and ``--only`` selection.

The checks live in one module per seed step (``assignments_checks``, ``login_checks``,
``grade_checks``); importing them registers them. ``CONTRACT_KEY`` is where the runner
hands its prepared ``Contract`` to the pytest session (``conftest.py``).
"""

from __future__ import annotations

import re

import pytest

# Import order is run order: Step 1, Step 2, Step 3 of the seed.
from . import assignments_checks  # noqa: F401,I001 - registers ASSIGN-*
from . import login_checks  # noqa: F401,I001 - registers LOGIN-001..009, LOGIN-011/012
from . import grade_checks  # noqa: F401,I001 - registers GRADE-001..011, GRADE-014..016
from . import token_checks  # noqa: F401,I001 - registers GRADE-012/013 (revocations)
from . import secret_checks  # noqa: F401,I001 - registers LOGIN-010 (reads the whole run: last)
from .config import ContractConfigError
from .harness import REGISTRY, Check
from .session import Contract

CHECKS: list[Check] = list(REGISTRY)
BY_ID: dict[str, Check] = {c.id: c for c in CHECKS}
AREAS = tuple(dict.fromkeys(c.area for c in CHECKS))

CONTRACT_KEY = pytest.StashKey[Contract]()


def select(only: str | None) -> list[Check]:
    """The checks named by ``--only`` (ids or areas, comma- or space-separated; any case)."""
    if not only or not only.strip():
        return list(CHECKS)
    wanted: set[str] = set()
    for token in re.split(r"[,\s]+", only.strip()):
        if not token:
            continue
        name = token.upper()
        if name in BY_ID:
            wanted.add(name)
        elif name in AREAS:
            wanted.update(c.id for c in CHECKS if c.area == name)
        else:
            raise ContractConfigError(
                f"--only: unknown check {token!r}; use ids ({', '.join(c.id for c in CHECKS)}) "
                f"or areas ({', '.join(AREAS)})")
    return [c for c in CHECKS if c.id in wanted]
