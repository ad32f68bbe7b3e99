"""How a chat (and its tools) becomes prompt token ids, and generated tokens become visible text
and tool calls.

gpt-oss speaks harmony: `HarmonyFormat` renders system (reasoning effort), developer
(instructions: every system/developer message of the chat; the tools as harmony's function
tools) and user/assistant messages with openai-harmony; an assistant's tool call is a commentary
message to `functions.<name>` and a tool's result a message from `functions.<name>`, as vLLM's
own server renders them. Its streaming parser reads the output: the `final` channel is the text;
a message to `functions.<name>` (on any channel) is a tool call; the rest (`analysis`, the
model's reasoning) is never spoken or shown, only logged at debug level. Other models use their
tokenizer's chat template, given the tools (`TemplateFormat`), and vLLM's incremental
detokenizer gives the text; their tool calls are read by vLLM's tool-call parser
(vllm_llm/requests.py). The format follows the model's config.json."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monolith.providers.llm import ChatMessage, FunctionTool, ToolCallDelta
from monolith.providers.openai_chat import message_dict, tool_call_deltas, tool_dict

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model")


def is_harmony_model(model_path: Path) -> bool:
    try:
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config.get("model_type") == "gpt_oss" or "GptOssForCausalLM" in config.get("architectures", [])


def has_tokenizer(model_path: Path) -> bool:
    return any((model_path / name).is_file() for name in TOKENIZER_FILES)


@dataclass
class Decoded:
    """What some generated tokens mean to the user: text, pieces of tool calls, and which of the
    tokens (indexes into the ones fed) made the text (their logprobs are reported)."""

    text: str = ""
    tool_calls: list[ToolCallDelta] = field(default_factory=list)
    visible: list[int] = field(default_factory=list)


class OutputDecoder:
    """Per request: generated tokens (and vLLM's delta text) -> what the user sees."""

    def feed(self, token_ids: Sequence[int], text: str, *, finished: bool) -> Decoded:
        raise NotImplementedError

    def finish(self) -> None:
        """The request ended: log what was hidden."""


class ChatFormat:
    harmony: bool = False

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str, tools: Sequence[FunctionTool] = ()) -> list[int]:
        raise NotImplementedError

    def stop_token_ids(self) -> list[int]:
        return []

    def token_text(self, token_id: int) -> str | None:
        """A token's text where vLLM does not detokenize (harmony); None: vLLM's own."""
        return None

    def decoder(self, request_id: str, *, tool_calls: bool = False, parser: Any = None, request: Any = None,
                prompt: list[int] | None = None) -> OutputDecoder:
        """`tool_calls`: the model may call tools; `parser`, `request`, `prompt`: vLLM's tool-call
        parser for a template model's output, and what it parses against."""
        raise NotImplementedError


class TemplateDecoder(OutputDecoder):
    """vLLM's text as it comes; with a tool parser (vLLM's `Parser`), its content and tool calls."""

    def __init__(self, parser: Any = None, request: Any = None, prompt: list[int] | None = None) -> None:
        self.parser, self.request, self.prompt = parser, request, prompt

    def feed(self, token_ids: Sequence[int], text: str, *, finished: bool) -> Decoded:
        everything = list(range(len(token_ids)))  # every token's logprob, as vLLM's server gives them
        if self.parser is None:
            return Decoded(text, visible=everything)
        delta = self.parser.parse_delta(text, list(token_ids), self.request, self.prompt, finished=finished)
        if delta is None:
            return Decoded(visible=everything)
        return Decoded(delta.content or "", list(tool_call_deltas(delta.tool_calls)), everything)


def _template_message(message: ChatMessage) -> dict[str, Any]:
    out = message_dict(message)
    for call in out.get("tool_calls", []):
        # Chat templates want a call's arguments as a mapping (as vLLM gives them).
        try:
            arguments = json.loads(call["function"]["arguments"] or "{}")
        except ValueError:
            arguments = {}
        call["function"]["arguments"] = arguments if isinstance(arguments, dict) else {}
    return out


class TemplateFormat(ChatFormat):
    def __init__(self, model_path: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{model_path}: the tokenizer has no chat template")

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str, tools: Sequence[FunctionTool] = ()) -> list[int]:
        chat = [_template_message(m) for m in messages]
        ids = self.tokenizer.apply_chat_template(chat, tools=[tool_dict(t) for t in tools] or None,
                                                 add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def decoder(self, request_id: str, *, tool_calls: bool = False, parser: Any = None, request: Any = None,
                prompt: list[int] | None = None) -> OutputDecoder:
        return TemplateDecoder(parser if tool_calls else None, request, prompt)


def _function_name(recipient: str | None) -> str | None:
    """`functions.get_weather` (with whatever an older harmony left after it) -> `get_weather`."""
    if not recipient or not recipient.startswith("functions."):
        return None
    name = recipient.removeprefix("functions.").split("<|", 1)[0].split()
    return name[0] if name else None


class HarmonyDecoder(OutputDecoder):
    def __init__(self, encoding: Any, request_id: str, *, tool_calls: bool = False) -> None:
        from openai_harmony import Role, StreamableParser

        self.parser = StreamableParser(encoding, role=Role.ASSISTANT)
        self.request_id = request_id
        self.tool_calls = tool_calls  # False: a call the model makes anyway is hidden (tool_choice none)
        self.hidden: dict[str, str] = {}
        self.calls = 0
        self.call_message = -1  # the harmony message the current call is

    def feed(self, token_ids: Sequence[int], text: str, *, finished: bool) -> Decoded:
        from openai_harmony import HarmonyError

        out = Decoded()
        for i, token in enumerate(token_ids):
            try:
                self.parser.process(token)
            except HarmonyError as exc:  # a malformed sequence: skip the token, as vLLM does
                log.debug("harmony could not parse token %s: %s", token, exc, extra={"engine_request_id": self.request_id})
                continue
            delta = self.parser.last_content_delta
            if not delta:
                continue
            channel = self.parser.current_channel or "final"
            name = _function_name(self.parser.current_recipient)
            if name is not None and self.tool_calls:
                self._call(out, name, delta)
            elif name is None and channel == "final":
                out.text += delta
                out.visible.append(i)
            else:
                key = f"{channel} to {name}" if name else channel
                self.hidden[key] = self.hidden.get(key, "") + delta
        return out

    def _call(self, out: Decoded, name: str, arguments: str) -> None:
        message = len(self.parser.messages)
        if message != self.call_message:  # a new call: its id and name first
            self.call_message = message
            self.calls += 1
            out.tool_calls.append(ToolCallDelta(self.calls - 1, id=f"call_{uuid.uuid4().hex[:24]}", name=name))
        out.tool_calls.append(ToolCallDelta(self.calls - 1, arguments=arguments))

    def finish(self) -> None:
        for channel, text in self.hidden.items():
            log.debug("gpt-oss %s channel (not spoken)", channel, extra={"engine_request_id": self.request_id, "text": text})


class HarmonyFormat(ChatFormat):
    harmony = True

    def __init__(self) -> None:
        from openai_harmony import HarmonyEncodingName, load_harmony_encoding

        self.encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str, tools: Sequence[FunctionTool] = ()) -> list[int]:
        from openai_harmony import (
            Conversation,
            DeveloperContent,
            Message,
            ReasoningEffort,
            Role,
            SystemContent,
            ToolDescription,
        )

        effort = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}[reasoning_effort]
        harmony_messages = [Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(effort))]
        instructions = "\n\n".join(m.text for m in messages if m.role in ("system", "developer"))
        if instructions or tools:
            developer = DeveloperContent.new()
            if instructions:
                developer = developer.with_instructions(instructions)
            if tools:
                developer = developer.with_function_tools([
                    ToolDescription.new(t.name, t.description, parameters=t.parameters) for t in tools])
            harmony_messages.append(Message.from_role_and_content(Role.DEVELOPER, developer))
        names = {c.id: c.name for m in messages for c in m.tool_calls}
        for m in messages:
            harmony_messages.extend(self._messages(m, names))
        conversation = Conversation.from_messages(harmony_messages)
        ids = list(self.encoding.render_conversation_for_completion(conversation, Role.ASSISTANT))
        return _legacy_tool_call_headers(ids) if names else ids

    @staticmethod
    def _messages(m: ChatMessage, names: dict[str, str]) -> list[Any]:
        from openai_harmony import Author, Message, Role

        if m.role == "user":
            return [Message.from_role_and_content(Role.USER, m.text)]
        if m.role == "tool":  # a function's result, back to the assistant
            author = Author.new(Role.TOOL, f"functions.{names.get(m.tool_call_id or '', '')}")
            return [Message.from_author_and_content(author, m.text).with_channel("commentary").with_recipient("assistant")]
        if m.role != "assistant":
            return []
        out = []
        if m.text:
            out.append(Message.from_role_and_content(Role.ASSISTANT, m.text).with_channel(
                "commentary" if m.tool_calls else "final"))
        out.extend(Message.from_role_and_content(Role.ASSISTANT, c.arguments).with_channel("commentary")
                   .with_recipient(f"functions.{c.name}").with_content_type("json") for c in m.tool_calls)
        return out

    def stop_token_ids(self) -> list[int]:
        return list(self.encoding.stop_tokens_for_assistant_actions())

    def token_text(self, token_id: int) -> str:
        return str(self.encoding.decode([token_id]))

    def decoder(self, request_id: str, *, tool_calls: bool = False, parser: Any = None, request: Any = None,
                prompt: list[int] | None = None) -> OutputDecoder:
        return HarmonyDecoder(self.encoding, request_id, tool_calls=tool_calls)


def _legacy_tool_call_headers(ids: list[int]) -> list[int]:
    """An earlier tool call in the header gpt-oss was trained on (vLLM's own fix: oss-harmony
    renders `<|channel|>commentary to=functions.x <|constrain|>json`, which gpt-oss may echo as a
    malformed header)."""
    try:
        from vllm.entrypoints.openai.parser.harmony_utils import _use_legacy_tool_call_headers
    except ImportError:  # another vLLM: harmony's own header
        return ids
    return list(_use_legacy_tool_call_headers(ids))


def chat_format_for(model_path: Path) -> ChatFormat:
    return HarmonyFormat() if is_harmony_model(model_path) else TemplateFormat(model_path)
