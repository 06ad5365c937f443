"""The one JSON reader for text from outside (request bodies, partner answers, rosters,
snapshots, journaled bodies): hostile text is refused with the place it was found, never
turned into values that crash a later render, serialisation or recursion.

No Flask here. Callers turn ``JSONTextError`` into their own answer (a 400, a plain-words
partner failure, a roster or snapshot problem).

Limits (documented in docs/decisions.md):

* nesting: at most ``MAX_DEPTH`` arrays/objects deep (Python's own recursion gives out near
  1,000, earlier on a deep call stack, and every later ``json.dumps`` or template of the value
  would recurse as deep);
* numbers: at most ``MAX_NUMBER_CHARS`` characters (Python refuses ``int()`` of more than
  4,300 digits, and ``1e999`` would read as infinity), and always finite;
* text: no lone UTF-16 surrogate (``"\\ud800"``, what JavaScript leaves when it cuts an emoji
  in half) in any key or string, since such text cannot be encoded as UTF-8 to be shown;
  NUL and other control characters are allowed (JSON escapes them) and are escaped wherever
  they are shown.
"""

from __future__ import annotations

import functools
import io
import json
import re
from decimal import Decimal, InvalidOperation
from collections.abc import Iterator
from typing import Any, Iterable

MAX_DEPTH = 128
MAX_NUMBER_CHARS = 100
_PATH_SHOWN = 8  # path parts named in an error; deeper paths are cut

_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class JSONTextError(ValueError):
    """Why a JSON text cannot be read: where (path parts from the root), what, and the fix."""

    def __init__(self, summary: str, problem: str, hint: str, parts: Iterable[Any] = (),
                 syntax: bool = False):
        self.summary = summary
        self.syntax = syntax  # not JSON at all (rather than JSON beyond a limit)
        self.problem = problem
        self.hint = hint
        self.parts = list(parts)
        super().__init__(f"{self.path()}: {problem}")

    def _shown(self) -> tuple[list, str]:
        """The path parts worth showing (a path 129 levels deep is cut) and the mark for the cut."""
        if len(self.parts) <= _PATH_SHOWN:
            return self.parts, ""
        return self.parts[:_PATH_SHOWN], f"…({len(self.parts)} levels)"

    def path(self, root: str = "$") -> str:
        """``$.assignments[2].name`` (``root`` names the whole document)."""
        parts, cut = self._shown()
        return json_path(parts, root) + cut

    def dotted(self, root: str = "(body)") -> str:
        """``assignments[2].name`` as field names are given in error bodies; ``root`` if empty."""
        parts, cut = self._shown()
        out = ""
        for part in parts:
            out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part or '""'))
        return (out + cut) if out else root


def json_path(parts: Iterable[Any], root: str = "$") -> str:
    """``$.a[0]["odd key"]`` from path parts."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", part):
            out += f".{part}"
        else:
            out += "[" + json.dumps(part, ensure_ascii=False) + "]"
    return out


def _reject_constant(name: str) -> Any:
    raise JSONTextError("Body is not valid JSON", f"{name} is not valid JSON (JSON numbers must "
                        "be finite)", "send finite JSON numbers")


def _too_long(literal: str) -> JSONTextError:
    return JSONTextError("Body is not valid JSON",
                         f"a number has {len(literal)} characters; at most {MAX_NUMBER_CHARS} "
                         "are read", "send numbers of reasonable size (e.g. 0.85)")


def _int(literal: str) -> int:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _too_long(literal)
    return int(literal)


def _float(literal: str) -> float:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _too_long(literal)
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise JSONTextError("Body is not valid JSON",
                            f"the number {literal} has an exponent too large to read",
                            "send finite JSON numbers of reasonable size")
    return value


def _decimal(literal: str) -> Decimal:
    if len(literal) > MAX_NUMBER_CHARS:
        raise _too_long(literal)
    try:
        return Decimal(literal)
    except (InvalidOperation, ArithmeticError):  # 1e99999999999999999999: beyond Decimal's range
        raise JSONTextError("Body is not valid JSON",
                            f"the number {literal} has an exponent too large to read",
                            "send finite JSON numbers of reasonable size") from None


def loads(text: str, *, exact_numbers: bool = False, max_depth: int = MAX_DEPTH,
          object_pairs_hook: Any = None) -> Any:
    """The document in ``text``, or ``JSONTextError`` (syntax, depth, numbers, surrogates).

    ``exact_numbers``: decimals as ``Decimal`` (the digits as sent), not ``float``."""
    try:
        if object_pairs_hook is None and type(text) is str:
            if text.startswith("\ufeff"):  # as json.loads words it
                raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
            doc = _DECODERS[exact_numbers].decode(text)
        else:
            doc = json.loads(text, parse_constant=_reject_constant, parse_int=_int,
                             parse_float=_decimal if exact_numbers else _float,
                             object_pairs_hook=object_pairs_hook)
    except JSONTextError:
        raise
    except json.JSONDecodeError as exc:
        raise JSONTextError("Body is not valid JSON", f"{exc.msg} at line {exc.lineno}, column "
                            f"{exc.colno}", "send a JSON object, e.g. "
                            '{"assignmentID": "a1", "percentage": 0.8}', syntax=True) from None
    except RecursionError:
        raise _too_deep(max_depth, []) from None
    except (ValueError, ArithmeticError) as exc:  # anything else json or a hook refused
        raise JSONTextError("Body is not valid JSON", str(exc) or type(exc).__name__,
                            "send finite JSON numbers of reasonable size") from None
    check_parsed(text, doc, max_depth)
    return doc


def number_hooks(exact_numbers: bool = False) -> dict[str, Any]:
    """The ``json`` hooks ``loads`` reads numbers and constants with (for a reader that
    decodes a big text a value at a time with ``json.JSONDecoder``)."""
    return {"parse_constant": _reject_constant, "parse_int": _int,
            "parse_float": _decimal if exact_numbers else _float}


def check_parsed(text: str, doc: Any, max_depth: int = MAX_DEPTH) -> None:
    """``JSONTextError`` when ``doc``, parsed from ``text``, nests deeper than ``max_depth``
    or holds a lone surrogate: what ``loads`` checks after parsing."""
    surrogates = _SURROGATE_ESCAPE.search(text) is not None
    if surrogates or (text.count("[") + text.count("{") > max_depth and _deeper_than(doc, max_depth)):
        _walk(doc, max_depth, surrogates)  # finds the place (slower; only when there is one)


# Built once: json.loads with hooks builds a decoder (and its scanner) on every call, a
# third of the cost of reading a grade POST's body. A decoder keeps no state between calls.
_DECODERS = {exact: json.JSONDecoder(parse_constant=_reject_constant, parse_int=_int,
                                     parse_float=_decimal if exact else _float)
             for exact in (False, True)}


def _deeper_than(doc: Any, max_depth: int) -> bool:
    """Whether parsed JSON nests deeper than ``max_depth``: a lean walk of the containers
    alone (3x cheaper than scanning the text of a big document, which is 95 % strings)."""
    if not isinstance(doc, (dict, list)):
        return False
    stack: list[tuple[Any, int]] = [(doc, 1)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if depth > max_depth:
            return True
        for child in (item.values() if type(item) is dict else item):
            if type(child) is dict or type(child) is list:
                push((child, depth + 1))
    return False


def _too_deep(max_depth: int, parts: list) -> JSONTextError:
    return JSONTextError("Body is nested too deeply",
                         f"JSON nesting is deeper than {max_depth} levels",
                         "send a flatter JSON document", parts)


def _lone(text: str) -> bool:
    return _LONE_SURROGATE.search(text) is not None


def _walk(doc: Any, max_depth: int, surrogates: bool) -> None:
    """Raise for the first container deeper than ``max_depth`` or text with a lone surrogate."""
    stack: list[tuple[Any, int, tuple]] = [(doc, 1, ())]
    while stack:
        item, depth, parts = stack.pop()
        if isinstance(item, dict):
            if depth > max_depth:
                raise _too_deep(max_depth, list(parts))
            for key, child in item.items():
                if surrogates and _lone(key):
                    raise _surrogate(list(parts))
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1, parts + (key,)))
                elif surrogates and isinstance(child, str) and _lone(child):
                    raise _surrogate(list(parts + (key,)))
        elif isinstance(item, list):
            if depth > max_depth:
                raise _too_deep(max_depth, list(parts))
            for i, child in enumerate(item):
                if isinstance(child, (dict, list)):
                    stack.append((child, depth + 1, parts + (i,)))
                elif surrogates and isinstance(child, str) and _lone(child):
                    raise _surrogate(list(parts + (i,)))
        elif surrogates and isinstance(item, str) and _lone(item):
            raise _surrogate(list(parts))


def _surrogate(parts: list) -> JSONTextError:
    return JSONTextError("Body is not valid Unicode",
                         "contains a lone UTF-16 surrogate escape (\\ud800…)",
                         "send text as valid UTF-8 or as \\u escapes of whole pairs", parts)


def decode(raw: bytes, **kwargs: Any) -> Any:
    """``loads`` for bytes: UTF-8 (a BOM allowed), not empty."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise JSONTextError("Body is not valid UTF-8", f"byte {exc.start} is not UTF-8",
                            "send JSON encoded as UTF-8") from None
    if not text.strip():
        raise JSONTextError("Body is empty", "is empty", "send a JSON object")
    return loads(text, **kwargs)


def scrub(text: str) -> str:
    """``text`` with any lone surrogate replaced by U+FFFD, so it can always be encoded."""
    return _LONE_SURROGATE.sub("\ufffd", text) if _lone(text) else text


# --- JSON values in words (one wording for every message that names a JSON type) -------

SCHEMA_TYPE_WORDS = {"object": "an object", "array": "an array", "string": "a string",
                     "number": "a number", "integer": "a whole number", "boolean": "true/false",
                     "null": "null"}


def kind(value: Any) -> str:
    """The JSON type of a parsed value in words: 'a string', 'a number', 'true/false', 'null',
    'an array', 'an object'."""
    if isinstance(value, bool):
        return "true/false"
    if value is None:
        return "null"
    if isinstance(value, (int, float, Decimal)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (list, tuple)):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def described(value: Any) -> str:
    """A parsed value in words with the value itself, for messages about a document a person
    edits (a snapshot): 'the string "2"', 'the number 5', 'the boolean true', 'an empty
    string', 'null', 'an array', 'an object'."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float, Decimal)):
        text = str(value)
        return f"the number {text if len(text) <= 60 else text[:59] + '…'}"
    if isinstance(value, str):
        return f"the string {shown(value)}" if value else "an empty string"
    return kind(value)


def shown(value: Any, limit: int = 60) -> str:
    """A value as JSON text, cut to ``limit`` characters for a message."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # built once, not per call


def dumps(value: Any) -> str:
    """Compact JSON text (no spaces, non-ASCII kept): what is stored, journaled and sent."""
    return _ENCODER.encode(value)


def encode_by_item(doc: dict, spread: Iterable[str], encoder: json.JSONEncoder) -> bytes:
    """``encoder.encode(doc)`` as UTF-8, with the lists under the ``spread`` keys encoded
    one item at a time: the same bytes, but a long list's text never exists as tens of
    thousands of small fragments at once (``json.dumps`` of a 600-grade gradebook peaked at
    4 MB of them for 0.5 MB of text, and such peaks stay in a server's RSS). A ``spread``
    value may be an iterator (encoded as the list of its items): each item is then built
    only when it is encoded, and dropped after."""
    spread = set(spread)
    item_sep, key_sep = encoder.item_separator.encode(), encoder.key_separator.encode()
    # Written into one growing buffer (a big block, mapped and unmapped as a whole) rather
    # than kept as a list of small pieces until a join: those pieces (~2,400 for a 0.6 MB
    # gradebook) sat in the small-object heap next to the finished text.
    out = io.BytesIO()
    out.write(b"{")
    for n, (key, value) in enumerate(doc.items()):
        if n:
            out.write(item_sep)
        out.write(encoder.encode(key).encode() + key_sep)
        if key in spread and isinstance(value, (list, Iterator)):
            out.write(b"[")
            for i, item in enumerate(value):
                if i:
                    out.write(item_sep)
                out.write(encoder.encode(item).encode())
            out.write(b"]")
        else:
            out.write(encoder.encode(value).encode())
    out.write(b"}")
    return out.getvalue()


# --- JSON Schema's ``pattern`` ---------------------------------------------------------------

@functools.lru_cache(maxsize=256)
def ecma_pattern(pattern: str) -> re.Pattern:
    """A schema's ``pattern`` as JSON Schema reads it (ECMA-262): ``$`` outside a character
    class ends the text. Python's ``$`` also matches before a final newline, so
    ``^[A-Za-z]+$`` took "POST\\n" (a fault stored for a method no request has)."""
    out, i, in_class = [], 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i:i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            out.append(ch)
            i += 1
            for literal in ("^", "]"):  # "[^]..." and "[]...": the "]" is a member (Python)
                if pattern.startswith(literal, i):
                    out.append(literal)
                    i += 1
            continue
        elif ch == "$":
            ch = r"\Z"
        out.append(ch)
        i += 1
    return re.compile("".join(out))


def _pattern_keyword(validator: Any, pattern: str, instance: Any, schema: dict) -> Iterator[Any]:
    """jsonschema's ``pattern`` keyword, with ``$`` read as ECMA-262 reads it."""
    if validator.is_type(instance, "string") and not ecma_pattern(pattern).search(instance):
        from jsonschema import ValidationError  # loaded already: a validator is running
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def ecma_validator(cls: Any, keywords: dict[str, Any] | None = None) -> Any:
    """The jsonschema validator class ``cls`` with ``pattern`` read as JSON Schema means it
    (and any other ``keywords`` replaced): every schema the simulator checks with."""
    import jsonschema  # here, not at import: a restart checks no schema

    return jsonschema.validators.extend(cls, {"pattern": _pattern_keyword, **(keywords or {})})

