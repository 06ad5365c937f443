"""What every HTML page shares: date formatting, how a page's text is joined, and which
unknown paths are pages, not API.

No Flask here: ``app.create_app`` registers the filters and asks ``is_page_path``.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from typing import Iterable

# Paths the browser pages live under: a mistyped one is a person's typo, answered with an
# HTML page and kept out of the partner journal (so is the browser's own /favicon.ico).
PAGE_PREFIXES = ("/schoology", "/portal", "/inspector", "/oauth/whoami", "/login")
BROWSER_NOISE = ("/favicon.ico", "/apple-touch-icon.png", "/apple-touch-icon-precomposed.png",
                 "/robots.txt")
# Paths a partner's code calls: never a page, even when the Accept header asks for HTML.
API_PREFIXES = ("/v1", "/v2", "/v3", "/me", "/oauth/", "/_sim")

_ISO = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:[T ](\d{2}:\d{2})(:\d{2}(?:\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


FSI, PDI = "\u2068", "\u2069"  # Unicode's FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE


def isolate(text: object) -> str:
    """``text`` between FSI and PDI: where no element can isolate a name (a page title, an
    error sentence built in Python), a right-to-left override in it stays inside it."""
    return f"{FSI}{text}{PDI}"


NUL_SHOWN = "\u2400"  # SYMBOL FOR NULL


def visible(value: object) -> object:
    """What a template shows of ``value`` (Jinja's ``finalize``): a NUL as ␀, since a browser
    drops a NUL from a page, so an assignment id "a\\x00b" showed as "ab", the same as "ab"
    (docs/decisions.md: control characters are data, shown escaped)."""
    if isinstance(value, str) and "\x00" in value:
        return value.replace("\x00", NUL_SHOWN)  # a Markup stays Markup
    return value


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    """Whether ``path`` is one of ``prefixes`` or below one, segment by segment: ``/schoology``
    and ``/schoology/x`` are under ``/schoology``, ``/schoology_x/teachers/1`` is not."""
    return any(path == p or path.startswith(p + "/") for p in prefixes)


# Anything under /u/ is a persona slot's page: a bad slot or an API path behind one gets the
# HTML page that explains slots (docs/decisions.md).
_SLOTS = "/u/"


def is_page_path(path: str, accept: str | None) -> bool:
    """Whether a request nobody routes was meant for a page (HTML 404, not journaled)."""
    if path in BROWSER_NOISE or path.startswith(_SLOTS) or _under(path, PAGE_PREFIXES):
        return True
    if path.startswith(API_PREFIXES):
        return False
    return "text/html" in (accept or "")


def when(value: object) -> str:
    """A stored ISO-8601 time for people: ``Mon 7 Dec 2026, 01:38:20 UTC``; a due date
    without a zone stays in the school's local time and says so; anything else as it is."""
    if not isinstance(value, str):
        return "—" if value is None else str(value)
    m = _ISO.match(value.strip())
    if not m:
        return value
    day, hm, seconds, zone = m.groups()
    try:
        d = date.fromisoformat(day)
    except ValueError:
        return value
    text = f"{d:%a} {d.day} {d:%b %Y}"
    if hm is None:
        return text
    if zone is None:
        return f"{text}, {hm} (school time)"
    try:
        moment = _zoned(d, hm, seconds, zone)
    except ValueError:
        return value
    utc = moment.astimezone(timezone.utc)
    d = utc.date()
    return f"{d:%a} {d.day} {d:%b %Y}, {utc:%H:%M:%S} UTC"


def _zoned(day: date, hm: str, seconds: str | None, zone: str) -> datetime:
    """The moment ``_ISO``'s parts name, built from them rather than by
    ``datetime.fromisoformat``: before Python 3.11 that refused a fraction of other than 3
    or 6 digits (``.5``) and an offset without a colon (``+0100``), which ``_ISO`` accepts,
    so such times showed raw on 3.10 only. ValueError for an hour, minute or offset out of
    range."""
    whole, _, fraction = (seconds or ":00")[1:].partition(".")
    offset = timedelta(0)
    if zone != "Z":
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        offset = -offset if zone[0] == "-" else offset
    return datetime(day.year, day.month, day.day, int(hm[:2]), int(hm[3:]), int(whole),
                    int(fraction[:6].ljust(6, "0")) if fraction else 0, tzinfo=timezone(offset))


JOIN_EVERY = 256  # template fragments joined at a time


def join_in_parts(fragments: Iterable[str]) -> str:
    """A rendered template's text from its fragments, joined ``JOIN_EVERY`` at a time: the
    same text as ``"".join``, which first holds every fragment at once (a 600-row
    gradebook: ~20,000 small strings, 1.1 MB) in the heap of small objects, where such
    peaks under concurrent renders stay in a server's RSS after the page is sent."""
    parts: list[str] = []
    batch: list[str] = []
    for fragment in fragments:
        batch.append(fragment)
        if len(batch) == JOIN_EVERY:
            parts.append("".join(batch))
            batch = []
    parts.append("".join(batch))
    return "".join(parts)
