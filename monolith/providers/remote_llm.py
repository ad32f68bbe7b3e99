"""The LLM on another server (`[llm] backend = "remote"`): an OpenAI-compatible chat completions
endpoint, typically vLLM's own API server, or a router in front of vLLM replicas spread over
several nodes (a model larger than one node). STT, TTS and RAG stay in this process; only the
chat's text crosses the network.

- Streaming through the openai SDK, with `stream_options.include_usage` for the token counts.
  Only `content` reaches the user: a reasoning model's `reasoning_content` (gpt-oss's analysis
  channel, which the server parses) is never spoken or shown.
- Tools, `tool_choice`, `response_format` and logprobs go to the server as asked (vLLM's server
  parses calls with its own `--tool-call-parser`, which must be enabled there with
  `--enable-auto-tool-choice`); its `delta.tool_calls` and `logprobs` come back as the
  interface's tool-call deltas and token logprobs; an answer that called a tool ends with
  "tool_calls" (vLLM's server says "stop" after a named function's call).
- Closing or cancelling the stream closes the HTTP response, and vLLM aborts a request whose
  client went away: a barge-in frees the remote engine's slot as it does a local one's.
- Errors: a server that cannot be reached (refused, no answer within `connect_timeout_s`, after
  `max_retries`) is fatal: the slot takes it out and reconnects with backoff, its mock standing
  in (fallback = "mock"), /ready answering 503 meanwhile. A 4xx about the request (too long for
  the context) is the client's 400; 429 is a retryable 503; a refused key, a model the server
  does not serve, a 5xx or a connection broken mid-answer are failures of this provider.
- Health: each of the registry's health checks starts `GET {base_url}/models` in the background;
  two failed checks in a row, or the model gone from the list, make the slot reconnect.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import re
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from monolith.config import LLMConfig
from monolith.errors import InvalidRequest, Unavailable
from monolith.providers.base import Capabilities, EngineSpec, import_names
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.openai_chat import (
    message_dict,
    request_extras,
    token_logprobs,
    tool_call_deltas,
)

log = logging.getLogger(__name__)

PROBE_FAILURES = 2  # failed /models checks in a row that mean the server is gone
PROBE_READ_S = 5.0  # a server that takes longer to list its models is not well either
_CONTEXT = re.compile(r"context length|max_model_len|maximum context|too long", re.IGNORECASE)


class RemoteUnreachable(ConnectionError):
    """The server did not answer at all: it is gone (or not up yet), not just this request."""


class RemoteFailed(RuntimeError):
    """The server answered with an error that is not the client's (5xx, key refused, model not
    served), or broke off an answer."""


def _summary(exc: BaseException) -> str:
    """What went wrong underneath: the SDK's "Connection error." says less than httpx's cause."""
    cause = exc.__cause__ or exc.__context__
    shown = cause if cause is not None and str(cause) else exc
    return f"{type(shown).__name__}: {shown}"


class RemoteLLM(LLMProvider):
    backend = "remote"
    capabilities = Capabilities(tool_calls=True, structured_output=True, logprobs=True)

    @classmethod
    def missing_files(cls, folder: Path) -> list[str]:
        return []  # the weights live with the server

    def __init__(self, config: LLMConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, runner=spec.runner)
        self.config = config
        self.remote = config.remote
        self.endpoint = config.remote.endpoint  # for messages: no credentials
        self.upstream_model = ""  # the name the server knows the model by (chosen in load)
        self.reasoning = False  # gpt-oss: the configured reasoning_effort is sent
        self.client: Any = None
        self.active: set[str] = set()
        # The last request ids whose consumer went away before the end (capped: a record, not a log).
        self.aborted: deque[str] = deque(maxlen=256)
        self._ids = itertools.count(1)
        self._probe: asyncio.Task[None] | None = None
        self._probe_failures = 0
        self._problem: str | None = None

    def import_libraries(self) -> None:
        import_names("openai", "AsyncOpenAI", "APIConnectionError", "APIStatusError", "Timeout")

    async def load(self) -> None:
        await asyncio.to_thread(self.ensure_imported)
        import openai

        # Reads wait up to the slot's own deadlines (which abort the request first); this bound
        # only keeps a call made outside a slot (warm-up, a script) from waiting for ever.
        read_s = max(self.config.first_output_timeout_s, self.config.output_gap_timeout_s) + 5
        self.client = openai.AsyncOpenAI(
            base_url=self.remote.base_url,
            # vLLM without --api-key ignores the header; an explicit value keeps the SDK from
            # reading OPENAI_API_KEY, which is not meant for this server.
            api_key=self.remote.api_key or "EMPTY",
            max_retries=self.remote.max_retries,
            timeout=openai.Timeout(read_s, connect=self.remote.connect_timeout_s),
        )
        served = await self._served_models()
        self.upstream_model = self._choose(served)
        self.reasoning = "gpt-oss" in f"{self.upstream_model} {served[self.upstream_model]}".lower()
        log.info("llm: %s serves %s", self.endpoint, self.upstream_model,
                 extra={"endpoint": self.endpoint, "model": self.upstream_model, "reasoning_effort_sent": self.reasoning})

    def _choose(self, served: dict[str, str]) -> str:
        names = ", ".join(served) or "no model"
        wanted = self.remote.model
        if wanted:
            if wanted in served:
                return wanted
            raise RemoteFailed(f"{self.endpoint} does not serve {wanted!r} (llm.remote.model); it serves {names}")
        if self.model_id in served:
            return self.model_id
        if len(served) == 1:
            return next(iter(served))
        raise RemoteFailed(f"{self.endpoint} does not serve {self.model_id!r} and serves {names}: "
                           "name one in llm.remote.model")

    async def _served_models(self, *, probe: bool = False) -> dict[str, str]:
        """id -> the model's root (vLLM: its path or hub id), as `GET /models` lists them. A
        health probe is not retried and waits less."""
        client = self.client
        if probe:
            import openai

            client = client.with_options(max_retries=0,
                                         timeout=openai.Timeout(PROBE_READ_S, connect=self.remote.connect_timeout_s))
        try:
            page = await client.models.list()
        except Exception as exc:
            raise self._translate(exc, started=False) from exc
        return {m.id: str(getattr(m, "root", "") or "") for m in page.data}

    async def warmup(self) -> None:
        # /ready says ready only after the server has answered a chat: one token.
        async for _ in self.stream_chat([ChatMessage("user", "Hi")], SamplingOptions(max_tokens=1), request_id="warmup"):
            pass

    async def close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            probe.cancel()
            with contextlib.suppress(BaseException):
                await probe
        client, self.client = self.client, None
        if client is not None:
            await client.close()

    def running_requests(self) -> int:
        return len(self.active)

    # --- health ---------------------------------------------------------------------------

    def health_problem(self) -> str | None:
        """The last check's verdict; starts the next check (the registry calls this every
        `server.health_check_interval_s`, so checks come at that pace, one at a time)."""
        if self.client is None:
            return None
        if self._probe is None or self._probe.done():
            try:
                self._probe = asyncio.get_running_loop().create_task(self._check(), name="remote-llm-health")
            except RuntimeError:  # no event loop: nothing to start
                pass
        return self._problem

    async def _check(self) -> None:
        try:
            served = await self._served_models(probe=True)
        except Exception as exc:
            self._probe_failures += 1
            if self._probe_failures >= PROBE_FAILURES:
                what = "unreachable" if isinstance(exc, RemoteUnreachable) else "unhealthy"
                self._problem = f"{what}: {exc}"
            return
        self._probe_failures = 0
        if self.upstream_model not in served:
            self._problem = (f"{self.endpoint} no longer serves {self.upstream_model!r} "
                             f"(it serves {', '.join(served) or 'no model'})")
        else:
            self._problem = None

    def is_fatal(self, exc: BaseException) -> bool:
        return isinstance(exc, RemoteUnreachable)

    # --- chat -----------------------------------------------------------------------------

    def _request(self, messages: Sequence[ChatMessage], options: SamplingOptions) -> dict[str, Any]:
        chat = [message_dict(m) for m in messages]
        body: dict[str, Any] = {
            "model": self.upstream_model, "messages": chat, "max_tokens": options.max_tokens,
            "temperature": options.temperature, "top_p": options.top_p,
            "stream": True, "stream_options": {"include_usage": True},
        }
        if options.stop:
            body["stop"] = list(options.stop)
        if options.seed is not None:
            body["seed"] = options.seed
        # Sent when asked for, and by default to gpt-oss only: other servers may refuse the field.
        effort = options.reasoning_effort or (self.config.reasoning_effort if self.reasoning else None)
        if effort:
            body["reasoning_effort"] = effort
        if options.ignore_eos:
            body["extra_body"] = {"ignore_eos": True}  # vLLM's extension (benchmarks)
        return body | request_extras(options)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        if self.client is None:
            raise RuntimeError("the remote LLM is not connected")
        if not messages:
            raise InvalidRequest("messages is empty", param="messages")
        call_id = f"{request_id}-{next(self._ids)}"  # unique per call; the server's logs show it
        stream: Any = None
        finished = False
        self.active.add(call_id)
        try:
            try:
                stream = await self.client.chat.completions.create(
                    **self._request(messages, options), extra_headers={"X-Request-Id": call_id})
            except Exception as exc:
                raise self._translate(exc, started=False) from exc
            finish: str | None = None
            usage: Any = None
            called = False
            try:
                async for chunk in stream:
                    usage = chunk.usage or usage
                    for choice in chunk.choices:
                        if choice.index != 0:
                            continue
                        text = (choice.delta.content if choice.delta is not None else None) or ""
                        calls = tool_call_deltas(choice.delta.tool_calls if choice.delta is not None else None)
                        logprobs = token_logprobs(choice.logprobs.content if choice.logprobs is not None else None)
                        called = called or bool(calls)
                        if text or calls or logprobs:
                            yield LLMChunk(text, tool_calls=calls, logprobs=logprobs)
                        finish = choice.finish_reason or finish
            except Exception as exc:
                raise self._translate(exc, started=True) from exc
            if finish is None:
                raise RemoteFailed(f"{self.endpoint} ended the answer without a finish reason")
            finished = True
            if called and finish == "stop":  # vLLM's server says "stop" for a named function's call
                finish = "tool_calls"
            yield LLMChunk("", finish_reason=finish,
                           prompt_tokens=int(getattr(usage, "prompt_tokens", 0) or 0),
                           completion_tokens=int(getattr(usage, "completion_tokens", 0) or 0))
        finally:
            self.active.discard(call_id)
            if stream is not None:
                if not finished:
                    self.aborted.append(call_id)
                # Closing the response drops the connection: vLLM aborts the request.
                await asyncio.shield(stream.close())

    def _translate(self, exc: BaseException, *, started: bool) -> BaseException:
        """The SDK's exception -> what the slot and the client act on (see the module's doc)."""
        import openai

        if isinstance(exc, openai.APIConnectionError) or _is_transport_error(exc):
            if started:  # it answered, then the connection broke: the request failed, maybe not the server
                return RemoteFailed(f"{self.endpoint} broke off the answer ({_summary(exc)})")
            return RemoteUnreachable(f"{self.endpoint} did not answer ({_summary(exc)})")
        if isinstance(exc, openai.APIStatusError):
            return self._status_error(exc)
        if isinstance(exc, openai.APIError):  # an error event inside the stream
            return RemoteFailed(f"{self.endpoint} reported an error: {exc.message}")
        return exc

    def _status_error(self, exc: Any) -> BaseException:
        status = int(exc.status_code)
        body = exc.body if isinstance(exc.body, dict) else {}
        message = str(body.get("message") or exc.message)
        if status == 429:
            return Unavailable(f"the LLM server is busy (429: {message}); retry shortly", code="llm_busy")
        if status in (400, 413, 422):
            code = body.get("code") if isinstance(body.get("code"), str) else None
            if code is None and _CONTEXT.search(message):
                code = "context_length_exceeded"
            param = body.get("param") if isinstance(body.get("param"), str) else None
            return InvalidRequest(message, code=code, param=param)
        if status in (401, 403):
            return RemoteFailed(f"{self.endpoint} refused monolith's API key ({status}: {message}); "
                                "check llm.remote.api_key")
        if status == 404:
            served = f", and {self.upstream_model!r} served there" if self.upstream_model else ""
            return RemoteFailed(f"{self.endpoint} answered 404 ({message}); is llm.remote.base_url the part "
                                f"before /chat/completions (often ending in /v1){served}?")
        return RemoteFailed(f"{self.endpoint} answered {status}: {message}")


def _is_transport_error(exc: BaseException) -> bool:
    """httpx's own errors, which older SDKs let through while a stream is read."""
    return type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "h11") and isinstance(exc, Exception)
