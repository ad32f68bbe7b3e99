"""vLLM's async engine in-process (its engine core runs in a child process vLLM starts; no
network hop). Streaming deltas, real abort on cancel, harmony for gpt-oss."""

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
from monolith.providers.base import EngineSpec, import_names
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.vllm_llm.chat_format import ChatFormat, chat_format_for, is_harmony_model
from monolith.providers.vllm_llm.engine_args import engine_kwargs

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
        self.engine_kwargs: dict[str, Any] = {}
        # The last engine request ids aborted because their consumer went away (capped: a record, not a log).
        self.aborted: deque[str] = deque(maxlen=256)
        self._ids = itertools.count(1)

    def import_libraries(self) -> None:
        import_names("vllm", "SamplingParams")
        import_names("vllm.engine.arg_utils", "AsyncEngineArgs")
        import_names("vllm.v1.engine.async_llm", "AsyncLLM")
        import_names("vllm.sampling_params", "RequestOutputKind")
        if is_harmony_model(Path(self.model_path)):
            import_names("openai_harmony", "load_harmony_encoding", "StreamableParser", "Conversation")
        else:
            import_names("transformers", "AutoTokenizer")

    async def load(self) -> None:
        start = time.perf_counter()
        await asyncio.to_thread(self.ensure_imported)
        self.format = await asyncio.to_thread(chat_format_for, Path(self.model_path))
        self.engine_kwargs = engine_kwargs(
            self.config, model_path=self.model_path, served_name=self.model_id, devices=self.devices,
            harmony=self.format.harmony,
        )
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

    def _sampling(self, options: SamplingOptions, prompt_len: int) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        assert self.format is not None
        limit = self.config.max_model_len
        if prompt_len + options.max_tokens > limit:
            raise InvalidRequest(
                f"the prompt is {prompt_len} tokens; with max_tokens {options.max_tokens} that is more "
                f"than the model's context of {limit} tokens (llm.max_model_len)",
                code="context_length_exceeded", param="max_tokens",
            )
        harmony = self.format.harmony
        return SamplingParams(
            max_tokens=options.max_tokens, temperature=options.temperature, top_p=options.top_p,
            stop=list(options.stop) or None, seed=options.seed, output_kind=RequestOutputKind.DELTA,
            ignore_eos=options.ignore_eos,
            stop_token_ids=self.format.stop_token_ids() or None,
            # harmony parses token ids itself; special tokens carry its channels
            detokenize=not harmony, skip_special_tokens=not harmony,
        )

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        if self.engine is None or self.format is None:
            raise RuntimeError("the LLM engine is not running")
        if not messages:
            raise InvalidRequest("messages is empty", param="messages")
        effort = options.reasoning_effort or self.config.reasoning_effort
        prompt = await asyncio.to_thread(self.format.render, messages, effort)
        params = self._sampling(options, len(prompt))
        engine_id = f"{request_id}-{next(self._ids)}"  # the session's id, unique per engine call
        decoder = self.format.decoder(engine_id)
        finished = False
        completion = 0
        try:
            async for out in self.engine.generate({"prompt_token_ids": prompt}, params, request_id=engine_id):
                result = out.outputs[0]
                completion += len(result.token_ids)
                text = decoder.feed(result.token_ids, result.text)
                if out.finished:
                    finished = True
                    yield LLMChunk(text, finish_reason=result.finish_reason or "stop",
                                   prompt_tokens=len(prompt), completion_tokens=completion)
                elif text:
                    yield LLMChunk(text)
        finally:
            decoder.finish()
            if not finished:
                # The consumer went away (barge-in, disconnect, cancel): free the engine's slot now.
                self.aborted.append(engine_id)
                if self.engine is not None and not self.engine.errored:  # a dead engine has nothing to abort
                    await asyncio.shield(self.engine.abort(engine_id))
