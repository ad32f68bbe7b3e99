"""How a chat becomes prompt token ids, and generated tokens become visible text.

gpt-oss speaks harmony: `HarmonyFormat` renders system (reasoning effort), developer
(instructions: every system/developer message of the chat) and user/assistant messages with
openai-harmony, and parses the generated tokens with its streaming parser. Only the `final`
channel is returned; `analysis` (the model's reasoning) is never spoken or shown, only logged at
debug level. Other models use their tokenizer's chat template (`TemplateFormat`), and vLLM's
own incremental detokenizer gives the text. The format follows the model's config.json."""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from monolith.providers.llm import ChatMessage

log = logging.getLogger(__name__)


def is_harmony_model(model_path: Path) -> bool:
    try:
        config = json.loads((model_path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return config.get("model_type") == "gpt_oss" or "GptOssForCausalLM" in config.get("architectures", [])


class OutputDecoder:
    """Per request: generated tokens (and vLLM's delta text) -> the text the user may see."""

    def feed(self, token_ids: Sequence[int], text: str) -> str:
        raise NotImplementedError

    def finish(self) -> None:
        """The request ended: log what was hidden."""


class ChatFormat:
    harmony: bool = False

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str) -> list[int]:
        raise NotImplementedError

    def stop_token_ids(self) -> list[int]:
        return []

    def decoder(self, request_id: str) -> OutputDecoder:
        raise NotImplementedError


class _TemplateDecoder(OutputDecoder):
    def feed(self, token_ids: Sequence[int], text: str) -> str:
        return text


class TemplateFormat(ChatFormat):
    def __init__(self, model_path: Path) -> None:
        from transformers import AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(str(model_path), local_files_only=True)
        if not getattr(self.tokenizer, "chat_template", None):
            raise ValueError(f"{model_path}: the tokenizer has no chat template")

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str) -> list[int]:
        chat = [{"role": "system" if m.role == "developer" else m.role, "content": m.content} for m in messages]
        ids = self.tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=True)
        if isinstance(ids, dict) or hasattr(ids, "input_ids"):  # BatchEncoding in newer transformers
            ids = ids["input_ids"]
        return [int(i) for i in ids]

    def decoder(self, request_id: str) -> OutputDecoder:
        return _TemplateDecoder()


class _HarmonyDecoder(OutputDecoder):
    def __init__(self, encoding: Any, request_id: str) -> None:
        from openai_harmony import Role, StreamableParser

        self.parser = StreamableParser(encoding, role=Role.ASSISTANT)
        self.request_id = request_id
        self.hidden: dict[str, str] = {}

    def feed(self, token_ids: Sequence[int], text: str) -> str:
        visible = []
        for token in token_ids:
            self.parser.process(token)
            delta = self.parser.last_content_delta
            if not delta:
                continue
            channel = self.parser.current_channel or "final"
            if channel == "final":
                visible.append(delta)
            else:
                self.hidden[channel] = self.hidden.get(channel, "") + delta
        return "".join(visible)

    def finish(self) -> None:
        for channel, text in self.hidden.items():
            log.debug("gpt-oss %s channel (not spoken)", channel, extra={"engine_request_id": self.request_id, "text": text})


class HarmonyFormat(ChatFormat):
    harmony = True

    def __init__(self) -> None:
        from openai_harmony import HarmonyEncodingName, load_harmony_encoding

        self.encoding = load_harmony_encoding(HarmonyEncodingName.HARMONY_GPT_OSS)

    def render(self, messages: Sequence[ChatMessage], reasoning_effort: str) -> list[int]:
        from openai_harmony import (
            Conversation,
            DeveloperContent,
            Message,
            ReasoningEffort,
            Role,
            SystemContent,
        )

        effort = {"low": ReasoningEffort.LOW, "medium": ReasoningEffort.MEDIUM, "high": ReasoningEffort.HIGH}[reasoning_effort]
        harmony_messages = [Message.from_role_and_content(Role.SYSTEM, SystemContent.new().with_reasoning_effort(effort))]
        instructions = "\n\n".join(m.text for m in messages if m.role in ("system", "developer"))
        if instructions:
            harmony_messages.append(
                Message.from_role_and_content(Role.DEVELOPER, DeveloperContent.new().with_instructions(instructions))
            )
        for m in messages:
            if m.role == "user":
                harmony_messages.append(Message.from_role_and_content(Role.USER, m.text))
            elif m.role == "assistant":
                harmony_messages.append(Message.from_role_and_content(Role.ASSISTANT, m.text).with_channel("final"))
        conversation = Conversation.from_messages(harmony_messages)
        return list(self.encoding.render_conversation_for_completion(conversation, Role.ASSISTANT))

    def stop_token_ids(self) -> list[int]:
        return list(self.encoding.stop_tokens_for_assistant_actions())

    def decoder(self, request_id: str) -> OutputDecoder:
        return _HarmonyDecoder(self.encoding, request_id)


def chat_format_for(model_path: Path) -> ChatFormat:
    return HarmonyFormat() if is_harmony_model(model_path) else TemplateFormat(model_path)
