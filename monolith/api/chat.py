"""`POST /v1/chat/completions`, OpenAI-compatible, streaming (SSE) and not.

Text only: for clients that do not need voice. A disconnecting SSE client cancels the stream,
which aborts the engine request. Extension: `"rag": true` (or `{"top_k", "min_score"}`) puts
the top passages for the last user message into the prompt and returns them as `sources`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from monolith.api.cancellation import with_cancellation
from monolith.api.models import resolve_model
from monolith.api.requests import read_json
from monolith.api.sse import sse_response
from monolith.config import Settings
from monolith.errors import InvalidRequest, Unavailable
from monolith.logs import request_id_var
from monolith.providers.llm import ChatMessage, LLMChunk, SamplingOptions
from monolith.rag.passages import Passage, context_message
from monolith.registry import Registry

# No tokenizer makes tokens this long on average: a prompt past this many characters per token of
# context cannot fit, and is refused before the engine tokenizes megabytes.
MAX_CHARS_PER_TOKEN = 64


class TextPart(BaseModel):
    type: Literal["text"]
    text: str


class Message(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(p.text for p in self.content)


class RagOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    top_k: int | None = Field(None, ge=1, le=100)
    min_score: float | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    # Fields OpenAI clients send that do not apply here (`user`, `metadata`...) are ignored.
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, gt=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1, le=1)
    reasoning_effort: Literal["low", "medium", "high"] | None = None
    rag: bool | RagOptions = False


def _sampling(body: ChatRequest, settings: Settings) -> SamplingOptions:
    llm = settings.llm
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    return SamplingOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or llm.max_tokens,
        temperature=llm.temperature if body.temperature is None else body.temperature,
        top_p=llm.top_p if body.top_p is None else body.top_p,
        stop=stop, seed=body.seed, reasoning_effort=body.reasoning_effort,
    )


async def _retrieve(request: Request, body: ChatRequest, messages: list[ChatMessage]) -> list[Passage]:
    if body.rag is False:
        return []
    rag = request.app.state.rag
    if rag is None:
        raise Unavailable("this request asks for rag, but RAG is disabled in the server's config", code="rag_disabled")
    query = next((m.content for m in reversed(messages) if m.role == "user"), "")
    options = body.rag if isinstance(body.rag, RagOptions) else RagOptions()
    passages: list[Passage] = await rag.search(query, top_k=options.top_k, min_score=options.min_score)
    return passages


def _with_context(messages: list[ChatMessage], passages: list[Passage]) -> list[ChatMessage]:
    if not passages:
        return messages
    leading = 0
    while leading < len(messages) and messages[leading].role in ("system", "developer"):
        leading += 1
    return [*messages[:leading], ChatMessage("system", context_message(passages)), *messages[leading:]]


def _sources(passages: list[Passage]) -> list[dict[str, Any]]:
    return [{"source": p.source, "score": round(p.score, 6), "text": p.text} for p in passages]


async def create_chat_completion(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    body = await read_json(request, ChatRequest)
    model = resolve_model(registry, "llm", body.model)
    if not body.messages:
        raise InvalidRequest("messages is empty", param="messages")
    messages = [ChatMessage(m.role, m.text()) for m in body.messages]
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("messages has no user message", param="messages")
    chars = sum(len(m.content) for m in messages)
    if chars > settings.llm.max_model_len * MAX_CHARS_PER_TOKEN:  # cheap, before any tokenizer sees it
        raise InvalidRequest(f"messages hold {chars} characters: far more than the model's context of "
                             f"{settings.llm.max_model_len} tokens (llm.max_model_len)",
                             code="context_length_exceeded", param="messages")
    passages = await _retrieve(request, body, messages)
    chat = _with_context(messages, passages)
    options = _sampling(body, settings)
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    stream = registry.llm.stream_chat(chat, options, request_id=request_id_var.get() or completion_id)
    created = int(time.time())
    if body.stream:
        # Pull the first chunk now: a bad request (too long, engine down) is still a 4xx/5xx.
        first = await _first(stream)
        usage = body.stream_options is not None and body.stream_options.include_usage
        events = _chunks(completion_id, created, model, first, stream, usage, _sources(passages))
        return sse_response(events, done=True)
    text, last = "", None
    async for chunk in stream:
        text += chunk.text
        last = chunk
    assert last is not None
    result: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                     "finish_reason": last.finish_reason or "stop"}],
        "usage": _usage(last),
    }
    if passages:
        result["sources"] = _sources(passages)
    return JSONResponse(result)


def _usage(last: LLMChunk) -> dict[str, int]:
    return {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
            "total_tokens": last.prompt_tokens + last.completion_tokens}


async def _first(stream: AsyncIterator[LLMChunk]) -> LLMChunk | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _chunks(
    completion_id: str, created: int, model: str, first: LLMChunk | None, stream: AsyncIterator[LLMChunk],
    include_usage: bool, sources: list[dict[str, Any]],
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI's chat.completion.chunk objects; api/sse.py encodes them and ends with [DONE]."""
    def chunk(delta: dict[str, Any], finish: str | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        return {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **(extra or {})}

    try:
        yield chunk({"role": "assistant", "content": ""}, extra={"sources": sources} if sources else None)
        last = first
        async for item in _chain([first] if first is not None else [], stream):
            last = item
            if item.text:
                yield chunk({"content": item.text})
        yield chunk({}, finish=(last.finish_reason if last else None) or "stop")
        if include_usage and last is not None:
            yield {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                   "choices": [], "usage": _usage(last)}
    finally:
        await stream.aclose()  # type: ignore[attr-defined]  # disconnect: aborts the engine request


async def _chain(first: list[LLMChunk], rest: AsyncIterator[LLMChunk]) -> AsyncIterator[LLMChunk]:
    for item in first:
        yield item
    async for item in rest:
        yield item


routes = [Route("/v1/chat/completions", with_cancellation(create_chat_completion), methods=["POST"])]
