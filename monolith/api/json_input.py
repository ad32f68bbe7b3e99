"""JSON from clients, parsed defensively: every transport uses this before its own models.

`json.loads` recurses once per nesting level, so `[[[[...]]]]` a hundred thousand deep raised
RecursionError (a 500); and JSON escapes can carry lone UTF-16 surrogates (`"\\ud800"`), which
Python keeps in a `str` that then fails to encode wherever it goes (a log line, a tokenizer, a
socket). Both are refused here as a clear 400 / `error` event."""

from __future__ import annotations

import json
import re
from typing import Any

from monolith.errors import InvalidRequest

MAX_DEPTH = 64
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def parse_json(data: bytes | str) -> Any:
    try:
        value = json.loads(data)
    except RecursionError:
        raise InvalidRequest(f"JSON nested deeper than {MAX_DEPTH} levels", code="invalid_json") from None
    except UnicodeDecodeError:
        raise InvalidRequest("the body is not UTF-8 text", code="invalid_json") from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(f"not valid JSON: {exc.msg} at position {exc.pos}", code="invalid_json") from None
    check_json(value)
    return value


def check_json(value: Any) -> None:
    """Depth at most MAX_DEPTH; no string (or key) with a lone surrogate."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidRequest(f"JSON nested deeper than {MAX_DEPTH} levels", code="invalid_json")
        if isinstance(item, str):
            if _LONE_SURROGATE.search(item):
                raise InvalidRequest(
                    f"{where or 'a string'} contains a lone UTF-16 surrogate (an unpaired \\ud800-\\udfff escape), "
                    "which is not valid Unicode", code="invalid_value", param=where or None)
        elif isinstance(item, dict):
            for key, child in item.items():
                stack.append((key, depth + 1, where))
                stack.append((child, depth + 1, f"{where}.{key}" if where else str(key)))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))
