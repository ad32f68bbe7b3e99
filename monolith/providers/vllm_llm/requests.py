"""A chat request through vLLM's own OpenAI machinery: its request model, its parsers, its
sampling parameters, so tools and structured outputs behave as on vLLM's server.

- The chat and options become vLLM's `ChatCompletionRequest` (its validation included).
- Tools: vLLM's `Parser` for the model (`ParserManager`): the tool-call parser named by
  `[llm] tool_call_parser` ("hermes", "llama3_json"...) for a chat-template model; for gpt-oss
  harmony's own (its output is read by chat_format.HarmonyDecoder). `adjust_request` is where
  vLLM forces a call: for `tool_choice` "required" or a named function it turns the tools into
  structured-output constraints (a structural tag: the model's call syntax around each tool's
  JSON schema; harmony's channels for gpt-oss), as vLLM's server does.
- `response_format` json_object / json_schema becomes vLLM's `StructuredOutputsParams` (through
  `to_sampling_params`; for gpt-oss a structural tag that puts the JSON in the final channel).
- logprobs: vLLM's per-token `Logprob`s, in OpenAI's terms (see `token_logprobs`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from monolith.config import LLMConfig
from monolith.errors import InvalidRequest
from monolith.providers.llm import ChatMessage, SamplingOptions, TokenLogprob
from monolith.providers.openai_chat import (
    clamp_logprob,
    message_dict,
    request_extras,
)
from monolith.providers.vllm_llm.chat_format import ChatFormat, OutputDecoder


def invalid(exc: BaseException) -> InvalidRequest | None:
    """vLLM's verdict that a request is bad (its validation, pydantic's) as the client's 400."""
    from pydantic import ValidationError
    from vllm.exceptions import VLLMClientError

    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or None
        return InvalidRequest(f"{where}: {first['msg']}" if where else first["msg"], param=where)
    if isinstance(exc, VLLMClientError):
        return InvalidRequest(str(exc), param=getattr(exc, "parameter", None))
    return None


@dataclass
class Prepared:
    request: Any  # vLLM's ChatCompletionRequest, adjusted by the parser
    params: Any  # vLLM's SamplingParams
    parser: Any  # vLLM's Parser, or None


class RequestBuilder:
    """Per engine: the parser class for the model; per request: what `generate` needs."""

    def __init__(self, config: LLMConfig, fmt: ChatFormat, *, tokenizer: Any, served_name: str, guided: bool) -> None:
        """`tokenizer`: the chat template's (None for gpt-oss); `guided`: the engine has a
        tokenizer, which structured outputs need (a gpt-oss folder may come without one)."""
        from vllm.parser import ParserManager

        self.config, self.format, self.tokenizer, self.served_name = config, fmt, tokenizer, served_name
        self.guided = guided
        name = "openai" if fmt.harmony else (config.tool_call_parser or None)
        try:
            self.parser_cls: Any = ParserManager.get_parser(
                tool_parser_name=name, enable_auto_tools=True, model_name=served_name, is_harmony=fmt.harmony,
                tool_strict_level=config.tool_strict_level, tokenizer=None if fmt.harmony else tokenizer)
        except (TypeError, KeyError, ValueError) as exc:
            raise ValueError(f"llm.tool_call_parser = {config.tool_call_parser!r}: {exc}") from exc

    def prepare(self, messages: Sequence[ChatMessage], options: SamplingOptions, max_tokens: int) -> Prepared:
        from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
        from vllm.sampling_params import RequestOutputKind

        if options.calls_tools and self.parser_cls is None:
            raise InvalidRequest("tool calling with this model needs vLLM's tool-call parser for its output: set "
                                 "llm.tool_call_parser (e.g. \"hermes\", \"llama3_json\", \"mistral\")",
                                 code="tools_not_configured", param="tools")
        structured = options.response_format is not None or (options.calls_tools and options.tool_choice != "auto")
        if structured and not self.guided:
            raise InvalidRequest("structured outputs (response_format, or tool_choice required / a named function) "
                                 "need the model's tokenizer, and this gpt-oss folder has no tokenizer.json",
                                 code="unsupported_value", param="response_format")
        try:
            request = ChatCompletionRequest.model_validate(self._body(messages, options))
            parser = self._parser(request, options)
            if parser is not None:
                request = parser.adjust_request(request)
            params = request.to_sampling_params(max_tokens, {})
        except Exception as exc:
            raise (invalid(exc) or exc) from exc
        params.output_kind = RequestOutputKind.DELTA
        if self.format.harmony:
            params.detokenize = False  # harmony parses token ids itself
        return Prepared(request, params, parser)

    def _body(self, messages: Sequence[ChatMessage], options: SamplingOptions) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.served_name, "messages": [message_dict(m, developer_as_system=False) for m in messages],
            "max_tokens": options.max_tokens, "temperature": options.temperature, "top_p": options.top_p,
            "stop": list(options.stop), "seed": options.seed, "ignore_eos": options.ignore_eos, "stream": True,
        }
        if self.format.harmony:  # its stops (<|return|>, <|call|>) known to the grammar too; its channels kept
            body |= {"stop_token_ids": self.format.stop_token_ids(), "skip_special_tokens": False}
        return body | request_extras(options)

    def _parser(self, request: Any, options: SamplingOptions) -> Any:
        """The parser when it has work: a template model's tool calls; gpt-oss's constraints."""
        if self.parser_cls is None:
            return None
        if self.format.harmony and (options.tools or options.response_format is not None):
            return self.parser_cls(None, request.tools)
        if not self.format.harmony and options.calls_tools:
            return self.parser_cls(self.tokenizer, request.tools)
        return None

    def decoder(self, prepared: Prepared, options: SamplingOptions, request_id: str, prompt: list[int]) -> OutputDecoder:
        return self.format.decoder(request_id, tool_calls=options.calls_tools, parser=prepared.parser,
                                   request=prepared.request, prompt=prompt)

    def token_logprobs(self, token_ids: Sequence[int], steps: Any, visible: Sequence[int], top_n: int) -> tuple[TokenLogprob, ...]:
        """OpenAI's logprobs for the `visible` tokens: each token's, and the `top_n` most likely at
        its position (by vLLM's rank; -inf, a token a grammar ruled out, as -9999)."""
        if steps is None:
            return ()
        out = []
        for i in visible:
            step: dict[int, Any] = steps[i] or {}
            token = token_ids[i]
            chosen = step.get(token)
            top = sorted(((tid, lp) for tid, lp in step.items() if lp.rank is not None and lp.rank <= top_n),
                         key=lambda item: item[1].rank)
            alternatives = tuple(self._logprob(tid, lp) for tid, lp in top)
            out.append(self._logprob(token, chosen, alternatives))
        return tuple(out)

    def _logprob(self, token: int, logprob: Any, top: tuple[TokenLogprob, ...] = ()) -> TokenLogprob:
        text = getattr(logprob, "decoded_token", None)
        if text is None:
            text = self.format.token_text(token)
        if text is None:
            text = str(self.tokenizer.decode([token])) if self.tokenizer is not None else f"token_id:{token}"
        value = clamp_logprob(logprob.logprob) if logprob is not None else 0.0
        return TokenLogprob(text, value, tuple(text.encode("utf-8", errors="replace")), top)
