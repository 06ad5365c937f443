"""jsontext's nesting limit, at its boundary: the depth of the parsed containers counts,
never brackets inside strings, wherever the deep part sits in a big document."""

from __future__ import annotations

import json

import pytest

from simulator import jsontext


def nest(depth: int) -> str:
    return "[" * (depth - 1) + "{}" + "]" * (depth - 1)


WIDE = json.dumps([{"name": "x[{" * 50, "ids": list(range(20))} for _ in range(300)])


@pytest.mark.parametrize("text, too_deep", [
    (nest(jsontext.MAX_DEPTH), False),
    (nest(jsontext.MAX_DEPTH + 1), True),
    ('{"a": "' + "[" * 500 + '"}', False),                            # brackets in a string
    ("[" + WIDE + "," + nest(jsontext.MAX_DEPTH - 1) + "]", False),   # deep part at the limit
    ("[" + WIDE + "," + nest(jsontext.MAX_DEPTH) + "]", True),        # one level more
    ('"' + "{" * 300 + '"', False),                                   # a string document
])
def test_nesting_limit_counts_containers_not_brackets_in_strings(text, too_deep):
    if too_deep:
        with pytest.raises(jsontext.JSONTextError, match="deeper than 128 levels"):
            jsontext.loads(text)
    else:
        jsontext.loads(text)


def test_too_deep_names_where_the_nesting_goes_too_far():
    text = '{"users": [' + WIDE + ", " + nest(jsontext.MAX_DEPTH - 1) + "]}"
    with pytest.raises(jsontext.JSONTextError) as caught:
        jsontext.loads(text)
    assert caught.value.path().startswith("$.users[1]")


@pytest.mark.parametrize("doc", [
    {},
    {"cells": []},
    {"cells": [{"name": "Nguyễn", "n": 1.5, "ok": True, "none": None}], "seq": 7},
    {"head": {"cells": [1, 2]}, "cells": [[], {}, "—", 0], "not_linked": [{"a": [1, {"b": "\n"}]}]},
    {"cells": "a string, not a list", "not_linked": {"a": 1}},
])
@pytest.mark.parametrize("encoder", [json.JSONEncoder(ensure_ascii=False),
                                     json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))],
                         ids=["spaced", "compact"])
def test_encoding_a_document_item_by_item_gives_the_same_bytes(doc, encoder):
    assert jsontext.encode_by_item(doc, ("cells", "not_linked"), encoder) == \
        encoder.encode(doc).encode("utf-8")


def test_encoding_lists_given_as_iterators_gives_the_same_bytes():
    """The gradebook export hands its cells over as iterators, built while encoding."""
    encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
    cells = [{"grade_id": str(n), "name": "Nguyễn", "lti": None if n % 2 else {"x": n / 3}}
             for n in range(5)]
    doc = {"head": 1, "cells": cells, "not_linked": [], "tail": [1, 2]}
    lazy = {**doc, "cells": iter(cells), "not_linked": iter([])}
    assert jsontext.encode_by_item(lazy, ("cells", "not_linked"), encoder) == \
        encoder.encode(doc).encode("utf-8")


@pytest.mark.parametrize("pattern, text, matches", [
    ("^[A-Za-z]+$", "POST", True),
    ("^[A-Za-z]+$", "POST\n", False),           # Python's $ alone: True
    ("^[0-9a-f]{24}$", "a" * 24 + "\n", False),
    ("^a[$]$", "a$", True),                      # a $ inside a class is a dollar sign
    ("^a\\$$", "a$", True),                      # so is an escaped one
    ("^a\\$$", "a$\n", False),
    ("^x$|^y$", "y\n", False),                   # every $, not only the last
    ("\\S", "x", True),                          # no $: unchanged
])
def test_a_pattern_ends_where_the_text_ends_as_json_schema_reads_it(pattern, text, matches):
    """The same answer from the pattern, the validators built on it (control-API bodies,
    rosters, snapshots) and the roster stream's compiled pre-check."""
    import jsonschema

    from simulator.schema_precheck import SchemaCompiler

    schema = {"type": "string", "pattern": pattern}
    assert bool(jsontext.ecma_pattern(pattern).search(text)) is matches
    assert jsontext.ecma_validator(jsonschema.Draft202012Validator)(schema).is_valid(text) is matches
    assert SchemaCompiler(schema).compile(schema)(text) is matches

