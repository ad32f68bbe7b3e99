"""vLLM provider parts that need no engine: placement -> engine arguments, harmony rendering/parsing."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from monolith.config import load_settings
from monolith.providers.llm import ChatMessage, FunctionTool, ToolCall, collect_tool_calls
from monolith.providers.vllm_llm.chat_format import HarmonyFormat, is_harmony_model
from monolith.providers.vllm_llm.engine_args import engine_kwargs
from monolith.scheduler.placement import Inventory, build_plan

from ..conftest import REPO, vllm_config


def test_placement_pins_the_workers_to_the_llm_group() -> None:
    settings = load_settings(REPO / "config.toml", {})
    plan = build_plan(settings, Inventory.fake(8))
    llm = plan.assignments["llm"]
    kwargs = engine_kwargs(settings.llm, model_path="/w/llm", served_name="gpt-oss-120b", devices=llm.devices, skip_tokenizer=True)
    assert kwargs["device_ids"] == [0, 1, 2, 3, 4, 5]
    assert (kwargs["tensor_parallel_size"], kwargs["pipeline_parallel_size"], kwargs["data_parallel_size"]) == (2, 1, 3)
    assert kwargs["gpu_memory_utilization"] == 0.9 and kwargs["skip_tokenizer_init"] is True
    single = load_settings(REPO / "config.toml", {
        "MONOLITH_LLM__DEVICES": "[0]", "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1", "MONOLITH_STT__DEVICES": "[0]",
        "MONOLITH_TTS__DEVICES": "[0]", "MONOLITH_EMBEDDING__DEVICES": "[0]", "MONOLITH_PLACEMENT__ALLOW_SHARED": "true",
        "MONOLITH_LLM__ENGINE_ARGS": "{gpu_memory_utilization = 0.5, enable_prefix_caching = true}",
    })
    one = build_plan(single, Inventory.fake(1)).assignments["llm"]
    kwargs = engine_kwargs(single.llm, model_path="/w", served_name="m", devices=one.devices, skip_tokenizer=False)
    assert kwargs["device_ids"] == [0] and kwargs["gpu_memory_utilization"] == 0.5  # engine_args win
    assert kwargs["enable_prefix_caching"] is True
    cpu = engine_kwargs(vllm_config(Path("/w")), model_path="/w", served_name="m", devices=(), skip_tokenizer=False)
    assert "device_ids" not in cpu and "gpu_memory_utilization" not in cpu


def test_harmony_prompt_has_reasoning_effort_and_instructions() -> None:
    fmt = HarmonyFormat()
    ids = fmt.render([ChatMessage("system", "Answer in Japanese."), ChatMessage("user", "こんにちは")], "low")
    text = fmt.encoding.decode(ids)
    assert "<|start|>system<|message|>" in text and "Reasoning: low" in text
    assert "<|start|>developer<|message|># Instructions\n\nAnswer in Japanese." in text
    assert text.endswith("<|start|>user<|message|>こんにちは<|end|><|start|>assistant")


def test_harmony_analysis_is_never_returned_only_logged(caplog: pytest.LogCaptureFixture) -> None:
    from openai_harmony import Message, Role

    fmt = HarmonyFormat()
    tokens: list[int] = []
    for channel, content in (("analysis", "The user greets me. Think about it."), ("final", "こんにちは！")):
        tokens += fmt.encoding.render(Message.from_role_and_content(Role.ASSISTANT, content).with_channel(channel))
    tokens = tokens[2:]  # generation starts after the prompt's `<|start|>assistant`
    decoder = fmt.decoder("req-1")
    with caplog.at_level(logging.DEBUG, logger="monolith.providers.vllm_llm.chat_format"):
        visible = "".join(decoder.feed([t], "", finished=False).text for t in tokens)
        decoder.finish()
    assert visible == "こんにちは！"
    assert any(getattr(r, "text", "") == "The user greets me. Think about it." for r in caplog.records)


def test_the_format_follows_config_json(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"]}')
    assert is_harmony_model(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "llama", "architectures": ["LlamaForCausalLM"]}')
    assert not is_harmony_model(tmp_path)


def test_weights_check_needs_no_tokenizer_files_for_gpt_oss(tmp_path: Path) -> None:
    from monolith.providers.vllm_llm import VLLMProvider

    (tmp_path / "config.json").write_text('{"model_type": "gpt_oss"}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    assert VLLMProvider.missing_files(tmp_path) == []
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    assert VLLMProvider.missing_files(tmp_path) == ["tokenizer.json or tokenizer_config.json or tokenizer.model"]


WEATHER = FunctionTool("get_weather", "The weather in a city.", {"type": "object", "properties": {"city": {"type": "string"}}})


def test_harmony_renders_tools_calls_and_results_as_vllm_does() -> None:
    fmt = HarmonyFormat()
    chat = [ChatMessage("user", "Weather in Tokyo?"),
            ChatMessage("assistant", None, tool_calls=(ToolCall("call_1", "get_weather", '{"city": "Tokyo"}'),)),
            ChatMessage("tool", '{"temp_c": 21}', tool_call_id="call_1")]
    text = fmt.encoding.decode(fmt.render(chat, "low", [WEATHER]))
    assert "## functions" in text and "type get_weather = (_: {" in text  # harmony's TypeScript-like tool list
    assert '<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{"city": "Tokyo"}<|call|>' in text
    assert '<|start|>functions.get_weather<|channel|>commentary to=assistant<|message|>{"temp_c": 21}<|end|>' in text
    assert text.endswith("<|start|>assistant")
    assert "## functions" not in fmt.encoding.decode(fmt.render(chat[:1], "low"))


def _generated(fmt: HarmonyFormat, text: str) -> list[int]:
    return list(fmt.encoding.encode(text, allowed_special="all"))


@pytest.mark.parametrize("header", ["<|channel|>commentary to=functions.get_weather <|constrain|>json",
                                    " to=functions.get_weather<|channel|>commentary json",
                                    "<|channel|>final to=functions.get_weather <|constrain|>json"])
def test_harmony_function_calls_become_tool_call_deltas(header: str) -> None:
    fmt = HarmonyFormat()
    tokens = _generated(fmt, "<|channel|>analysis<|message|>Look it up.<|end|><|start|>assistant"
                        f"{header}<|message|>{{\"city\": \"Tokyo\"}}<|call|>")
    decoder = fmt.decoder("r", tool_calls=True)
    out = [decoder.feed([t], "", finished=False) for t in tokens]
    deltas = [d for o in out for d in o.tool_calls]
    assert deltas[0].name == "get_weather" and deltas[0].id and deltas[0].index == 0
    (call,) = collect_tool_calls(deltas)
    assert (call.name, call.arguments) == ("get_weather", '{"city": "Tokyo"}')
    assert "".join(o.text for o in out) == ""
    hidden = fmt.decoder("r", tool_calls=False)  # tool_choice none: a call is not surfaced
    assert not any(hidden.feed([t], "", finished=False).tool_calls for t in tokens)


def test_harmony_visible_tokens_are_the_final_channels() -> None:
    fmt = HarmonyFormat()
    tokens = _generated(fmt, "<|channel|>final<|message|>Hi there.<|return|>")
    decoded = fmt.decoder("r").feed(tokens, "", finished=True)
    assert decoded.text == "Hi there." and fmt.encoding.decode([tokens[i] for i in decoded.visible]) == "Hi there."
