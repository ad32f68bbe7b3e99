"""`POST /v1/embeddings`, OpenAI-compatible (the official client's base64 default included).

One extension: `input_type` `query` / `passage` adds the configured e5-style prefix; the default
`raw` embeds the input exactly as sent, as text-embeddings-inference did."""

from __future__ import annotations

import base64
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.api.cancellation import with_cancellation
from monolith.api.models import resolve_model
from monolith.api.requests import read_json
from monolith.config import Settings
from monolith.errors import InvalidRequest
from monolith.registry import Registry

MAX_INPUT_CHARS = 100_000


class EmbeddingRequest(BaseModel):
    # OpenAI clients send fields we do not use (`user`): accepted and ignored, as vLLM does.
    model_config = ConfigDict(extra="ignore")
    input: str | list[str] | list[int] | list[list[int]]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(None, ge=1)
    input_type: Literal["raw", "query", "passage"] = "raw"


def _texts(body: EmbeddingRequest, registry: Registry, max_inputs: int) -> list[str]:
    raw = body.input
    items: list[str | list[int]]
    if isinstance(raw, str):
        items = [raw]
    elif raw and all(isinstance(x, int) for x in raw):
        items = [[x for x in raw if isinstance(x, int)]]  # one text as token ids
    else:
        items = [x for x in raw if not isinstance(x, int)]
    if not items:
        raise InvalidRequest("input is empty", param="input")
    if len(items) > max_inputs:
        raise InvalidRequest(
            f"input has {len(items)} items; at most {max_inputs} per request (embedding.max_inputs)",
            param="input",
        )
    texts = []
    for i, item in enumerate(items):
        if isinstance(item, list):
            try:
                item = registry.embedding.decode_tokens(item)
            except NotImplementedError as exc:
                raise InvalidRequest(str(exc), param="input") from exc
        if not item.strip():
            raise InvalidRequest(f"input[{i}] is empty", param="input")
        if len(item) > MAX_INPUT_CHARS:
            raise InvalidRequest(f"input[{i}] is longer than {MAX_INPUT_CHARS} characters", param="input")
        texts.append(item)
    return texts


def _encode(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")
    return [float(x) for x in vector]


async def create_embeddings(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    body = await read_json(request, EmbeddingRequest)
    model = resolve_model(registry, "embedding", body.model)
    texts = _texts(body, registry, settings.embedding.max_inputs)
    vectors = await registry.embedding.embed(texts, kind=body.input_type)
    dimension = vectors.shape[1]
    if body.dimensions is not None and body.dimensions != dimension:
        raise InvalidRequest(
            f"{model} makes {dimension}-dimensional vectors and cannot shorten them; "
            f"leave `dimensions` out or set it to {dimension}",
            code="unsupported_dimensions", param="dimensions",
        )
    tokens = registry.embedding.count_tokens(texts)
    return JSONResponse({
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": _encode(vec, body.encoding_format)}
            for i, vec in enumerate(vectors)
        ],
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    })


routes = [Route("/v1/embeddings", with_cancellation(create_embeddings), methods=["POST"])]
