"""``partner.toml`` for the contract suite: load it, check it, say exactly what to fix.

The file is the one ``clever-sim serve --config`` reads. The suite needs more
of it than the simulator does: fixed credentials (your running app already uses them),
the redirect URIs, the assignments URL and, for the grade checks, the completion hook::

    [app]
    name = "Mathly"
    client_id = "mathly-dev"
    client_secret = "mathly-secret"
    redirect_uris = ["http://localhost:5001/clever/callback"]     # first = primary
    assignments_url = "http://localhost:5001/clever/assignments"

    [contract]
    complete_assignment_hook = "http://localhost:5001/test-hooks/complete"
    landing_url_pattern = "/assignments/{assignment_id}"
    grade_timeout_s = 10

Every problem is a ``ContractConfigError`` whose message names the file, the key and the
fix; the runner prints it and exits 2.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10 only
    import tomli as tomllib

PLACEHOLDER = "{assignment_id}"
DOCS_HINT = "see docs/contract-tests.md in the clever-sim repository"

EXAMPLE_APP = """\
[app]
name = "Mathly"
client_id = "mathly-dev"
client_secret = "mathly-secret"
redirect_uris = ["http://localhost:5001/clever/callback"]   # first = primary
assignments_url = "http://localhost:5001/clever/assignments\""""

# [contract] keys and their defaults. The last two are undocumented (hidden from the
# "known:" list of _check_contract): they exist so the suite's own tests can run fast;
# partners never need them.
CONTRACT_KEYS: dict[str, Any] = {
    "complete_assignment_hook": None,
    "landing_url_pattern": None,
    "grade_timeout_s": 10.0,
    "assignments_timeout_s": 10.0,   # hidden: the "answers within" limit of ASSIGN-007
    "settle_s": 1.0,                 # hidden: how long to watch for extra grade POSTs
}
_LIMITS = {"grade_timeout_s": (0.1, 300.0), "assignments_timeout_s": (0.05, 120.0),
           "settle_s": (0.0, 30.0)}
_APP_KEYS = {"name", "client_id", "client_secret", "redirect_uris", "assignments_url",
             "districts", "scopes"}


class ContractConfigError(Exception):
    """partner.toml cannot be used; the message says what to fix."""


@dataclass(frozen=True)
class ContractConfig:
    """A checked partner.toml."""

    path: str
    app: dict                                  # the registration sent to POST /_sim/apps
    hook: str | None = None
    landing_url_pattern: str | None = None
    grade_timeout_s: float = 10.0
    assignments_timeout_s: float = 10.0
    settle_s: float = 1.0
    simulator: dict = field(default_factory=dict)

    @property
    def client_id(self) -> str:
        return self.app["client_id"]

    @property
    def client_secret(self) -> str:
        return self.app["client_secret"]

    @property
    def redirect_uri(self) -> str:
        """The primary redirect URI (Schoology's launch links go there)."""
        return self.app["redirect_uris"][0]

    @property
    def assignments_url(self) -> str:
        return self.app["assignments_url"]


def _url_problem(value: Any) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return "must be a non-empty string (an absolute http:// or https:// URL)"
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return f"{value!r} is not an absolute http(s) URL; write it as http://host:port/path"
    if parts.fragment:
        return f"{value!r} must not contain a #fragment"
    return None


def _check_app(doc: Mapping[str, Any], where: str) -> dict:
    if "app" not in doc:
        raise ContractConfigError(
            f"{where}: no [app] table. The suite registers your app with the simulator from it; "
            f"add:\n{EXAMPLE_APP}")
    table = doc["app"]
    if not isinstance(table, Mapping):
        raise ContractConfigError(f"{where}: [app] must be a table, like:\n{EXAMPLE_APP}")
    unknown = sorted(set(table) - _APP_KEYS)
    if unknown:
        raise ContractConfigError(f"{where}: unknown key [app].{unknown[0]} "
                                  f"(known: {', '.join(sorted(_APP_KEYS))})")
    app = dict(table)
    uris = app.get("redirect_uris")
    if uris is None:
        raise ContractConfigError(
            f"{where}: [app].redirect_uris is missing: list your app's Clever callback URL(s), "
            f"the first being the primary one Schoology's links use, e.g. "
            f"redirect_uris = [\"http://localhost:5001/clever/callback\"]")
    if not isinstance(uris, list) or not uris:
        raise ContractConfigError(f"{where}: [app].redirect_uris must be a non-empty list of URLs "
                                  f"(the first is the primary redirect URI)")
    for i, uri in enumerate(uris):
        problem = _url_problem(uri)
        if problem:
            raise ContractConfigError(f"{where}: [app].redirect_uris[{i}] {problem}")
    if "assignments_url" not in app:
        raise ContractConfigError(
            f"{where}: [app].assignments_url is missing: the URL where your app serves its "
            f"assignments list to Clever (Clever's grade passback guide, Step 1), e.g. "
            f"assignments_url = \"http://localhost:5001/clever/assignments\"")
    problem = _url_problem(app["assignments_url"])
    if problem:
        raise ContractConfigError(f"{where}: [app].assignments_url {problem}")
    for key in ("client_id", "client_secret"):
        value = app.get(key)
        if value is None:
            raise ContractConfigError(
                f"{where}: [app].{key} is missing: your running app already uses fixed Clever "
                f"credentials; put the same ones here so the suite registers them "
                f"(e.g. {key} = \"mathly-dev{'-secret' if key == 'client_secret' else ''}\")")
        if not isinstance(value, str) or not value or len(value) > 200:
            raise ContractConfigError(f"{where}: [app].{key} must be a non-empty string "
                                      f"(at most 200 characters)")
    name = app.setdefault("name", "Partner app")
    if not isinstance(name, str) or not name.strip():
        raise ContractConfigError(f"{where}: [app].name must be a non-empty string")
    return app


def _number(table: Mapping[str, Any], key: str, where: str) -> float:
    value = table.get(key, CONTRACT_KEYS[key])
    lo, hi = _LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not lo <= value <= hi:
        raise ContractConfigError(f"{where}: [contract].{key} must be a number of seconds from "
                                  f"{lo:g} to {hi:g}, not {value!r}")
    return float(value)


def _check_contract(doc: Mapping[str, Any], where: str) -> dict:
    table = doc.get("contract", {})
    if not isinstance(table, Mapping):
        raise ContractConfigError(f"{where}: [contract] must be a table")
    unknown = sorted(set(table) - set(CONTRACT_KEYS))
    if unknown:
        documented = ("complete_assignment_hook", "landing_url_pattern", "grade_timeout_s")
        raise ContractConfigError(f"{where}: unknown key [contract].{unknown[0]} "
                                  f"(known: {', '.join(documented)})")
    out: dict[str, Any] = {}
    hook = table.get("complete_assignment_hook")
    if hook is not None:
        problem = _url_problem(hook)
        if problem:
            raise ContractConfigError(f"{where}: [contract].complete_assignment_hook {problem}")
    out["hook"] = hook
    pattern = table.get("landing_url_pattern")
    if pattern is not None:
        if not isinstance(pattern, str) or PLACEHOLDER not in pattern:
            raise ContractConfigError(
                f"{where}: [contract].landing_url_pattern must be a string containing "
                f"{PLACEHOLDER}, the page a student lands on for an assignment, e.g. "
                f"\"/assignments/{PLACEHOLDER}\" (a path, or a full URL)")
        if pattern.count(PLACEHOLDER) != 1:
            raise ContractConfigError(f"{where}: [contract].landing_url_pattern must contain "
                                      f"{PLACEHOLDER} exactly once")
    out["landing_url_pattern"] = pattern
    for key in ("grade_timeout_s", "assignments_timeout_s", "settle_s"):
        out[key] = _number(table, key, where)
    return out


def parse_config(doc: Mapping[str, Any], where: str = "partner.toml") -> ContractConfig:
    """Check an already-read TOML document."""
    from simulator.config import unknown_top_level

    stray = unknown_top_level(doc)
    if stray:
        raise ContractConfigError(f"{where}: {stray}")
    app = _check_app(doc, where)
    contract = _check_contract(doc, where)
    simulator = doc.get("simulator", {})
    if not isinstance(simulator, Mapping):
        raise ContractConfigError(f"{where}: [simulator] must be a table")
    return ContractConfig(path=where, app=app, simulator=dict(simulator), **contract)


def load_config(path: str | Path | None) -> ContractConfig:
    """Read and check ``path``; every problem is a ContractConfigError naming the fix."""
    if path is None or str(path) == "":
        raise ContractConfigError("no config file: pass --config partner.toml (your app's [app] "
                                  f"and [contract] settings; {DOCS_HINT})")
    p = Path(path)
    if not p.exists():
        raise ContractConfigError(f"config file not found: {p} (check the path of your "
                                  f"partner.toml; {DOCS_HINT})")
    if p.is_dir():
        raise ContractConfigError(f"{p} is a directory; pass the partner.toml file itself")
    try:
        with p.open("rb") as fh:
            doc = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ContractConfigError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise ContractConfigError(f"{p}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ContractConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    return parse_config(doc, str(p))
