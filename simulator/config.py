"""Settings, layered like flaskr's: defaults < TOML file < CLEVER_SIM_* env < flags/tests.

A partner's TOML file declares its app (``[app]``), the contract-test settings
(``[contract]``) and, optionally, server settings (``[simulator]``).
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib


class ConfigError(Exception):
    """A setting is missing, of the wrong type, or a file cannot be read."""


DEFAULTS: dict[str, Any] = {
    "DB": None,                    # None: <DATA_DIR>/clever-sim.db; ":memory:" for throwaway
    "DATA_DIR": ".clever-sim",
    "ROSTER": None,                # None: the packaged default roster
    "ROSTER_CACHE": None,          # a directory of ready databases keyed by roster digest
    "STRICT": False,               # every grade warning becomes a 400
    "RATE_LIMIT": False,           # enforce Clever's 1200 requests/min per token
    "RATE_LIMIT_PER_MIN": 1200,
    "JOURNAL_CAP": 10_000,
    "JOURNAL_MAX_MB": 2,           # memory the journal may hold (journal.BYTES_CAP)
    "GRADE_BODY_LIMIT": 64 * 1024,
    "CODE_TTL_S": 60,
    "WAIT_MAX_S": 60,
    "APPS": [],                    # extra app registrations (from [app] in a TOML file)
    "CONFIG_FILE": None,           # the TOML file read (named in its errors), if any
    "CONTRACT": {},
    "SECRET_KEY": None,            # None: random per process
    "ALLOWED_HOSTS": [],           # host names the control API answers besides loopback ("*": any)
    "CONTROL_TOKEN": None,         # set: /_sim/* needs Authorization: Bearer {it} (simulator.guard)
}

CONTROL_TOKEN_ENV = "CLEVER_SIM_CONTROL_TOKEN"  # also read by every client of the control API


def control_headers(token: str | None) -> dict[str, str]:
    """What a client of the control API (CLI, pytest plugin, contract suite) sends for the
    server's control token (nothing without one); ``simulator.guard`` checks it."""
    return {"Authorization": f"Bearer {token}"} if token else {}


# env var name -> (config key, parser)
_ENV: dict[str, tuple[str, Any]] = {
    "CLEVER_SIM_DB": ("DB", str),
    "CLEVER_SIM_DATA_DIR": ("DATA_DIR", str),
    "CLEVER_SIM_ROSTER": ("ROSTER", str),
    "CLEVER_SIM_ROSTER_CACHE": ("ROSTER_CACHE", str),
    "CLEVER_SIM_STRICT": ("STRICT", "bool"),
    "CLEVER_SIM_RATE_LIMIT": ("RATE_LIMIT", "bool"),
    "CLEVER_SIM_JOURNAL_CAP": ("JOURNAL_CAP", int),
    "CLEVER_SIM_JOURNAL_MAX_MB": ("JOURNAL_MAX_MB", int),
    "CLEVER_SIM_SECRET_KEY": ("SECRET_KEY", str),
    "CLEVER_SIM_ALLOWED_HOSTS": ("ALLOWED_HOSTS", "list"),
    CONTROL_TOKEN_ENV: ("CONTROL_TOKEN", str),
}

_TOML_SIMULATOR_KEYS = {
    "db": "DB", "data_dir": "DATA_DIR", "roster": "ROSTER", "roster_cache": "ROSTER_CACHE",
    "strict": "STRICT",
    "rate_limit": "RATE_LIMIT", "journal_cap": "JOURNAL_CAP",
    "allowed_hosts": "ALLOWED_HOSTS", "control_token": "CONTROL_TOKEN",
    "journal_max_mb": "JOURNAL_MAX_MB",
}


def _parse_bool(name: str, raw: str) -> bool:
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{name}={raw!r}: expected true/false (or 1/0)")


def read_toml(path: str | os.PathLike) -> dict:
    """Read a TOML file, turning every failure into a ConfigError that names the file."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {p}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:  # tomllib decodes the bytes first; TOML is UTF-8
        raise ConfigError(f"{p}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc}") from None


def app_from_toml(table: Mapping[str, Any], where: str) -> dict:
    """Check the ``[app]`` table of a partner config and return it as an app registration."""
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: [app] must be a table")
    app = dict(table)
    from .bodies import document

    # unknown keys first: a misspelt `redirect_uri` was reported as "redirect_uris must be a
    # non-empty list", which sent people to fix a key they believed they had written
    known = sorted(document()["components"]["schemas"]["AppRegistration"]["properties"])
    unknown = [key for key in app if key not in known]
    if unknown:
        raise ConfigError(f"{where}: unknown key [app].{unknown[0]} (known: {', '.join(known)})")
    uris = app.get("redirect_uris")
    if not isinstance(uris, list) or not uris or not all(isinstance(u, str) and u for u in uris):
        raise ConfigError(f"{where}: [app].redirect_uris must be a non-empty list of URLs "
                          f"(the first is the primary redirect URI)")
    for key in ("name", "client_id", "client_secret", "assignments_url"):
        if key in app and not (isinstance(app[key], str) and app[key]):
            raise ConfigError(f"{where}: [app].{key} must be a non-empty string")
    app.setdefault("name", "Partner app")
    from .apps import normalize_app
    from .errors import SimError

    try:  # the registration's own rules now, before a database is opened or written
        normalize_app(app, list(app.get("districts") or []), None, "")  # districts: at start-up
    except SimError as exc:
        raise ConfigError(f"{where}: {app_problems(exc)}") from None
    return app


def app_problems(exc: Any) -> str:
    """An app registration's problems (a SimError's) as one line about ``[app]``."""
    return "; ".join(f"[app].{e.field} {e.problem}" + (f" ({e.hint})" if e.hint else "")
                     for e in exc.errors) or exc.message


PARTNER_TOML_TABLES = ("app", "contract", "simulator")


def unknown_top_level(doc: Mapping[str, Any]) -> str | None:
    """What a partner.toml has outside its three tables, worded with the fix, or None.

    A misspelt table (``[contrat]``) or a key above every table was silently ignored, so
    its settings (a landing pattern, strict mode) quietly did not apply."""
    known = ", ".join(f"[{name}]" for name in PARTNER_TOML_TABLES)
    for key, value in doc.items():
        if key in PARTNER_TOML_TABLES:
            continue
        if isinstance(value, Mapping):
            return f"unknown table [{key}] (known: {known})"
        return (f"key {key!r} is outside any table: put it under the table it belongs to "
                f"({known})")
    return None


def from_file(path: str | os.PathLike) -> dict[str, Any]:
    """Config keys found in a TOML file (``[simulator]``, ``[app]``, ``[contract]``)."""
    doc = read_toml(path)
    stray = unknown_top_level(doc)
    if stray:
        raise ConfigError(f"{path}: {stray}")
    base = Path(path).resolve().parent
    out: dict[str, Any] = {}
    sim = doc.get("simulator", {})
    if not isinstance(sim, Mapping):
        raise ConfigError(f"{path}: [simulator] must be a table")
    for key, value in sim.items():
        if key not in _TOML_SIMULATOR_KEYS:
            raise ConfigError(f"{path}: unknown key [simulator].{key} "
                              f"(known: {', '.join(sorted(_TOML_SIMULATOR_KEYS))})")
        if key in ("roster", "roster_cache") and isinstance(value, str):
            value = str((base / value).resolve())
        out[_TOML_SIMULATOR_KEYS[key]] = value
    try:  # the file's own values, checked here so the line names the file and the table
        _check({**DEFAULTS, **out})
    except ConfigError as exc:
        raise ConfigError(f"{path}: [simulator].{exc}") from None
    if "app" in doc:
        out["APPS"] = [app_from_toml(doc["app"], str(path))]
    if "contract" in doc:
        if not isinstance(doc["contract"], Mapping):
            raise ConfigError(f"{path}: [contract] must be a table")
        out["CONTRACT"] = dict(doc["contract"])
    return out


def from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    """Config keys set through ``CLEVER_SIM_*`` environment variables."""
    out: dict[str, Any] = {}
    for name, (key, parser) in _ENV.items():
        if name not in environ:
            continue
        raw = environ[name]
        if parser == "bool":
            out[key] = _parse_bool(name, raw)
        elif parser == "list":  # comma- or space-separated
            out[key] = [item for item in re.split(r"[,\s]+", raw) if item]
        elif parser is int:
            try:
                out[key] = int(raw)
            except ValueError:
                raise ConfigError(f"{name}={raw!r}: expected a whole number") from None
        else:
            out[key] = raw
    return out


def build_config(config_file: str | os.PathLike | None = None,
                 environ: Mapping[str, str] | None = None,
                 overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Merge defaults < file < env < overrides and check the result."""
    cfg = dict(DEFAULTS)
    env = os.environ if environ is None else environ
    config_file = config_file or env.get("CLEVER_SIM_CONFIG")
    if config_file:
        cfg.update(from_file(config_file))
        cfg["CONFIG_FILE"] = str(config_file)
    from_environment = from_env(env)
    try:  # the environment's own values, checked here so the line names the variable
        _check({**DEFAULTS, **from_environment})
    except ConfigError as exc:
        names = [n for n, (key, _) in _ENV.items() if key in from_environment
                 and str(exc).startswith(key.lower() + " ")]
        raise ConfigError(f"{names[0]}={env[names[0]]!r}: {exc}" if names else str(exc)) from None
    cfg.update(from_environment)
    cfg.update({k: v for k, v in (overrides or {}).items()})
    _check(cfg)
    return cfg


def with_changes(cfg: Mapping[str, Any], **changes: Any) -> dict[str, Any]:
    """A built config with ``changes`` (e.g. ``serve``'s ``--allowed-host`` added to the
    file's and env's names), checked again: no file or environment variable is read."""
    out = {**cfg, **changes}
    _check(out)
    return out


def _check(cfg: dict[str, Any]) -> None:
    for key in ("STRICT", "RATE_LIMIT"):
        if not isinstance(cfg[key], bool):
            raise ConfigError(f"{key.lower()} must be true or false, not {cfg[key]!r}")
    for key in ("JOURNAL_CAP", "JOURNAL_MAX_MB", "GRADE_BODY_LIMIT", "CODE_TTL_S",
                "RATE_LIMIT_PER_MIN", "WAIT_MAX_S"):
        if not isinstance(cfg[key], int) or isinstance(cfg[key], bool) or cfg[key] < 1:
            raise ConfigError(f"{key.lower()} must be a positive whole number, not {cfg[key]!r}")
    hosts = cfg["ALLOWED_HOSTS"]
    if not isinstance(hosts, (list, tuple)) or not all(isinstance(h, str) and h.strip()
                                                       for h in hosts):
        raise ConfigError(f"allowed_hosts must be a list of host names, not {hosts!r}")
    token = cfg["CONTROL_TOKEN"]
    if token is not None and (not isinstance(token, str) or not token.strip()
                              or len(token) > 4096 or not token.isprintable() or " " in token):
        raise ConfigError("control_token must be a non-empty string without spaces "
                          "(it is sent as Authorization: Bearer {token})")
    if cfg["DB"] is not None and not isinstance(cfg["DB"], str):
        raise ConfigError(f"db must be a file path or ':memory:', not {cfg['DB']!r}")
    if cfg["ROSTER_CACHE"] is not None and (not isinstance(cfg["ROSTER_CACHE"], str)
                                            or not cfg["ROSTER_CACHE"]):
        raise ConfigError(f"roster_cache must be a directory path, not {cfg['ROSTER_CACHE']!r}")


def resolve_db_path(cfg: Mapping[str, Any]) -> str:
    """The SQLite path to open: the explicit ``DB`` or ``<DATA_DIR>/clever-sim.db``."""
    if cfg.get("DB"):
        return cfg["DB"]
    return str(Path(cfg["DATA_DIR"]) / "clever-sim.db")


@dataclass(frozen=True)
class BaseUrls:
    """The three Clever hosts a partner swaps for the simulator's address."""

    root: str

    HOSTS = ("https://clever.com", "https://api.clever.com", "https://grades-api.beta.clever.com")

    def lines(self) -> list[str]:
        return [f"  {host:<34} -> {self.root}" for host in self.HOSTS]

    def mapping(self) -> dict[str, str]:
        """Each Clever base URL → the simulator's (all three are the same server)."""
        return {host: self.root for host in self.HOSTS}
