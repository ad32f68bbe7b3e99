"""`POST /v1/chat/completions`: the request checked, the LLM streamed, OpenAI's response built
(a whole `chat.completion`, or `chat.completion.chunk` events over SSE).

Text for clients that do not need voice, with tool calls (`message.tool_calls` /
`delta.tool_calls`, finish reason "tool_calls"), structured outputs and logprobs. A
disconnecting SSE client cancels the stream, which aborts the engine request. Extension:
`"rag": true` (or `{"top_k", "min_score"}`) puts the top passages for the last user message
into the prompt and returns them as `sources`."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from monolith.api.chat.protocol import ChatRequest, RagOptions
from monolith.api.models import resolve_model
from monolith.api.requests import read_json
from monolith.api.sse import sse_response
from monolith.config import Settings
from monolith.errors import InvalidRequest, Unavailable
from monolith.logs import request_id_var
from monolith.providers.llm import (
    ChatMessage,
    LLMChunk,
    SamplingOptions,
    TokenLogprob,
    ToolCallDelta,
    collect_tool_calls,
)
from monolith.rag.passages import Passage, context_message
from monolith.registry import Registry

# No tokenizer makes tokens this long on average: a prompt past this many characters per token of
# context cannot fit, and is refused before the engine tokenizes megabytes.
MAX_CHARS_PER_TOKEN = 64

# OpenAI's reasoning efforts -> the three gpt-oss knows.
_EFFORTS = {"none": "low", "minimal": "low", "low": "low", "medium": "medium", "high": "high",
            "xhigh": "high", "max": "high"}


def _sampling(body: ChatRequest, settings: Settings) -> SamplingOptions:
    llm = settings.llm
    stop = (body.stop,) if isinstance(body.stop, str) else tuple(body.stop or ())
    temperature = llm.temperature if body.temperature is None else body.temperature
    top_p = llm.top_p if body.top_p is None else body.top_p
    if top_p == 0:  # only the most likely token: greedy (vLLM wants 0 < top_p <= 1)
        temperature, top_p = 0.0, 1.0
    return SamplingOptions(
        max_tokens=body.max_completion_tokens or body.max_tokens or llm.max_tokens,
        temperature=temperature, top_p=top_p, stop=stop, seed=body.seed,
        reasoning_effort=_EFFORTS[body.reasoning_effort] if body.reasoning_effort else None,
        tools=body.function_tools(), tool_choice=body.provider_tool_choice(),
        parallel_tool_calls=body.parallel_tool_calls is not False,
        response_format=body.provider_response_format(),
        logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0,
    )


async def _retrieve(request: Request, body: ChatRequest, messages: list[ChatMessage]) -> list[Passage]:
    if body.rag is False:
        return []
    rag = request.app.state.rag
    if rag is None:
        raise Unavailable("this request asks for rag, but RAG is disabled in the server's config", code="rag_disabled")
    query = next((m.text for m in reversed(messages) if m.role == "user"), "")
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


def _check(messages: list[ChatMessage], settings: Settings) -> None:
    if not messages:
        raise InvalidRequest("messages is empty", param="messages")
    if not any(m.role == "user" for m in messages):
        raise InvalidRequest("messages has no user message", param="messages")
    chars = sum(len(m.text) + sum(len(c.arguments) for c in m.tool_calls) for m in messages)
    if chars > settings.llm.max_model_len * MAX_CHARS_PER_TOKEN:  # cheap, before any tokenizer sees it
        raise InvalidRequest(f"messages hold {chars} characters: far more than the model's context of "
                             f"{settings.llm.max_model_len} tokens (llm.max_model_len)",
                             code="context_length_exceeded", param="messages")


async def create_chat_completion(request: Request) -> Response:
    registry: Registry = request.app.state.registry
    settings: Settings = request.app.state.settings
    body = await read_json(request, ChatRequest)
    model = resolve_model(registry, "llm", body.model)
    messages = body.chat_messages()
    _check(messages, settings)
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
        head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}
        events = _chunks(head, first, stream, usage, _sources(passages), options.logprobs)
        return sse_response(events, done=True)
    return JSONResponse(await _whole(stream, completion_id, created, model, passages, options.logprobs))


async def _whole(
    stream: AsyncIterator[LLMChunk], completion_id: str, created: int, model: str, passages: list[Passage],
    logprobs: bool,
) -> dict[str, Any]:
    text, last = "", None
    deltas: list[ToolCallDelta] = []
    tokens: list[TokenLogprob] = []
    async for chunk in stream:
        text += chunk.text
        deltas.extend(chunk.tool_calls)
        tokens.extend(chunk.logprobs)
        last = chunk
    assert last is not None
    calls = collect_tool_calls(deltas)
    message: dict[str, Any] = {"role": "assistant", "content": text or (None if calls else ""), "refusal": None}
    if calls:
        message["tool_calls"] = [{"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                                 for c in calls]
    result: dict[str, Any] = {
        "id": completion_id, "object": "chat.completion", "created": created, "model": model,
        "choices": [{"index": 0, "message": message, "logprobs": _logprobs(tokens) if logprobs else None,
                     "finish_reason": last.finish_reason or "stop"}],
        "usage": _usage(last),
    }
    if passages:
        result["sources"] = _sources(passages)
    return result


def _usage(last: LLMChunk) -> dict[str, int]:
    return {"prompt_tokens": last.prompt_tokens, "completion_tokens": last.completion_tokens,
            "total_tokens": last.prompt_tokens + last.completion_tokens}


def _token(t: TokenLogprob) -> dict[str, Any]:
    return {"token": t.token, "logprob": t.logprob, "bytes": list(t.bytes) if t.bytes is not None else None}


def _logprobs(tokens: Sequence[TokenLogprob]) -> dict[str, Any]:
    """OpenAI's `choices[].logprobs`: each token with its alternatives."""
    return {"content": [{**_token(t), "top_logprobs": [_token(a) for a in t.top]} for t in tokens], "refusal": None}


def _tool_call_delta(d: ToolCallDelta) -> dict[str, Any]:
    function: dict[str, Any] = {"arguments": d.arguments}
    if d.name is not None:
        function["name"] = d.name
    out: dict[str, Any] = {"index": d.index, "function": function}
    if d.id is not None:
        out |= {"id": d.id, "type": "function"}
    return out


async def _first(stream: AsyncIterator[LLMChunk]) -> LLMChunk | None:
    try:
        return await anext(stream)
    except StopAsyncIteration:
        return None


async def _chunks(
    head: dict[str, Any], first: LLMChunk | None, stream: AsyncIterator[LLMChunk], include_usage: bool,
    sources: list[dict[str, Any]], logprobs: bool,
) -> AsyncIterator[dict[str, Any]]:
    """OpenAI's chat.completion.chunk objects; api/sse.py encodes them and ends with [DONE]."""
    def chunk(delta: dict[str, Any], finish: str | None = None, tokens: Sequence[TokenLogprob] = (),
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": _logprobs(tokens) if logprobs and tokens else None,
                  "finish_reason": finish}
        return {**head, "choices": [choice], **(extra or {})}

    try:
        yield chunk({"role": "assistant", "content": ""}, extra={"sources": sources} if sources else None)
        last = first
        async for item in _chain([first] if first is not None else [], stream):
            last = item
            if item.text or item.logprobs:
                yield chunk({"content": item.text}, tokens=item.logprobs)
            if item.tool_calls:
                yield chunk({"tool_calls": [_tool_call_delta(d) for d in item.tool_calls]})
        yield chunk({}, finish=(last.finish_reason if last else None) or "stop")
        if include_usage and last is not None:
            yield {**head, "choices": [], "usage": _usage(last)}
    finally:
        await stream.aclose()  # type: ignore[attr-defined]  # disconnect: aborts the engine request


async def _chain(first: list[LLMChunk], rest: AsyncIterator[LLMChunk]) -> AsyncIterator[LLMChunk]:
    for item in first:
        yield item
    async for item in rest:
        yield item

