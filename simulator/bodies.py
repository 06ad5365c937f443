"""Control-API request bodies checked against the schemas ``openapi.json`` declares, so each
body's rules are written once: every jsonschema error becomes a ``FieldProblem`` naming the
field and the fix.

A schema can word a problem itself: ``"x-messages": {"<keyword>": "problem"}`` or
``{"<keyword>": {"problem": …, "hint": …, "field": …}}`` on the (sub)schema whose keyword fails
(``{value}`` in a problem is replaced by the offending value in words), and ``"x-hint"`` gives
the fix for any problem of that property. Other schema files (the snapshot's) are worded by the
same ``problems_of``, naming paths and values their own way. No Flask here.
"""

from __future__ import annotations

import functools
import json
from importlib import resources
from typing import Any, Callable, Iterable

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import BadRequest, FieldProblem
from .jsontext import SCHEMA_TYPE_WORDS, ecma_validator, kind

_BASE = "urn:clever-sim:openapi"
_COMBINATORS = frozenset({"anyOf", "oneOf", "not"})  # said only when nothing plainer is wrong


@functools.lru_cache(maxsize=1)
def document_text() -> str:
    """The packaged ``simulator/openapi.json``, as shipped (``/_sim/openapi.json`` serves it)."""
    return resources.files("simulator").joinpath("openapi.json").read_text(encoding="utf-8")


@functools.lru_cache(maxsize=1)
def document() -> dict:
    """The packaged OpenAPI document, parsed once (do not change it)."""
    return json.loads(document_text())


_Validator = ecma_validator(jsonschema.Draft202012Validator)


@functools.lru_cache(maxsize=None)
def _validator(ref: str) -> jsonschema.protocols.Validator:
    resource = Resource.from_contents(document(), default_specification=DRAFT202012)
    registry = Registry().with_resource(_BASE, resource)
    return _Validator({"$ref": f"{_BASE}#{ref}"}, registry=registry)


def forget_validators() -> None:
    """Drop the compiled validators, so the next check compiles from ``document()`` again
    (for a test that swaps the document)."""
    _validator.cache_clear()


def _operation(method: str, path: str) -> dict:
    return document()["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]


def request_example(method: str, path: str) -> Any:
    """The example body the document gives for an operation (shown in hints)."""
    return _operation(method, path).get("example")


def check_request(method: str, path: str, body: Any, message: str) -> dict:
    """``body`` when it satisfies the operation's declared request schema; else BadRequest."""
    pointer = f"/paths/{path.replace('~', '~0').replace('/', '~1')}/{method.lower()}/requestBody" \
              "/content/application~1json/schema"
    return _check(pointer, body, message, request_example(method, path))


def check_schema(name: str, body: Any, message: str, example: Any = None) -> dict:
    """``body`` when it satisfies ``components.schemas[name]``; else BadRequest."""
    return _check(f"/components/schemas/{name}", body, message, example)


def _check(pointer: str, body: Any, message: str, example: Any) -> dict:
    if not isinstance(body, dict):
        hint = "send a JSON object" + (f", e.g. {json.dumps(example)}" if example else "")
        raise BadRequest("Body must be a JSON object",
                         [FieldProblem("(body)", f"is {kind(body)}", hint)])
    problems = problems_of(_validator(pointer).iter_errors(body))
    if problems:
        raise BadRequest(message, problems)
    return body


PathNamer = Callable[[list], str]  # path parts → how a message names the place
ValueWords = Callable[[Any], str]  # a wrong value → how a message names it


def problems_of(errors: Iterable[jsonschema.ValidationError], name: PathNamer | None = None,
                value_words: ValueWords = kind) -> list[FieldProblem]:
    """One problem per field, in the order the fields appear; combinator errors (anyOf, not)
    only when nothing plainer is wrong."""
    plain: list[FieldProblem] = []
    combined: list[FieldProblem] = []
    for error in errors:
        for problem in describe(error, name or field_name, value_words):
            (combined if error.validator in _COMBINATORS else plain).append(problem)
    seen: set[str] = set()
    out = []
    for problem in plain or combined:
        if problem.field not in seen:
            seen.add(problem.field)
            out.append(problem)
    return out


def field_name(parts: Iterable[Any]) -> str:
    """``redirect_uris[0]`` or ``body.message``, as error bodies name fields; ``(body)`` for the root."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(body)"


def describe(error: jsonschema.ValidationError, name: PathNamer = field_name,
             value_words: ValueWords = kind) -> list[FieldProblem]:
    """The problems one schema error stands for (an unknown-fields error names each field, a
    missing-fields error each missing one); ``name`` words paths (``field_name`` by default)
    and ``value_words`` a wrong value."""
    parts = list(error.absolute_path)
    schema = error.schema if isinstance(error.schema, dict) else {}
    validator, expected, value = error.validator, error.validator_value, error.instance
    custom = (schema.get("x-messages") or {}).get(validator)
    hint = schema.get("x-hint")
    if isinstance(custom, str):
        custom = {"problem": custom}
    if validator == "required":
        missing = [k for k in expected if isinstance(value, dict) and k not in value]
        return [FieldProblem(name(parts + [key]), (custom or {}).get("problem", "is required"),
                             (custom or {}).get("hint") or _property_hint(schema, key))
                for key in missing]  # each once: problems_of keeps one per field
    if validator == "additionalProperties" and isinstance(value, dict):
        known = sorted(schema.get("properties", {}))
        extra = sorted(k for k in value if k not in known)
        return [FieldProblem(name(parts + [key]), (custom or {}).get("problem", "unknown field"),
                             "known: " + ", ".join(known)) for key in extra]
    if custom:
        field = custom.get("field")
        return [FieldProblem(field or name(parts),
                             custom["problem"].replace("{value}", value_words(value)),
                             custom.get("hint") or (None if field else hint))]
    return [FieldProblem(name(parts),
                         _words(validator, expected, value, schema, error, value_words), hint)]


def _property_hint(schema: dict, key: str) -> str | None:
    prop = schema.get("properties", {}).get(key)
    return prop.get("x-hint") if isinstance(prop, dict) else None


def _type_words(types: Any) -> str:
    types = types if isinstance(types, list) else [types]
    return " or ".join(SCHEMA_TYPE_WORDS.get(t, t) for t in types if t != "null")


def _range(schema: dict) -> str:
    """'from 1 to 10', 'above 0 (at most 100000)', 'at least 0' for a number's bounds."""
    lo, hi = schema.get("minimum"), schema.get("maximum")
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if lo is not None and hi is not None:
        return f"from {lo} to {hi}"
    words = []
    if ex_lo is not None:
        words.append(f"above {ex_lo}")
    elif lo is not None:
        words.append(f"at least {lo}")
    if ex_hi is not None:
        words.append(f"below {ex_hi}")
    elif hi is not None:
        words.append(f"at most {hi}")
    return words[0] + (f" ({words[1]})" if len(words) > 1 else "")


def _words(validator: str, expected: Any, value: Any, schema: dict,
           error: jsonschema.ValidationError, value_words: ValueWords = kind) -> str:
    if validator == "type":
        return f"must be {_type_words(expected)}, not {value_words(value)}"
    if validator in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        noun = "a whole number" if schema.get("type") == "integer" else "a number"
        return f"must be {noun} {_range(schema)}"
    if validator == "minLength":
        return "must not be empty" if expected == 1 else f"must be at least {expected} characters"
    if validator == "maxLength":
        return f"is longer than {expected} characters"
    if validator == "minItems":
        return "must not be empty" if expected == 1 else f"must have at least {expected} items"
    if validator == "maxItems":
        return f"must have at most {expected} items"
    if validator == "enum":
        return "must be one of " + ", ".join(str(v) for v in expected)
    if validator == "const":
        return f"must be {json.dumps(expected)}"
    if validator == "pattern":
        return f"must match the pattern {expected}"
    return error.message
