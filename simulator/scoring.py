"""Score formats → the LTI value, and the LTI messages Clever would send to Schoology.

Pure functions, no Flask.  Every computation is done with ``decimal.Decimal`` (never
float), so ``scoreGiven 0.3 / scoreMaximum 1`` is exactly ``0.3``; JSON numbers must reach
this module as ``int`` or ``Decimal`` (``web.parse_json(raw, exact_numbers=True)``).

* ``lti_string`` — the LTI 1.1 ``textString``: rounded HALF_UP to 6 decimals, trailing
  zeros stripped, at least one decimal (``"0.8"``, ``"1.0"``, ``"0.666667"``).
* ``replace_result_xml`` — LTI 1.1 Basic Outcomes ``replaceResult`` POX request.
* ``ags_score`` — LTI 1.3 Assignment and Grade Services score JSON.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from decimal import ROUND_HALF_UP, Context, Decimal, InvalidOperation
from typing import Union

Number = Union[int, Decimal]

LTI_PLACES = 6
_QUANTUM = Decimal(1).scaleb(-LTI_PLACES)  # 0.000001
ZERO = Decimal(0)
ONE = Decimal(1)

# Wide enough that no division of in-range scores ever rounds before the final HALF_UP.
_CTX = Context(prec=60, rounding=ROUND_HALF_UP)

LTI11_NS = "http://www.imsglobal.org/services/ltiv1p1/xsd/imsoms_v1p0"
AGS_SCORE_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"

# Characters XML 1.0 cannot carry at all (not even escaped).
_XML_INVALID = re.compile("[^\u0009\u000a\u000d\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def is_number(value: object) -> bool:
    """A JSON number as ``parse_json(exact_numbers=True)`` gives it: int or finite Decimal, not bool."""
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    return isinstance(value, Decimal) and value.is_finite()


def to_decimal(value: Number) -> Decimal:
    """An exact Decimal of an int or Decimal (floats are refused: they are already inexact)."""
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise TypeError(f"expected int or Decimal, got {type(value).__name__}")
    return value if isinstance(value, Decimal) else Decimal(value)


def percentage_lti(percentage: Number) -> Decimal:
    """``percentage`` (already checked to be in [0, 1]) is the LTI value as it is."""
    value = to_decimal(percentage)
    if value.is_signed() and value.is_zero():
        return ZERO  # -0.0 is 0
    return value


def ratio_lti(score_given: Number, score_maximum: Number) -> tuple[Decimal, bool]:
    """(LTI value, clamped) of ``score_given / score_maximum``.

    ``score_maximum`` > 0 and ``score_given`` >= 0 are the caller's checks.  Above 1.0
    (extra credit) the value is clamped to 1.0: LTI 1.1 accepts only 0.0–1.0.  The
    comparison is done before dividing, so no magnitude can overflow.
    """
    given, maximum = to_decimal(score_given), to_decimal(score_maximum)
    if maximum <= 0:
        raise ValueError("scoreMaximum must be > 0")
    if given < 0:
        raise ValueError("scoreGiven must be >= 0")
    if given > maximum:
        return ONE, True
    if given.is_zero():
        return ZERO, False
    return _CTX.divide(given, maximum), False


def lti_string(value: Number) -> str:
    """The LTI ``textString``: HALF_UP to 6 decimals, trailing zeros stripped, >= 1 decimal.

    ``0.8`` → ``"0.8"``, ``1`` → ``"1.0"``, ``2/3`` → ``"0.666667"``, ``0.0000005`` →
    ``"0.000001"``, ``0.0000004`` → ``"0.0"``.  Values must be in [0, 1].
    """
    dec = to_decimal(value)
    if not dec.is_finite() or dec < 0 or dec > 1:
        raise ValueError(f"LTI values are 0.0–1.0, got {dec}")
    rounded = dec.quantize(_QUANTUM, rounding=ROUND_HALF_UP, context=_CTX)
    text = format(rounded, "f")  # always 6 decimals after quantize
    whole, _, frac = text.partition(".")
    frac = frac.rstrip("0") or "0"
    whole = whole.lstrip("-")  # -0.0000001 never reaches here, but -0 must not print "-0.0"
    return f"{whole}.{frac}"


def number_text(value: Number) -> str:
    """A number as the partner wrote it (``Decimal`` keeps its digits): ``12``, ``0.30``, ``1E+2``."""
    return str(value)


def json_number(value: Number) -> int | float | str:
    """A JSON-serialisable stand-in for an exact number (for records; the exact text is kept apart).

    Integral values with up to 16 digits become ``int`` (``8.0`` → ``8``); other values
    ``float``; a value beyond the double range (``1E+400``) its text, never ``Infinity``.
    """
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(value, int):
        return value
    dec = to_decimal(value)
    if not dec.is_finite():
        raise ValueError(f"{dec} is not a finite number")
    if dec.is_zero():
        return 0
    if dec.adjusted() < 16 and dec == dec.to_integral_value():
        return int(dec)
    as_float = float(dec)
    if math.isfinite(as_float):
        return as_float
    return str(dec)


def _xml_text(text: str) -> str:
    """Text XML 1.0 can carry: characters it forbids even escaped become U+FFFD."""
    return _XML_INVALID.sub("\ufffd", text)


def replace_result_xml(sourced_id: str, score_str: str, message_id: str) -> str:
    """The LTI 1.1 Basic Outcomes ``replaceResultRequest`` POX body for one score.

    ``score_str`` must be a decimal in 0.0–1.0 (the spec makes anything else a failure);
    text is escaped by ElementTree, so ``<&>`` in a sourcedId are safe.
    """
    try:
        score = Decimal(score_str)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"score must be a decimal string, got {score_str!r}") from None
    if not score.is_finite() or score < 0 or score > 1:
        raise ValueError(f"LTI 1.1 scores are 0.0–1.0, got {score_str!r}")

    def sub(parent: ET.Element, tag: str, text: str | None = None) -> ET.Element:
        el = ET.SubElement(parent, f"{{{LTI11_NS}}}{tag}")
        if text is not None:
            el.text = _xml_text(text)
        return el

    root = ET.Element(f"{{{LTI11_NS}}}imsx_POXEnvelopeRequest")
    info = sub(sub(root, "imsx_POXHeader"), "imsx_POXRequestHeaderInfo")
    sub(info, "imsx_version", "V1.0")
    sub(info, "imsx_messageIdentifier", str(message_id))
    record = sub(sub(sub(root, "imsx_POXBody"), "replaceResultRequest"), "resultRecord")
    sub(sub(record, "sourcedGUID"), "sourcedId", str(sourced_id))
    result_score = sub(sub(record, "result"), "resultScore")
    sub(result_score, "language", "en")
    sub(result_score, "textString", score_str)
    ET.indent(root, space="  ")
    body = ET.tostring(root, encoding="unicode", default_namespace=LTI11_NS)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def ags_score(user_id: str, score_given: Number | float, score_maximum: Number | float,
              timestamp: str, comment: str | None = None) -> dict:
    """The LTI 1.3 AGS score (``POST {lineitem}/scores``, media type ``AGS_SCORE_MEDIA_TYPE``).

    AGS lets ``scoreGiven`` exceed ``scoreMaximum`` (extra credit is not clamped there).
    ``comment`` is left out when None.
    """
    def num(value: Number | float) -> int | float | str:
        if isinstance(value, float):
            if not math.isfinite(value):
                raise ValueError("AGS scores must be finite")
            return value
        return json_number(value)

    out: dict = {"userId": user_id, "scoreGiven": num(score_given),
                 "scoreMaximum": num(score_maximum)}
    if comment is not None:
        out["comment"] = comment
    out.update({"timestamp": timestamp, "activityProgress": "Completed",
                "gradingProgress": "FullyGraded"})
    return out
