"""vLLM's async engine in-process (its engine core runs in a child process vLLM starts; no
network hop). Streaming deltas, real abort on cancel, harmony for gpt-oss; tools, structured
outputs and logprobs through vLLM's own request model and parsers (vllm_llm/requests.py)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from monolith.config import LLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.base import Capabilities, EngineSpec, import_names
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.vllm_llm.chat_format import ChatFormat, chat_format_for, has_tokenizer, is_harmony_model
from monolith.providers.vllm_llm.engine_args import engine_kwargs
from monolith.providers.vllm_llm.requests import Prepared, RequestBuilder, invalid

log = logging.getLogger(__name__)


def _process_tree_rss_mb() -> float:
    import psutil

    me = psutil.Process()
    total = me.memory_info().rss
    for child in me.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return round(float(total) / 2**20, 1)


class VLLMProvider(LLMProvider):
    backend = "vllm"
    capabilities = Capabilities(tool_calls=True, structured_output=True, logprobs=True)
    required_files = (("config.json",), ("*.safetensors", "*.bin", "*.pt"),
                      ("tokenizer.json", "tokenizer_config.json", "tokenizer.model"))

    @classmethod
    def required_groups(cls, folder: Path) -> tuple[tuple[str, ...], ...]:
        if is_harmony_model(folder):  # gpt-oss: openai-harmony carries the tokenizer
            return cls.required_files[:2]
        return cls.required_files

    def __init__(self, config: LLMConfig, spec: EngineSpec) -> None:
        super().__init__(model_id=spec.model_id, model_path=spec.model_path, runner=spec.runner)
        self.config = config
        self.devices = spec.devices
        self.engine: Any = None
        self.format: ChatFormat | None = None
        self.requests: RequestBuilder | None = None
        self.engine_kwargs: dict[str, Any] = {}
        # The last engine request ids aborted because their consumer went away (capped: a record, not a log).
        self.aborted: deque[str] = deque(maxlen=256)
        self._ids = itertools.count(1)

    def import_libraries(self) -> None:
        import_names("vllm", "SamplingParams")
        import_names("vllm.engine.arg_utils", "AsyncEngineArgs")
        import_names("vllm.v1.engine.async_llm", "AsyncLLM")
        import_names("vllm.sampling_params", "RequestOutputKind")
        import_names("vllm.parser", "ParserManager")
        import_names("vllm.entrypoints.openai.chat_completion.protocol", "ChatCompletionRequest")
        if is_harmony_model(Path(self.model_path)):
            import_names("openai_harmony", "load_harmony_encoding", "StreamableParser", "Conversation")
        else:
            import_names("transformers", "AutoTokenizer")

    async def load(self) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(self.ensure_imported)
        self.format = fmt = await asyncio.to_thread(chat_format_for, Path(self.model_path))
        skip_tokenizer = fmt.harmony and not has_tokenizer(Path(self.model_path))
        self.engine_kwargs = engine_kwargs(
            self.config, model_path=self.model_path, served_name=self.model_id, devices=self.devices,
            skip_tokenizer=skip_tokenizer,
        )
        self.requests = await asyncio.to_thread(
            RequestBuilder, self.config, fmt, tokenizer=getattr(fmt, "tokenizer", None), served_name=self.model_id,
            guided=not skip_tokenizer)
        # from_engine_args blocks until the engine core process is up (seconds; minutes for a
        # big model): a worker thread, so /health and /ready keep answering meanwhile.
        self.engine = await asyncio.to_thread(self._create_engine)
        log.info(
            "llm engine started",
            extra={"model": self.model_path, "harmony": self.format.harmony, "devices": list(self.devices),
                   "load_s": round(time.perf_counter() - start, 2), "rss_mb": _process_tree_rss_mb()},
        )

    def _create_engine(self) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(AsyncEngineArgs(**self.engine_kwargs))

    async def warmup(self) -> None:
        # /ready says ready only after the engine has answered: one token.
        async for _ in self.stream_chat([ChatMessage("user", "Hi")], SamplingOptions(max_tokens=1), request_id="warmup"):
            pass

    async def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.to_thread(engine.shutdown)

    def running_requests(self) -> int:
        return int(self.engine.get_num_unfinished_requests()) if self.engine is not None else 0

    def health_problem(self) -> str | None:
        # vLLM marks the engine errored when its engine-core process dies (its client watches it).
        if self.engine is not None and self.engine.errored:
            return "died: vLLM's engine core process is gone (EngineDeadError)"
        return None

    def is_fatal(self, exc: BaseException) -> bool:
        return type(exc).__name__ == "EngineDeadError" or (self.engine is not None and bool(self.engine.errored))

    def _prepare(self, messages: Sequence[ChatMessage], options: SamplingOptions) -> tuple[list[int], Prepared]:
        """Prompt ids and vLLM's request for this chat (blocking: templates, grammars)."""
        assert self.format is not None and self.requests is not None
        effort = options.reasoning_effort or self.config.reasoning_effort
        # tool_choice "none": the tools stay out of the prompt (vLLM's --exclude-tools-when-tool-choice-none)
        prompt = self.format.render(messages, effort, options.tools if options.calls_tools else ())
        limit = self.config.max_model_len
        if len(prompt) + options.max_tokens > limit:
            raise InvalidRequest(
                f"the prompt is {len(prompt)} tokens; with max_tokens {options.max_tokens} that is more "
                f"than the model's context of {limit} tokens (llm.max_model_len)",
                code="context_length_exceeded", param="max_tokens",
            )
        return prompt, self.requests.prepare(messages, options, options.max_tokens)

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        if self.engine is None or self.format is None or self.requests is None:
            raise RuntimeError("the LLM engine is not running")
        if not messages:
            raise InvalidRequest("messages is empty", param="messages")
        prompt, prepared = await asyncio.to_thread(self._prepare, messages, options)
        engine_id = f"{request_id}-{next(self._ids)}"  # the session's id, unique per engine call
        decoder = self.requests.decoder(prepared, options, engine_id, prompt)
        finished = False
        completion = 0
        called = False
        outputs = self.engine.generate({"prompt_token_ids": prompt}, prepared.params, request_id=engine_id)
        try:
            async for out in _client_errors(outputs):
                result = out.outputs[0]
                completion += len(result.token_ids)
                decoded = decoder.feed(result.token_ids, result.text, finished=out.finished)
                called = called or bool(decoded.tool_calls)
                logprobs = (self.requests.token_logprobs(result.token_ids, result.logprobs, decoded.visible,
                                                         options.top_logprobs) if options.logprobs else ())
                if out.finished:
                    finished = True
                    reason = result.finish_reason or "stop"
                    yield LLMChunk(decoded.text, finish_reason="tool_calls" if called and reason == "stop" else reason,
                                   prompt_tokens=len(prompt), completion_tokens=completion,
                                   tool_calls=tuple(decoded.tool_calls), logprobs=logprobs)
                elif decoded.text or decoded.tool_calls or logprobs:
                    yield LLMChunk(decoded.text, tool_calls=tuple(decoded.tool_calls), logprobs=logprobs)
        finally:
            decoder.finish()
            if not finished:
                # The consumer went away (barge-in, disconnect, cancel): free the engine's slot now.
                self.aborted.append(engine_id)
                if self.engine is not None and not self.engine.errored:  # a dead engine has nothing to abort
                    await asyncio.shield(self.engine.abort(engine_id))


async def _client_errors(outputs: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """The engine's outputs; vLLM refusing the request before any (a grammar it cannot compile, a
    schema it does not support) is the client's 400, not a failure of the engine."""
    first = True
    try:
        async for out in outputs:
            first = False
            yield out
    except Exception as exc:
        error = invalid(exc) if first else None
        if error is None:
            raise
        raise error from exc
    finally:
        await outputs.aclose()  # type: ignore[attr-defined]
