"""Whole numbers from outside text (query strings, headers, form fields): one parser that
never hands ``int()`` more digits than the range needs (Python refuses over 4,300 digits)
and never accepts what ``str.isdigit`` does but ``int`` refuses ("²", "٣")."""

from __future__ import annotations

import re

_DIGITS = re.compile(r"[0-9]+")


def whole_number(raw: str | None, lo: int, hi: int) -> int | None:
    """``raw`` as an int in ``lo..hi`` (plain ASCII digits, leading zeros allowed), else None."""
    if raw is None or not _DIGITS.fullmatch(raw):
        return None
    significant = raw.lstrip("0") or "0"
    if len(significant) > len(str(hi)):
        return None
    value = int(significant)
    return value if lo <= value <= hi else None
