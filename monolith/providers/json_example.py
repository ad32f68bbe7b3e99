"""A JSON value valid for a JSON schema, the mock LLM's answer to structured-output requests and
its tool calls' arguments: deterministic, the first choice everywhere.

The common subset a client's schema uses (pydantic's and the openai SDK's included): object
(every property), array (`minItems` copies of one item, `prefixItems`), string (`format`,
`minLength`/`maxLength`; a `pattern` is not honoured), integer and number (`minimum`,
`exclusiveMinimum`, `maximum`), boolean (true), null, `enum` and `const` (the first value),
`anyOf`/`oneOf` (the first option that is not null), `allOf` (merged), and `$ref` into `$defs` or
`definitions`. A recursive schema ends where it can: null, or an optional property left out."""

from __future__ import annotations

import math
from typing import Any

MAX_DEPTH = 12  # a recursive schema stops here with null

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z", "date": "2024-01-01", "time": "00:00:00", "email": "user@example.com",
    "uri": "https://example.com", "uuid": "00000000-0000-0000-0000-000000000000", "ipv4": "127.0.0.1",
}


def example(schema: Any) -> Any:
    root = schema if isinstance(schema, dict) else {}
    return _value(schema, root, 0, frozenset())


def _recursive(schema: Any, seen: frozenset[str]) -> bool:
    """Whether `schema` leads back into a definition being built (directly or through anyOf)."""
    if not isinstance(schema, dict):
        return False
    if schema.get("$ref") in seen:
        return True
    return any(_recursive(o, seen) for key in ("anyOf", "oneOf") for o in schema.get(key) or [])


def _resolve(ref: str, root: dict[str, Any]) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/") if ref.startswith("#/") else []:
        node = node.get(part, {}) if isinstance(node, dict) else {}
    return node


def _value(schema: Any, root: dict[str, Any], depth: int, seen: frozenset[str]) -> Any:
    if not isinstance(schema, dict) or depth > MAX_DEPTH:
        return {} if depth == 0 else None
    if "$ref" in schema:
        return _value(_resolve(schema["$ref"], root), root, depth + 1, seen | {schema["$ref"]})
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if not _recursive(o, seen)] or schema[key]
            chosen = next((o for o in options if not (isinstance(o, dict) and o.get("type") == "null")), options[0])
            return _value(chosen, root, depth + 1, seen)
    if schema.get("allOf"):
        merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            part = _resolve(part["$ref"], root) if isinstance(part, dict) and "$ref" in part else part
            if isinstance(part, dict):
                merged.update({k: v for k, v in part.items() if k != "properties"})
                merged["properties"] = {**merged.get("properties", {}), **part.get("properties", {})}
        return _value(merged, root, depth + 1, seen)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind is None:
        kind = "object" if "properties" in schema else "array" if "items" in schema else None
    return _typed(kind, schema, root, depth, seen)


def _typed(kind: str | None, schema: dict[str, Any], root: dict[str, Any], depth: int, seen: frozenset[str]) -> Any:
    if kind == "object":
        required = set(schema.get("required") or [])
        return {name: _value(sub, root, depth + 1, seen) for name, sub in (schema.get("properties") or {}).items()
                if name in required or not _recursive(sub, seen)}
    if kind == "array":
        prefix = [_value(sub, root, depth + 1, seen) for sub in schema.get("prefixItems") or []]
        count = max(int(schema.get("minItems", 1)), len(prefix))
        if "maxItems" in schema:
            count = min(count, int(schema["maxItems"]))
        item = schema.get("items", {})
        return [*prefix, *(_value(item, root, depth + 1, seen) for _ in range(count - len(prefix)))][:count]
    if kind == "string":
        text = _FORMATS.get(str(schema.get("format")), "string")
        text = text.ljust(int(schema.get("minLength", 0)), "x")
        return text[: int(schema["maxLength"])] if "maxLength" in schema else text
    if kind in ("integer", "number"):
        return _number(schema, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return {} if depth == 0 else None  # no type: anything goes


def _number(schema: dict[str, Any], *, integer: bool) -> int | float:
    """0 when allowed, else the nearest allowed value."""
    step = 1 if integer else 0.5
    low = schema.get("minimum", -math.inf)
    if "exclusiveMinimum" in schema:
        low = max(low, schema["exclusiveMinimum"] + step)
    high = schema.get("maximum", math.inf)
    if "exclusiveMaximum" in schema:
        high = min(high, schema["exclusiveMaximum"] - step)
    value: float = min(max(0, low), high)
    return math.ceil(value) if integer else value
