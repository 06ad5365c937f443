"""The compiled pre-check proves a value valid only when jsonschema agrees: never a false yes."""

from __future__ import annotations

import jsonschema
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator.jsontext import ecma_validator
from simulator.schema_precheck import SchemaCompiler


def proven(schema: dict, value) -> bool:
    return SchemaCompiler(schema).compile(schema)(value)


def valid(schema: dict, value) -> bool:
    """As the roster's validator answers: ``pattern`` read as JSON Schema means it."""
    return ecma_validator(jsonschema.Draft202012Validator)(schema).is_valid(value)


@pytest.mark.parametrize("schema, value, expected", [
    ({"const": 1}, True, False),            # true is not 1 in JSON Schema
    ({"const": 1}, 1.0, True),              # 1 is 1.0
    ({"const": True}, 1, False),
    ({"const": None}, None, True),
    ({"const": "il"}, "il", True),
    ({"minimum": 0}, -1, False),
    ({"minimum": 0}, True, True),           # minimum does not apply to booleans
    ({"maximum": 10}, 10.0, True),
    ({"maximum": 10}, "11", True),          # nor to strings
    ({"allOf": [{"type": "integer"}, {"minimum": 3}]}, 2, False),
    ({"allOf": [{"type": "integer"}, {"minimum": 3}]}, 3, True),
])
def test_new_keywords_answer_as_jsonschema_does(schema, value, expected):
    assert proven(schema, value) is expected
    assert valid(schema, value) is expected


TOKEN = {"type": "object", "allOf": [
    {"if": {"required": ["kind"], "properties": {"kind": {"const": "district"}}},
     "then": {"properties": {"user_id": {"type": "null"}}}},
    {"if": {"required": ["kind"], "properties": {"kind": {"const": "il"}}},
     "then": {"properties": {"user_id": {"type": "string"}}}},
]}


@pytest.mark.parametrize("token, expected", [
    ({"kind": "district", "user_id": None}, True),
    ({"kind": "il", "user_id": "u1"}, True),
    ({"kind": "district", "user_id": "u1"}, False),
    ({"kind": "il", "user_id": None}, False),
    ({"user_id": 5}, True),
])
def test_an_exact_if_chooses_its_branch(token, expected):
    """Both kinds of token are proven valid (none is walked by jsonschema), wrong ones are not."""
    assert proven(TOKEN, token) is expected
    assert valid(TOKEN, token) is expected


def test_an_if_that_cannot_be_decided_needs_both_branches():
    """An ``if`` with a keyword the pre-check cannot decide both ways proves nothing alone."""
    schema = {"if": {"multipleOf": 2}, "then": {"type": "integer"}, "else": {"type": "string"}}
    assert not proven(schema, 4)          # valid, but not proven: jsonschema walks it
    assert valid(schema, 4)
    assert not proven(schema, "x")


SCALARS = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from([0.0, 1.0, 2.5]) \
    | st.sampled_from(["", "a", "il", "district", "ab1"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.sampled_from(["kind", "user_id", "n", "x"]), inner,
                                        max_size=3), max_leaves=8)
LEAF_SCHEMAS = st.one_of(
    st.builds(lambda t: {"type": t}, st.sampled_from(
        ["object", "array", "string", "number", "integer", "boolean", "null"])),
    st.builds(lambda c: {"const": c}, SCALARS),
    st.builds(lambda m: {"minimum": m}, st.integers(-2, 2)),
    st.builds(lambda m: {"maximum": m}, st.sampled_from([-1, 0, 1.5])),
    st.builds(lambda m: {"minLength": m}, st.integers(0, 3)),
    st.builds(lambda e: {"enum": e}, st.lists(st.sampled_from(["a", "il", None]), min_size=1,
                                              unique=True)),
    st.builds(lambda r: {"required": r}, st.lists(st.sampled_from(["kind", "n"]), unique=True)),
    st.just({"multipleOf": 2}),  # unknown to the pre-check: never proven
    st.builds(lambda t: {"type": t}, st.lists(st.sampled_from(
        ["object", "array", "string", "number", "integer", "boolean", "null"]),
        min_size=2, max_size=3, unique=True)),
    st.builds(lambda p: {"type": "string", "pattern": p}, st.sampled_from(["^a", "^[a-z]{2}$", "1"])),
)
SCHEMAS = st.recursive(LEAF_SCHEMAS, lambda inner: st.one_of(
    st.builds(lambda p: {"properties": p},
              st.dictionaries(st.sampled_from(["kind", "user_id", "n"]), inner, max_size=2)),
    st.builds(lambda a: {"allOf": a}, st.lists(inner, min_size=1, max_size=3)),
    st.builds(lambda i, t, e: {"if": i, "then": t, "else": e}, inner, inner, inner),
    st.builds(lambda i, t: {"if": i, "then": t}, inner, inner),
    st.builds(lambda s: {"type": "array", "items": s}, inner),
    st.builds(lambda s: {"type": "object", "additionalProperties": s}, inner),
    st.builds(lambda p, r, more: {"type": "object", "required": r, "properties": p, **more},
              st.dictionaries(st.sampled_from(["kind", "user_id", "n"]), inner, max_size=2),
              st.lists(st.sampled_from(["kind", "n"]), unique=True),
              st.sampled_from([{}, {"additionalProperties": False}, {"minProperties": 1},
                               {"multipleOf": 2}])),
), max_leaves=6)


@settings(max_examples=400, deadline=None)
@given(schema=SCHEMAS, value=VALUES)
def test_the_pre_check_never_proves_a_value_jsonschema_refuses(schema, value):
    if proven(schema, value):
        assert valid(schema, value), (schema, value)


@settings(max_examples=300, deadline=None)
@given(schema=SCHEMAS, values=st.lists(VALUES, max_size=4))
def test_a_remembering_pre_check_never_proves_a_value_jsonschema_refuses(schema, values):
    """The roster stream's compiler (strings proven once) is held to the same rule, over a
    run of values checked by one compiled check, as a roster's records are."""
    check = SchemaCompiler(schema, remember=True).compile(schema)
    listed = SchemaCompiler({}, remember=True).compile({"type": "array", "items": schema})
    for value in values:
        if check(value):
            assert valid(schema, value), (schema, value)
        if listed([value, value]):
            assert valid({"type": "array", "items": schema}, [value, value]), (schema, value)
