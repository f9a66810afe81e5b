"""The API's documentation page (/api/docs), rendered on the server from its OpenAPI document.

A self-contained page rather than Swagger UI, whose scripts come from a CDN: the app works offline, and so does its
documentation. Each endpoint shows its parameters or body fields, an example request as curl, and its answers.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import urlencode

__all__ = ["docs_html"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 2em; border-top: 1px solid #ccc; padding-top: 1em; }
.method { font-family: monospace; font-weight: 700; padding: 2px 6px; border-radius: 4px; background: #e8eefc; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; font-size: 0.92em; }
th, td { text-align: left; padding: 4px 8px; border-bottom: 1px solid #ddd; vertical-align: top; }
code, pre { font-family: ui-monospace, monospace; } pre { background: #f5f5f5; padding: 8px; overflow-x: auto; }
.muted { color: #666; }
"""


_CODE = re.compile(r"`([^`]+)`")


def _prose(text: str) -> str:
    """Escaped text with its `code` spans (as the OpenAPI descriptions write them) set in code."""
    return _CODE.sub(r"<code>\1</code>", html.escape(text))


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref and ref.startswith("#/components/schemas/"):
        return doc.get("components", {}).get("schemas", {}).get(ref.rsplit("/", 1)[1], {})
    return schema


def _type(schema: dict[str, Any]) -> str:
    """A schema as a reader names it: "text", "list of text", "whole number or null", "AnswerOut"."""
    if "$ref" in schema:
        return schema["$ref"].rsplit("/", 1)[1]
    if "anyOf" in schema:
        return " or ".join(dict.fromkeys(_type(s) for s in schema["anyOf"]))
    kind: str | None = schema.get("type")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}" if schema.get("items") else "list"
    if "enum" in schema or "const" in schema:
        return " | ".join(json.dumps(v) for v in schema.get("enum", [schema.get("const")]))
    if not kind:
        return "any"
    return {
        "string": "text",
        "integer": "whole number",
        "number": "number",
        "boolean": "true or false",
        "object": "object",
        "null": "null",
    }.get(kind, kind)


def _fields_table(model: dict[str, Any]) -> str:
    required = set(model.get("required", []))
    rows = []
    for name, prop in model.get("properties", {}).items():
        about = prop.get("description", "")
        if "default" in prop and prop["default"] is not None:
            about += f" (default {json.dumps(prop['default'])})"
        rows.append(
            f"<tr><td><code>{html.escape(name)}</code></td><td>{html.escape(_type(prop))}</td>"
            f"<td>{'yes' if name in required else ''}</td><td>{_prose(about)}</td></tr>"
        )
    return "<table><tr><th>field</th><th>type</th><th>required</th><th>meaning</th></tr>" + "".join(rows) + "</table>"


def _curl(method: str, url: str, body: Any, login: bool) -> str:
    parts = ["curl"] + (["-u user:password"] if login else [])
    if isinstance(body, dict):  # the question first, as a person writes it
        body = dict(sorted(body.items(), key=lambda kv: kv[0] != "question"))
    if body is not None:
        parts += ["-H 'Content-Type: application/json'", f"-d '{json.dumps(body, ensure_ascii=False)}'"]
    elif method != "get":
        parts += ["-X", method.upper()]
    return " ".join(parts + [f"'{url}'"])


def _operation(path: str, method: str, op: dict[str, Any], doc: dict[str, Any], base: str, login: bool) -> str:
    out = [
        f"<h2><span class='method'>{method.upper()}</span> <code>/api{html.escape(path)}</code> "
        f"<span class='muted'>{html.escape(op.get('summary', ''))}</span></h2>"
    ]
    if op.get("description"):
        out.append(f"<p>{_prose(op['description'])}</p>")
    params = [p for p in op.get("parameters", []) if p.get("in") in ("query", "path")]
    example_path, query = path, {}
    if params:
        rows = []
        for p in params:
            schema = p.get("schema", {})
            examples = p.get("examples") or schema.get("examples") or []
            if isinstance(examples, dict):  # OpenAPI's named examples
                examples = [e.get("value") for e in examples.values()]
            if examples:
                if p["in"] == "path":
                    example_path = example_path.replace("{" + p["name"] + "}", str(examples[0]))
                else:
                    query[p["name"]] = examples[0]
            default = f" (default {json.dumps(schema['default'])})" if "default" in schema else ""
            rows.append(
                f"<tr><td><code>{html.escape(p['name'])}</code></td><td>{p['in']}</td>"
                f"<td>{html.escape(_type(schema))}</td>"
                f"<td>{_prose(p.get('description', '') + default)}</td></tr>"
            )
        out.append(
            "<table><tr><th>parameter</th><th>in</th><th>type</th><th>meaning</th></tr>" + "".join(rows) + "</table>"
        )
    body_examples: list[Any] = [None]
    content = op.get("requestBody", {}).get("content", {}).get("application/json")
    if content:
        model = _resolve(content.get("schema", {}), doc)
        out.append("<p>Body: a JSON object.</p>" + _fields_table(model))
        body_examples = model.get("examples") or [{"question": "..."}]
    url = f"{base}{example_path}" + (f"?{urlencode(query)}" if query else "")
    examples = "\n".join(_curl(method, url, body, login) for body in body_examples)
    out.append(f"<p>Example{'s' if len(body_examples) > 1 else ''}:</p><pre>{html.escape(examples)}</pre>")
    answers = []
    for code, resp in op.get("responses", {}).items():
        schema = resp.get("content", {}).get("application/json", {}).get("schema", {})
        shape = f" <code>{html.escape(_type(schema))}</code>" if schema else ""
        answers.append(f"<li><b>{html.escape(str(code))}</b>{shape}: {html.escape(resp.get('description', ''))}</li>")
    out.append(f"<p>Answers:</p><ul>{''.join(answers)}</ul>")
    return "\n".join(out)


def _models(doc: dict[str, Any]) -> str:
    shown = []
    for name, model in doc.get("components", {}).get("schemas", {}).items():
        if name.endswith("Request") or name in ("HTTPValidationError", "ValidationError"):
            continue
        shown.append(
            f"<h3 id='{html.escape(name)}'>{html.escape(name)}</h3>"
            f"<p>{_prose(model.get('description', ''))}</p>{_fields_table(model)}"
        )
    return "<h2>Answers</h2>" + "".join(shown)


def docs_html(doc: dict[str, Any], base: str, *, login: bool) -> str:
    """The documentation page for an OpenAPI document whose paths are served under `base` (e.g. http://host/api)."""
    info = doc.get("info", {})
    ops = [
        _operation(path, method, op, doc, base, login)
        for path, methods in doc.get("paths", {}).items()
        for method, op in methods.items()
    ]
    intro = "".join(f"<p>{_prose(p)}</p>" for p in info.get("description", "").split("\n\n") if p.strip())
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(info.get('title', 'API'))}</title>"
        f"<style>{_CSS}</style></head><body><h1>{html.escape(info.get('title', 'API'))} "
        f"<span class='muted'>{html.escape(str(info.get('version', '')))}</span></h1>{intro}"
        f"<p>The OpenAPI document: <a href='{html.escape(base)}/openapi.json'>openapi.json</a>.</p>"
        + "\n".join(ops)
        + _models(doc)
        + "</body></html>"
    )
