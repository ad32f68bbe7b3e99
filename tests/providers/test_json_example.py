"""The mock's JSON for a schema: valid for the schemas clients send (pydantic's, the SDK's strict ones)."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

import openai.lib._pydantic as sdk_schema
import pytest
from pydantic import BaseModel, Field

from monolith.providers.json_example import example


class Item(BaseModel):
    name: str = Field(min_length=3, max_length=5)
    qty: int = Field(ge=2, le=9)


class Order(BaseModel):
    id: int
    items: list[Item] = Field(min_length=2)
    status: Literal["open", "closed"]
    note: str | None
    price: float = Field(gt=0)
    due: date
    tags: tuple[str, int]
    child: Order | None = None


def test_a_pydantic_model_validates_its_example() -> None:
    for schema in (Order.model_json_schema(), sdk_schema.to_strict_json_schema(Order)):
        value = example(schema)
        order = Order.model_validate(value)
        assert len(order.items) == 2 and order.status == "open" and order.price > 0


@pytest.mark.parametrize(("schema", "value"), [
    ({}, {}),
    ({"type": "integer", "minimum": 5, "maximum": 9}, 5),
    ({"type": "integer", "exclusiveMaximum": -3}, -4),
    ({"type": ["null", "string"], "minLength": 8}, "stringxx"),
    ({"const": 42}, 42),
    ({"type": "array", "items": {"type": "boolean"}, "maxItems": 0}, []),
    ({"allOf": [{"properties": {"a": {"type": "null"}}}, {"properties": {"b": {"enum": ["x"]}}}]}, {"a": None, "b": "x"}),
])
def test_first_choices(schema: dict[str, Any], value: Any) -> None:
    assert example(schema) == value


def test_a_recursive_schema_ends() -> None:
    node: dict[str, Any] = {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}
    assert example({"$defs": {"node": node}, "$ref": "#/$defs/node"}) == {}  # optional: left out
    required = {**node, "required": ["next"]}
    value = example({"$defs": {"node": required}, "$ref": "#/$defs/node"})
    depth = 0
    while isinstance(value, dict):
        value, depth = value["next"], depth + 1
    assert value is None and depth < 20  # required: as deep as MAX_DEPTH allows, then null
