"""The API description: ``GET /_sim/openapi.json`` (the packaged OpenAPI 3.1 document) and
``GET /_sim/docs`` (the same document as a readable HTML page, rendered on the server).

The page needs no JavaScript and no external CSS (the app's CSP is ``script-src 'self'``):
everything is turned into plain lists and tables here, and ``api_docs.html`` lays them out.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Blueprint, Response, render_template
from markupsafe import Markup, escape

from ..bodies import document_text
from ..web import base_root

bp = Blueprint("api_docs", __name__, url_prefix="/_sim")

HTTP_METHODS = ("get", "post", "put", "patch", "delete")


def load_document() -> dict:
    """The OpenAPI document as a fresh dict (callers may change their copy)."""
    return json.loads(document_text())


@bp.get("/openapi.json")
def openapi_json():
    """The packaged document; under a tenant's prefix (``/t/{name}/``) its server is that prefix."""
    root = base_root()
    if not root:
        return Response(document_text(), mimetype="application/json")
    doc = load_document()
    doc["servers"] = [{"url": root.rstrip("/") + "/"}]
    return Response(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", mimetype="application/json")


@bp.get("/docs")
def docs():
    return render_template("api_docs.html", **docs_model(load_document()))


# --- turning the document into what the page shows -------------------------------------

_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*\*([^*]+)\*\*")


def prose(text: str | None) -> Markup:
    """The little Markdown the document uses (`code`, **bold**, blank-line paragraphs), escaped."""
    if not text:
        return Markup("")
    out = []
    for para in str(text).split("\n\n"):
        html = str(escape(para))
        html = _CODE.sub(r"<code>\1</code>", html)
        html = _BOLD.sub(r"<strong>\1</strong>", html)
        out.append(html)
    return Markup("</p><p>".join(out))


def anchor(*parts: str) -> str:
    """A stable fragment id: ``op-get-_sim-grades``, ``schema-GradeRecord``."""
    return re.sub(r"[^A-Za-z0-9_]+", "-", "-".join(parts)).strip("-")


class _Resolver:
    def __init__(self, doc: dict):
        self.doc = doc

    def __call__(self, node: Any) -> Any:
        """Follow one local ``$ref`` (parameters, responses, headers); schemas stay references."""
        seen = 0
        while isinstance(node, dict) and "$ref" in node and seen < 10:
            target: Any = self.doc
            for part in node["$ref"].lstrip("#/").split("/"):
                target = target.get(part, {}) if isinstance(target, dict) else {}
            node, seen = target, seen + 1
        return node


def schema_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def type_summary(schema: Any) -> Markup:
    """One line saying what a schema accepts: ``integer, 1–10000, default 100``."""
    if not isinstance(schema, dict):
        return Markup("any")
    if "$ref" in schema:
        name = schema_name(schema["$ref"])
        return Markup('<a href="#{}">{}</a>').format(anchor("schema", name), name)
    for key, word in (("oneOf", "one of"), ("anyOf", "any of"), ("allOf", "all of")):
        if key in schema:
            parts = [type_summary(s) for s in schema[key]]
            return Markup(f"{word}: ") + Markup(" | ").join(parts)
    kind = schema.get("type", "any")
    if isinstance(kind, list):
        kind = " or ".join(kind)
    bits: list[Markup | str] = []
    if kind == "array" or (isinstance(schema.get("type"), list) and "array" in schema["type"]):
        bits.append(Markup("array of ") + type_summary(schema.get("items", {})))
    else:
        bits.append(kind)
    if "const" in schema:
        bits.append(Markup("always <code>{}</code>").format(json.dumps(schema["const"], ensure_ascii=False)))
    if "enum" in schema:
        values = Markup(", ").join(Markup("<code>{}</code>").format(json.dumps(v, ensure_ascii=False))
                                   for v in schema["enum"])
        bits.append(Markup("one of ") + values)
    bits.extend(_range(schema))
    if "minLength" in schema or "maxLength" in schema:
        bits.append(f"length {schema.get('minLength', 0)}–{schema.get('maxLength', '…')}")
    if "pattern" in schema:
        bits.append(Markup("matching <code>{}</code>").format(schema["pattern"]))
    if "format" in schema:
        bits.append(schema["format"])
    if "default" in schema:
        bits.append(Markup("default <code>{}</code>").format(json.dumps(schema["default"], ensure_ascii=False)))
    return Markup(", ").join(Markup(escape(b)) if not isinstance(b, Markup) else b for b in bits)


def _range(schema: dict) -> list[str]:
    """``1–10000``, ``≥ 0``, ``> 0``, ``≤ 60`` (nothing when unbounded)."""
    low = [f"≥ {schema['minimum']}"] if "minimum" in schema else []
    low += [f"> {schema['exclusiveMinimum']}"] if "exclusiveMinimum" in schema else []
    high = [f"≤ {schema['maximum']}"] if "maximum" in schema else []
    high += [f"< {schema['exclusiveMaximum']}"] if "exclusiveMaximum" in schema else []
    if "minimum" in schema and "maximum" in schema:
        return [f"{schema['minimum']}–{schema['maximum']}"]
    return low + high


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


def _operation(doc: dict, resolve: _Resolver, path: str, method: str, op: dict,
               path_params: list) -> dict:
    params = []
    for raw in path_params + op.get("parameters", []):
        p = resolve(raw)
        params.append({"name": p.get("name", ""), "in": p.get("in", ""), "required": p.get("required", False),
                       "type": type_summary(p.get("schema")), "description": prose(p.get("description")),
                       "example": pretty(p["example"]) if "example" in p else None})
    body = None
    if "requestBody" in op:
        rb = resolve(op["requestBody"])
        content = rb.get("content", {})
        example = next((m["example"] for m in content.values() if "example" in m), None)
        first = next(iter(content.values()), {})
        body = {"content_types": list(content), "required": rb.get("required", False),
                "schema": type_summary(first.get("schema")), "description": prose(rb.get("description")),
                "example": pretty(example) if example is not None else None}
    responses = []
    for status, raw in op.get("responses", {}).items():
        r = resolve(raw)
        content = r.get("content", {})
        first = next(iter(content.values()), {})
        example = next((m["example"] for m in content.values() if "example" in m), None)
        responses.append({"status": status, "description": prose(r.get("description")),
                          "content_types": list(content),
                          "schema": type_summary(first["schema"]) if "schema" in first else None,
                          "headers": sorted(r.get("headers", {})),
                          "example": pretty(example) if example is not None else None})
    security = op.get("security", doc.get("security", []))
    schemes = [" + ".join(req) for req in security if req] + (["none"] if {} in security else [])
    return {"method": method.upper(), "path": path, "anchor": anchor("op", method, path),
            "summary": op.get("summary", ""), "description": prose(op.get("description")),
            "operation_id": op.get("operationId", ""), "security": schemes, "parameters": params,
            "body": body, "responses": responses}


def _schema_rows(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    return [{"name": name, "type": type_summary(sub), "required": name in required,
             "description": prose(sub.get("description") if isinstance(sub, dict) else None)}
            for name, sub in schema.get("properties", {}).items()]


def docs_model(doc: dict) -> dict:
    """Everything ``api_docs.html`` shows, grouped by tag in the document's tag order."""
    resolve = _Resolver(doc)
    tags = [{"name": t["name"], "description": prose(t.get("description")), "anchor": anchor("tag", t["name"]),
             "operations": []} for t in doc.get("tags", [])]
    by_name = {t["name"]: t for t in tags}
    for path, item in doc.get("paths", {}).items():
        for method in HTTP_METHODS:
            if method not in item:
                continue
            op = item[method]
            tag_name = (op.get("tags") or ["Other"])[0]
            if tag_name not in by_name:
                by_name[tag_name] = {"name": tag_name, "description": Markup(""),
                                     "anchor": anchor("tag", tag_name), "operations": []}
                tags.append(by_name[tag_name])
            by_name[tag_name]["operations"].append(
                _operation(doc, resolve, path, method, op, item.get("parameters", [])))
    schemas = []
    for name, schema in doc.get("components", {}).get("schemas", {}).items():
        extra = schema.get("additionalProperties")
        schemas.append({
            "name": name, "anchor": anchor("schema", name), "description": prose(schema.get("description")),
            "summary": type_summary({k: v for k, v in schema.items() if k != "properties"})
            if "properties" not in schema else None,
            "rows": _schema_rows(schema),
            "extra": ("other fields allowed" if extra in (True, None) and "properties" in schema
                      else "no other fields" if extra is False else None),
        })
    schemes = [{"name": n, "scheme": s.get("scheme", s.get("type", "")), "description": prose(s.get("description"))}
               for n, s in doc.get("components", {}).get("securitySchemes", {}).items()]
    info = doc.get("info", {})
    return {"info": {"title": info.get("title", "API"), "version": info.get("version", ""),
                     "summary": info.get("summary", ""), "description": prose(info.get("description"))},
            "openapi": doc.get("openapi", ""), "tags": [t for t in tags if t["operations"]],
            "schemas": schemas, "security_schemes": schemes,
            "operation_count": sum(len(t["operations"]) for t in tags)}
