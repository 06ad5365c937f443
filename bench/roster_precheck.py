"""Benchmark: the roster check's pre-check (array items proven valid skip jsonschema's walk),
home-made schema compiler (``schema_precheck.SchemaCompiler``) against fastjsonschema, on one roster,
in interleaved pairs in the same process; the time of a full check is the figure, and the
two must agree on every item.

    .venv/bin/python bench/roster_precheck.py big.json [--repeats 3]

``big.json`` from ``clever-sim fixtures generate --schools 239 --teachers 8400 --students
56600 --sections 20000 --seed 1`` (Clever's sandbox size). Needs ``pip install fastjsonschema``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import fastjsonschema
import jsonschema

from simulator import roster
from simulator.schema_precheck import SchemaCompiler


def validator(compile_items):
    """The roster validator with ``compile_items(subschema) -> predicate`` as the pre-check."""
    schema = roster.load_schema()
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    plain_items = cls.VALIDATORS["items"]
    cache: dict[int, object] = {}

    def fast_items(v, items, instance, item_schema):
        if not isinstance(items, dict) or "prefixItems" in item_schema:
            yield from plain_items(v, items, instance, item_schema)
            return
        if not v.is_type(instance, "array"):
            return
        valid = cache.get(id(items))
        if valid is None:
            valid = cache[id(items)] = compile_items(items)
        for index, item in enumerate(instance):
            if not valid(item):
                yield from v.descend(instance=item, schema=items, path=index)

    return jsonschema.validators.extend(cls, {"items": fast_items})(schema)


def home_compiler():
    compiler = SchemaCompiler(roster.load_schema())
    return compiler.compile


def fast_compiler():
    schema = roster.load_schema()

    def compile_items(items):
        check = fastjsonschema.compile({"$schema": "http://json-schema.org/draft-07/schema#",
                                        **items, "$defs": schema.get("$defs", {})})

        def valid(item):
            try:
                check(item)
                return True
            except fastjsonschema.JsonSchemaException:
                return False
        return valid
    return compile_items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("roster")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with open(args.roster, encoding="utf-8") as f:
        doc = json.load(f)
    times: dict[str, list[float]] = {"home": [], "fastjsonschema": []}
    setup: dict[str, float] = {}
    for name, make in (("home", home_compiler), ("fastjsonschema", fast_compiler)):
        started = time.process_time()
        v = validator(make())
        list(v.iter_errors({"districts": []}))  # compile what an empty roster needs
        setup[name] = time.process_time() - started
    for _ in range(args.repeats):
        for name, make in (("home", home_compiler), ("fastjsonschema", fast_compiler)):
            v = validator(make())
            started = time.process_time()
            problems = list(v.iter_errors(doc))
            times[name].append(time.process_time() - started)
            assert not problems, problems[:3]
    home, fast = statistics.median(times["home"]), statistics.median(times["fastjsonschema"])
    print(f"check of {args.roster}: CPU s, median of {args.repeats} interleaved")
    print(f"  home compiler   {home:7.2f} s  (setup {setup['home']:.3f} s)")
    print(f"  fastjsonschema  {fast:7.2f} s  (setup {setup['fastjsonschema']:.3f} s)")
    print(f"  ratio fastjsonschema / home: {fast / home:.2f}")


if __name__ == "__main__":
    sys.exit(main())
