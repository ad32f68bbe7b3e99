"""`[llm]` config + the placement plan -> vLLM's AsyncEngineArgs keyword arguments.

Placement: vLLM starts its engine core and tensor-parallel workers as child processes. vLLM
0.32's `device_ids` engine argument maps worker ranks to physical GPUs (composed with any
CUDA_VISIBLE_DEVICES the process has), so the LLM's workers land exactly on its group while the
rest of monolith keeps every GPU in view. This was read in vLLM's source
(`EngineArgs._resolve_device_ids` -> `parallel_config.assigned_physical_gpu_ids`, honoured by
the engine core and worker start-up); docs/gpu-checks.md records what a GPU run showed."""

from __future__ import annotations

from typing import Any

from monolith.config import LLMConfig


def engine_kwargs(
    config: LLMConfig, *, model_path: str, served_name: str, devices: tuple[int, ...], skip_tokenizer: bool
) -> dict[str, Any]:
    tp, pp, dp = config.layout(len(devices)) if devices else (1, 1, 1)
    kwargs: dict[str, Any] = {
        "model": model_path,
        "served_model_name": served_name,
        "tensor_parallel_size": tp, "pipeline_parallel_size": pp, "data_parallel_size": dp,
        "max_model_len": config.max_model_len,
        "dtype": config.dtype,
        "max_num_seqs": config.max_num_seqs,
        # monolith renders gpt-oss prompts and parses its output with openai-harmony (token
        # ids both ways); vLLM needs the tokenizer only for structured outputs (xgrammar), so a
        # gpt-oss folder without tokenizer.json is served without one.
        "skip_tokenizer_init": skip_tokenizer,
    }
    if devices:
        kwargs["gpu_memory_utilization"] = config.gpu_memory_utilization
        kwargs["device_ids"] = list(devices)
    # Anything vLLM offers, passed through as given; the user's table wins.
    kwargs.update(config.engine_args)
    return kwargs
