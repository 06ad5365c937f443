"""A compiled, sound pre-check for a JSON Schema: proves a document valid fast, or says
"not proven" so that jsonschema walks it for its messages.

``SchemaCompiler(root).compile(subschema)(value)`` is True only when jsonschema would find
no problem in ``value``; False means "not proven" (never "invalid"). A keyword it does not
know makes its subschema "never proven", so a schema change can only make checks slower,
never wrong. The roster (56,600 students) and snapshots (every grade) are proven valid here
and walked by jsonschema only when they are not (tests/test_schema_precheck.py holds the
two to the same answers).
"""

from __future__ import annotations

from typing import Any, Callable

from .jsontext import ecma_pattern


_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "definitions", "title", "description",
                          "x-messages", "$comment", "default", "examples", "deprecated",
                          "readOnly", "writeOnly", "$anchor"})


def _never(_value: Any) -> bool:
    return False


def _always(_value: Any) -> bool:
    return True


def _is_number(v: Any) -> bool:
    return (type(v) is int or type(v) is float)  # bool is not a JSON number


def _is_integer(v: Any) -> bool:
    return type(v) is int or (type(v) is float and v.is_integer())


_TYPE_TESTS = {
    "object": lambda v: type(v) is dict, "array": lambda v: type(v) is list,
    "string": lambda v: type(v) is str, "number": _is_number, "integer": _is_integer,
    "boolean": lambda v: type(v) is bool, "null": lambda v: v is None,
}


class SchemaCompiler:
    """Turns (sub)schemas of one root schema into fast yes/not-proven predicates."""

    def __init__(self, root: dict, *, remember: bool = False):
        """``remember``: each list of strings keeps the strings it proved (one big roster's
        ids are listed again and again: a section's students are checked by one set
        operation); for a compiler used once, since the proven strings stay held."""
        self.root = root
        self.remember = remember
        self._done: dict[int, Callable[[Any], bool]] = {}
        self._keep: list[Any] = []  # keep compiled subschemas alive (ids stay unique)

    def compile(self, schema: Any) -> Callable[[Any], bool]:
        if schema is True:
            return _always
        if not isinstance(schema, dict):
            return _never
        key = id(schema)
        found = self._done.get(key)
        if found is not None:
            return found
        slot: list[Callable[[Any], bool]] = []
        self._done[key] = lambda v: slot[0](v)  # recursion through $ref
        self._keep.append(schema)
        checks: list[Callable[[Any], bool]] = []
        for keyword, value in schema.items():
            if keyword in _ANNOTATIONS:
                continue
            make = _KEYWORDS.get(keyword)
            check = make(self, value, schema) if make is not None else None
            if check is None:
                checks = [_never]
                break
            checks.append(check)
        fn = _fused(self, schema, checks) or _all_of(checks)
        slot.append(fn)
        self._done[key] = fn
        return fn

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#"):
            return None
        node: Any = self.root
        for part in [p for p in ref[1:].split("/") if p]:
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(node, dict) or part not in node:
                return None
            node = node[part]
        return node


def _fused(c: SchemaCompiler, schema: dict, checks: list[Callable[[Any], bool]]
           ) -> Callable[[Any], bool] | None:
    """One function for the two shapes a roster is made of, instead of one call per
    keyword: an object (``type``, ``required``, ``properties`` and any other keywords) and
    a string with a ``pattern``. The same answers as ``_all_of(checks)``; None for any
    other schema, or one with a keyword that is never proven."""
    if _never in checks:
        return None
    keywords = {k for k in schema if k not in _ANNOTATIONS}
    if schema.get("type") == "string" and keywords == {"type", "pattern"} \
            and isinstance(schema["pattern"], str):
        search = ecma_pattern(schema["pattern"]).search
        return lambda v: type(v) is str and search(v) is not None
    props = schema.get("properties")
    required = schema.get("required", [])
    if schema.get("type") != "object" or not isinstance(props, dict) or not isinstance(required, list) \
            or not all(isinstance(k, str) for k in required):
        return None
    get = {k: c.compile(sub) for k, sub in props.items()}.get
    keys = tuple(required)
    # the checks of the other keywords, in the schema's order (as ``compile`` made them)
    others = tuple(check for keyword, check in zip(
        [k for k in schema if k not in _ANNOTATIONS], checks)
        if keyword not in ("type", "required", "properties"))

    def check(v: Any) -> bool:
        if type(v) is not dict:
            return False
        for k in keys:
            if k not in v:
                return False
        for k, item in v.items():
            fn = get(k)
            if fn is not None and not fn(item):
                return False
        for other in others:
            if not other(v):
                return False
        return True
    return check


def _all_of(checks: list[Callable[[Any], bool]]) -> Callable[[Any], bool]:
    if not checks:
        return _always
    if len(checks) == 1:
        return checks[0]
    checks = tuple(checks)

    def every(v: Any) -> bool:
        for check in checks:
            if not check(v):
                return False
        return True
    return every


def _kw_type(c: SchemaCompiler, value: Any, schema: dict):
    names = value if isinstance(value, list) else [value]
    tests = [_TYPE_TESTS.get(n) for n in names]
    if any(t is None for t in tests):
        return None
    if len(tests) == 1:
        return tests[0]
    exact = {"string": str, "null": type(None), "object": dict, "array": list, "boolean": bool}
    if all(n in exact for n in names):  # one set lookup (``["string", "null"]``: an email)
        types = frozenset(exact[n] for n in names)
        return lambda v: type(v) in types
    return lambda v: any(t(v) for t in tests)


def _kw_required(c: SchemaCompiler, value: Any, schema: dict):
    if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
        return None
    keys = tuple(value)

    def check(v: Any) -> bool:
        if type(v) is dict:
            for k in keys:
                if k not in v:
                    return False
        return True
    return check


def _kw_properties(c: SchemaCompiler, value: Any, schema: dict):
    if not isinstance(value, dict):
        return None
    props = {k: c.compile(sub) for k, sub in value.items()}
    get = props.get

    def check(v: Any) -> bool:  # by the keys present: a record has a few of its schema's many
        if type(v) is not dict:
            return True
        for k, item in v.items():
            fn = get(k)
            if fn is not None and not fn(item):
                return False
        return True
    return check


def _kw_additional(c: SchemaCompiler, value: Any, schema: dict):
    if "patternProperties" in schema:
        return None
    allowed = frozenset(schema.get("properties") or ())
    if value is False:
        return lambda v: type(v) is not dict or allowed.issuperset(v)
    if value is True:
        return _always
    fn = c.compile(value)
    return lambda v: type(v) is not dict or all(fn(v[k]) for k in v if k not in allowed)


def _kw_items(c: SchemaCompiler, value: Any, schema: dict):
    if "prefixItems" in schema or not isinstance(value, (dict, bool)):
        return None
    if value is False:
        return lambda v: type(v) is not list or not v
    fn = c.compile(value)
    if c.remember and _string_schema(c, value):
        return _remembering_items(fn)

    def check(v: Any) -> bool:
        if type(v) is not list:
            return True
        for item in v:
            if not fn(item):
                return False
        return True
    return check


def _string_schema(c: SchemaCompiler, schema: Any) -> bool:
    """Whether ``schema`` (through ``$ref``s) holds only strings: a value it accepts can be
    remembered by its hash, and equal strings are equally valid."""
    for _ in range(16):
        if not isinstance(schema, dict):
            return False
        if schema.get("type") == "string":
            return True
        ref = schema.get("$ref")
        if not isinstance(ref, str):
            return False
        schema = c.resolve(ref)
    return False


def _remembering_items(fn: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``items`` of a string schema that proves each distinct string once: a list whose
    every item was proven before passes in one set operation, the others are checked
    item by item (and their proven strings kept)."""
    proven: set[str] = set()
    remember = proven.add

    def check(v: Any) -> bool:
        if type(v) is not list:
            return True
        try:
            if proven.issuperset(v):
                return True
        except TypeError:  # an unhashable item (a list, an object): not a string
            return False
        for item in v:
            if item in proven:
                continue
            if not fn(item):
                return False
            remember(item)
        return True
    return check


def _kw_pattern(c: SchemaCompiler, value: Any, schema: dict):
    if not isinstance(value, str):
        return None
    search = ecma_pattern(value).search  # as the validators read it (jsontext.ecma_validator)
    return lambda v: type(v) is not str or search(v) is not None


def _count_kw(kind: str, cmp):
    def make(c: SchemaCompiler, value: Any, schema: dict):
        if type(value) is not int:
            return None
        test = _TYPE_TESTS[kind]
        return lambda v: not test(v) or cmp(len(v), value)
    return make


def _kw_property_names(c: SchemaCompiler, value: Any, schema: dict):
    fn = c.compile(value)
    return lambda v: type(v) is not dict or all(fn(k) for k in v)


def _kw_enum(c: SchemaCompiler, value: Any, schema: dict):
    if not isinstance(value, list) or not all(isinstance(e, str) or e is None for e in value):
        return None  # only enums of strings (and null) are proven here
    choices = frozenset(e for e in value if e is not None)
    if None in value:  # contacts' phone_type, relationship, type: "" or null allowed
        return lambda v: v is None or (type(v) is str and v in choices)
    return lambda v: type(v) is str and v in choices


def _kw_ref(c: SchemaCompiler, value: Any, schema: dict):
    target = c.resolve(value) if isinstance(value, str) else None
    if target is None:
        return None
    return c.compile(target)  # a recursive ref gets the forwarding check ``compile`` left


def _scalar_equal(want: Any) -> Callable[[Any], bool] | None:
    """An exact test for equality to a JSON scalar as jsonschema means it: ``true`` is not
    ``1``, ``1`` is ``1.0``. None for arrays and objects (never proven)."""
    if want is None or type(want) is bool:
        return lambda v: v is want
    if type(want) is str:
        return lambda v: type(v) is str and v == want
    if _is_number(want):
        return lambda v: _is_number(v) and v == want
    return None


def _kw_const(c: SchemaCompiler, value: Any, schema: dict):
    return _scalar_equal(value)


def _bound_kw(cmp):
    def make(c: SchemaCompiler, value: Any, schema: dict):
        if not _is_number(value):
            return None
        return lambda v: not _is_number(v) or cmp(v, value)
    return make


def _kw_all_of(c: SchemaCompiler, value: Any, schema: dict):
    if not isinstance(value, list) or not value:
        return None
    return _all_of([c.compile(sub) for sub in value])


# Keywords whose compiled checks answer exactly (True: valid, False: invalid), so an ``if``
# made only of them can choose between ``then`` and ``else``.
_EXACT = frozenset({"type", "required", "const", "enum", "minLength", "maxLength",
                    "minimum", "maximum", "pattern"})


def _exact(schema: Any) -> bool:
    """Whether the compiled check of ``schema`` decides validity both ways (no ``$ref``)."""
    if schema is True:
        return True
    if not isinstance(schema, dict):
        return False
    for keyword, value in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "properties":
            if not isinstance(value, dict) or not all(_exact(sub) for sub in value.values()):
                return False
        elif keyword == "const":
            if _scalar_equal(value) is None:
                return False
        elif keyword == "enum":
            if not isinstance(value, list) or not all(isinstance(e, str) or e is None
                                                      for e in value):
                return False
        elif keyword not in _EXACT:
            return False
    return True


def _kw_if(c: SchemaCompiler, value: Any, schema: dict):
    then = c.compile(schema.get("then", True))
    otherwise = c.compile(schema.get("else", True))
    if not _exact(value):  # "if" not decided: proven only when both branches hold
        return lambda v: then(v) and otherwise(v)
    test = c.compile(value)
    return lambda v: then(v) if test(v) else otherwise(v)


def _kw_branch(c: SchemaCompiler, value: Any, schema: dict):
    """``then``/``else`` are checked by their ``if`` (alone they mean nothing)."""
    return _always


_KEYWORDS: dict[str, Callable[..., Callable[[Any], bool] | None]] = {
    "type": _kw_type, "required": _kw_required, "properties": _kw_properties,
    "additionalProperties": _kw_additional, "items": _kw_items, "pattern": _kw_pattern,
    "minItems": _count_kw("array", lambda n, m: n >= m),
    "maxItems": _count_kw("array", lambda n, m: n <= m),
    "minProperties": _count_kw("object", lambda n, m: n >= m),
    "maxProperties": _count_kw("object", lambda n, m: n <= m),
    "minLength": _count_kw("string", lambda n, m: n >= m),
    "maxLength": _count_kw("string", lambda n, m: n <= m),
    "propertyNames": _kw_property_names, "enum": _kw_enum, "$ref": _kw_ref,
    "const": _kw_const, "minimum": _bound_kw(lambda v, m: v >= m),
    "maximum": _bound_kw(lambda v, m: v <= m), "allOf": _kw_all_of,
    "if": _kw_if, "then": _kw_branch, "else": _kw_branch,
}
