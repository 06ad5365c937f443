"""Write the project's JSON Schemas of Clever's data API from Clever's Swagger documents.

Usage: ``python scripts/clever_schemas.py DIR`` where DIR holds Clever's ``v2.0.yml``,
``v2.1.yml`` and ``v3.0.yml`` (github.com/Clever/swagger-api).  Writes
``simulator/schemas/clever-v2.0.json`` etc.: the facts of each document (field names, types,
enums, ``x-nullable``) as JSON Schema, which the data API renders by and the crawler test
checks against.  The project never reads the Swagger files at run or test time.

Where Clever's recorded answers differ from its Swagger documents, the recordings win, and
each such place is marked with ``$comment`` (see ``_RECORDED``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parent.parent / "simulator" / "schemas"
VERSIONS = ("v2.0", "v2.1", "v3.0")

# Recorded api.clever.com answers (2023) that the Swagger documents do not describe.
_RECORDED = {
    # links of single records name relations ("district", "sections", "myTeachers", ...),
    # not only next/prev/self as Swagger's Link.rel enum says.
    "Link.rel": "recorded record answers carry relation rels (district, sections, myTeachers, ...)",
    # a recorded v3.0 student carries its email inside roles.student too.
    "Student.email": "recorded /v3.0/users/{id} of a student carries roles.student.email",
}


def convert(prop: dict) -> dict:
    """One Swagger property as JSON Schema (x-nullable: null allowed)."""
    nullable = bool(prop.get("x-nullable"))
    if "$ref" in prop:
        out: dict = {"$ref": "#/definitions/" + prop["$ref"].rsplit("/", 1)[-1]}
        return {"anyOf": [out, {"type": "null"}]} if nullable else out
    kind = prop.get("type", "object")
    out = {"type": [kind, "null"] if nullable else kind}
    if "enum" in prop:
        out["enum"] = list(prop["enum"]) + ([None] if nullable else [])
    if kind == "array":
        out["items"] = convert(prop.get("items", {}))
    return out


def definition(name: str, spec: dict, version: str) -> dict:
    """A Swagger definition as a closed JSON Schema object (no fields the version lacks)."""
    props = {k: convert(v) for k, v in (spec.get("properties") or {}).items()}
    if name == "Link":
        props["rel"] = {"type": "string", "$comment": _RECORDED["Link.rel"]}
    if name == "Student" and version == "v3.0":
        props["email"] = {"type": ["string", "null"], "$comment": _RECORDED["Student.email"]}
    if name.endswith("Response") and "data" in props and props["data"].get("type") != "array":
        # single records carry links; a list's items carry their uri (recorded answers)
        props["links"] = {"type": "array", "items": {"$ref": "#/definitions/Link"}}
        props["uri"] = {"type": "string"}
    out: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if "data" in props:
        out["required"] = ["data"]
    return out


def me_response(version: str) -> dict:
    """``/me``: not in the data documents; shape of recorded answers and Clever's docs."""
    return {
        "$comment": "not in Swagger; recorded /v3.0/me and Clever's 'Identity API' docs",
        "type": "object", "required": ["data"], "additionalProperties": False,
        "properties": {
            "type": {"type": "string"},
            "data": {"type": "object", "required": ["id", "type"], "additionalProperties": False,
                     "properties": {"id": {"type": "string"}, "district": {"type": "string"},
                                    "type": {"type": "string"},
                                    "authorized_by": {"type": "string"}}},
            "links": {"type": "array", "items": {"$ref": "#/definitions/Link"}}}}


def build(doc: dict, version: str) -> dict:
    """The whole schema file of one version: definitions plus which answer each path gives."""
    defs = {name: definition(name, spec, version) for name, spec in sorted(doc["definitions"].items())
            if spec.get("type", "object") == "object" and "properties" in spec}
    defs["MeResponse"] = me_response(version)
    paths = {}
    for path, ops in sorted(doc["paths"].items()):
        ref = ops["get"]["responses"]["200"]["schema"]["$ref"].rsplit("/", 1)[-1]
        params = {p["name"]: p.get("enum") for p in ops["get"].get("parameters", [])
                  if p.get("in") == "query"}
        paths[path] = {"response": ref, "query": params}
    return {"$schema": "http://json-schema.org/draft-07/schema#",
            "$id": f"https://clever-grade-sim.example/schemas/clever-{version}.json",
            "title": f"Clever data API {version}",
            "description": f"Written by scripts/clever_schemas.py from Clever's Swagger {version} "
                           "document (github.com/Clever/swagger-api); x-nullable fields allow null; "
                           "objects are closed, so a field of another version fails.",
            "paths": paths, "definitions": defs}


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    src = Path(argv[1])
    for version in VERSIONS:
        doc = yaml.safe_load((src / f"{version}.yml").read_text(encoding="utf-8"))
        out = OUT / f"clever-{version}.json"
        out.write_text(json.dumps(build(doc, version), indent=1, sort_keys=False) + "\n",
                       encoding="utf-8")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
