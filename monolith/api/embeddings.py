"""`POST /v1/embeddings`, OpenAI-compatible (the official client's base64 default included).

Token-id input is read as OpenAI-shaped clients write it: tiktoken's cl100k_base ids (LangChain's
`OpenAIEmbeddings` sends those by default), decoded back to the text, which is what is embedded;
`[embedding] token_ids` can say `model` (the served model's own tokenizer) or `reject`. Ids are
never read with a tokenizer they were not made with: without the cl100k_base vocabulary the
request is refused with a 400 that says how to fix it.

One extension: `input_type` `query` / `passage` adds the configured e5-style prefix; the default
`raw` embeds the input exactly as sent, as text-embeddings-inference did."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable, Sequence
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
from monolith.providers import tiktoken_ids
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


SEND_TEXT = ("send the text itself instead of token ids (LangChain: "
             "OpenAIEmbeddings(check_embedding_ctx_length=False))")


def _decoder(registry: Registry, settings: Settings) -> Callable[[Sequence[int]], str]:
    """How this server reads token-id input (`[embedding] token_ids`)."""
    how = settings.embedding.token_ids
    if how == "model":
        return registry.embedding.decode_tokens
    if how == "reject":
        raise InvalidRequest(f"this server does not take token-id input (embedding.token_ids = \"reject\"); {SEND_TEXT}",
                             code="token_ids_unsupported", param="input")
    return tiktoken_ids.decode


async def _decoded(items: list[str | list[int]], registry: Registry, settings: Settings) -> list[str]:
    if all(isinstance(item, str) for item in items):
        return [item for item in items if isinstance(item, str)]
    decode = _decoder(registry, settings)

    def run() -> list[str]:  # loading a vocabulary takes a moment: off the event loop
        return [item if isinstance(item, str) else decode(item) for item in items]

    try:
        return await asyncio.to_thread(run)
    except tiktoken_ids.VocabularyMissing as exc:
        raise InvalidRequest(f"token-id input is read as OpenAI's cl100k_base ids, but {exc}; or {SEND_TEXT}",
                             code="token_ids_unsupported", param="input") from None
    except (NotImplementedError, ValueError) as exc:
        raise InvalidRequest(f"{exc}; {SEND_TEXT}", code="invalid_token_ids", param="input") from None


def _items(body: EmbeddingRequest, max_inputs: int) -> list[str | list[int]]:
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
    return items


def _checked(texts: list[str]) -> list[str]:
    for i, item in enumerate(texts):
        if not item.strip():
            raise InvalidRequest(f"input[{i}] is empty", param="input")
        if len(item) > MAX_INPUT_CHARS:
            raise InvalidRequest(f"input[{i}] is longer than {MAX_INPUT_CHARS} characters", param="input")
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
    texts = _checked(await _decoded(_items(body, settings.embedding.max_inputs), registry, settings))
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
