"""Placement plans on fake inventories: an 8-GPU node, a 1-GPU box, CPU only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monolith.config import Settings
from monolith.scheduler.placement import GPU, Inventory, PlacementError, build_plan, detect_inventory, visible_gpus

from ..conftest import make_settings


def real(env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return make_settings(env, cpu_mock=False)


def test_default_layout_on_an_8_gpu_node() -> None:
    plan = build_plan(real(), Inventory.fake(8))
    llm, stt, tts, emb = (plan.assignments[n] for n in ("llm", "stt", "tts", "embedding"))
    assert llm.devices == (0, 1, 2, 3, 4, 5)
    assert (llm.tensor_parallel_size, llm.data_parallel_size) == (2, 3)
    assert stt.devices == (6,) and emb.devices == (6,) and tts.devices == (7,)
    # STT and embedding share GPU 6's executor thread; TTS has its own.
    assert stt.executor_key == emb.executor_key == "cuda:6"
    assert tts.executor_key == "cuda:7"
    table = plan.table()
    assert "cuda:0,1,2,3,4,5 (tensor parallel 2 x data parallel 3)" in table
    assert "GPUs (fake): 0:NVIDIA H100" in table


def test_device_that_does_not_exist() -> None:
    with pytest.raises(PlacementError) as err:
        build_plan(real(), Inventory.fake(4))
    assert any("GPU [4, 5] does not exist (this machine has GPUs [0, 1, 2, 3])" in p for p in err.value.problems)
    assert any(p.startswith("tts: GPU [7] does not exist") for p in err.value.problems)


def test_tensor_parallel_must_match_device_count() -> None:
    with pytest.raises(PlacementError, match=r"tensor_parallel_size 4 x pipeline_parallel_size 1 x data_parallel_size 1 "
                                             r"= 4 GPU\(s\), but devices names 6"):
        build_plan(real({"MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "4"}), Inventory.fake(8))


def test_llm_may_not_share_a_gpu_unless_allowed() -> None:
    env = {"MONOLITH_STT__DEVICES": "[5]"}
    with pytest.raises(PlacementError, match=r"llm shares GPU \[5\] with stt"):
        build_plan(real(env), Inventory.fake(8))
    plan = build_plan(real({**env, "MONOLITH_PLACEMENT__ALLOW_SHARED": "true"}), Inventory.fake(8))
    assert plan.assignments["stt"].devices == (5,)


def test_single_gpu_box_with_everything_shared() -> None:
    env = {
        "MONOLITH_LLM__DEVICES": "[0]", "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1",
        "MONOLITH_STT__DEVICES": "[0]", "MONOLITH_TTS__DEVICES": "[0]",
        "MONOLITH_EMBEDDING__DEVICES": "[0]", "MONOLITH_PLACEMENT__ALLOW_SHARED": "true",
    }
    plan = build_plan(real(env), Inventory.fake(1))
    assert {a.executor_key for a in plan.assignments.values()} == {"cuda:0"}


def test_gpu_provider_on_a_cpu_only_machine_is_rejected() -> None:
    with pytest.raises(PlacementError, match="this machine has no GPU"):
        build_plan(real(), Inventory())


def test_cpu_mock_needs_no_gpu() -> None:
    plan = build_plan(make_settings(cpu_mock=True), Inventory())
    assert all(a.is_mock and not a.devices for a in plan.assignments.values())
    assert "every provider is a mock" in plan.warnings[0]


def test_a_mock_provider_ignores_its_devices() -> None:
    plan = build_plan(real({"MONOLITH_TTS__PROVIDER": "mock", "MONOLITH_TTS__DEVICES": "[99]"}), Inventory.fake(8))
    assert plan.assignments["tts"].is_mock


def test_everything_on_cpu_is_a_valid_real_plan() -> None:
    env = {f"MONOLITH_{n}__DEVICES": '"cpu"' for n in ("LLM", "STT", "TTS", "EMBEDDING")}
    env["MONOLITH_LLM__TENSOR_PARALLEL_SIZE"] = "1"
    plan = build_plan(real(env), Inventory())
    assert {a.executor_key for a in plan.assignments.values()} == {"cpu:llm", "cpu:stt", "cpu:tts", "cpu:embedding"}


def test_duplicate_and_multi_device_single_providers() -> None:
    env = {"MONOLITH_LLM__DEVICES": "[0, 0, 1, 2, 3, 4]", "MONOLITH_TTS__DEVICES": "[6, 7]"}
    with pytest.raises(PlacementError) as err:
        build_plan(real(env), Inventory.fake(8))
    assert any("lists a GPU twice" in p for p in err.value.problems)
    assert any("tts: runs on one device" in p for p in err.value.problems)


def test_stt_cuda_runtime_needs_a_gpu_and_cpu_runtime_moves_it_off() -> None:
    with pytest.raises(PlacementError, match="onnx_provider is cuda but devices is cpu"):
        build_plan(real({"STT_PROVIDER_RUNTIME": "cuda", "MONOLITH_STT__DEVICES": '"cpu"'}), Inventory.fake(8))
    plan = build_plan(real({"STT_PROVIDER_RUNTIME": "cpu"}), Inventory.fake(8))
    assert plan.assignments["stt"].devices == ()


def test_detect_inventory_without_nvml_or_cuda_is_empty() -> None:
    inventory = detect_inventory(use_torch=False)
    assert inventory.gpus == () and inventory.source == "none"


def write_model(folder: Path, heads: int = 64, kv_heads: int = 8, layers: int = 36) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({
        "architectures": ["GptOssForCausalLM"], "model_type": "gpt_oss",
        "num_attention_heads": heads, "num_key_value_heads": kv_heads, "num_hidden_layers": layers,
    }))
    return folder


def llm_on(devices: list[int], tp: int, model: Path, *, dp: int = 0, pp: int = 1) -> Settings:
    return real({
        "MONOLITH_LLM__MODEL": json.dumps(str(model)), "MONOLITH_LLM__DEVICES": json.dumps(devices),
        "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": str(tp), "MONOLITH_LLM__PIPELINE_PARALLEL_SIZE": str(pp),
        "MONOLITH_LLM__DATA_PARALLEL_SIZE": str(dp), "MONOLITH_PLACEMENT__ALLOW_SHARED": "true",
    })


@pytest.mark.parametrize("tp", [1, 2, 4, 8])
def test_tensor_parallel_sizes_that_divide_64_heads_and_8_kv_heads_pass(tmp_path: Path, tp: int) -> None:
    model = write_model(tmp_path / "gpt-oss")
    plan = build_plan(llm_on(list(range(tp)), tp, model), Inventory.fake(8))
    assert plan.assignments["llm"].tensor_parallel_size == tp


@pytest.mark.parametrize("tp", [3, 6])
def test_tensor_parallel_sizes_vllm_would_refuse_are_rejected_with_the_numbers(tmp_path: Path, tp: int) -> None:
    model = write_model(tmp_path / "gpt-oss")
    with pytest.raises(PlacementError) as err:
        build_plan(llm_on(list(range(tp)), tp, model), Inventory.fake(8))
    [problem] = err.value.problems
    assert f"the model's 64 attention heads do not divide by tensor_parallel_size {tp}" in problem
    assert str(model / "config.json") in problem
    assert "valid tensor_parallel_size values: 1, 2, 4, 8, 16, 32, 64" in problem


def test_kv_heads_must_divide_tensor_parallel_or_be_divided_by_it(tmp_path: Path) -> None:
    model = write_model(tmp_path / "odd", heads=48, kv_heads=12)
    build_plan(llm_on([0, 1, 2, 3], 4, model), Inventory.fake(8))  # 12 % 4 == 0
    with pytest.raises(PlacementError, match="12 KV heads neither divide by tensor_parallel_size 8 nor divide it"):
        build_plan(llm_on(list(range(8)), 8, model, dp=1), Inventory.fake(8))  # 48 % 8 == 0, but 12 vs 8


def test_tensor_2_by_data_3_on_six_gpus_passes_and_reaches_the_engine(tmp_path: Path) -> None:
    model = write_model(tmp_path / "gpt-oss")
    plan = build_plan(llm_on([0, 1, 2, 3, 4, 5], 2, model, dp=3), Inventory.fake(8))
    llm = plan.assignments["llm"]
    assert (llm.tensor_parallel_size, llm.pipeline_parallel_size, llm.data_parallel_size) == (2, 1, 3)
    assert llm.describe() == "cuda:0,1,2,3,4,5 (tensor parallel 2 x data parallel 3)"


def test_the_layout_must_use_exactly_the_llm_devices(tmp_path: Path) -> None:
    model = write_model(tmp_path / "gpt-oss")
    with pytest.raises(PlacementError, match=r"tensor_parallel_size 2 x pipeline_parallel_size 1 x "
                                             r"data_parallel_size 2 = 4 GPU\(s\), but devices names 6"):
        build_plan(llm_on([0, 1, 2, 3, 4, 5], 2, model, dp=2), Inventory.fake(8))


def test_pipeline_stages_cannot_outnumber_layers(tmp_path: Path) -> None:
    model = write_model(tmp_path / "short", layers=2)
    with pytest.raises(PlacementError, match="pipeline_parallel_size 4 is more than the model's 2 layers"):
        build_plan(llm_on([0, 1, 2, 3], 1, model, pp=4), Inventory.fake(8))


def test_missing_or_broken_model_config_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(PlacementError, match=r"empty/config.json does not exist: the parallel layout cannot be checked"):
        build_plan(llm_on([0, 1], 2, tmp_path / "empty"), Inventory.fake(8))
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text("{not json")
    with pytest.raises(PlacementError, match=r"broken/config.json cannot be read as JSON"):
        build_plan(llm_on([0, 1], 2, tmp_path / "broken"), Inventory.fake(8))


def test_known_production_model_is_checked_without_its_weights() -> None:
    # The shipped config names weights/llm/gpt-oss-120b, which is not in the repository.
    plan = build_plan(real(), Inventory.fake(8))
    assert plan.assignments["llm"].data_parallel_size == 3
    with pytest.raises(PlacementError, match="64 attention heads do not divide by tensor_parallel_size 6"):
        build_plan(real({"LLM_TP_SIZE": "6"}), Inventory.fake(8))


def test_described_inventory_for_another_machine() -> None:
    node = Inventory.described("8x141GB")
    assert len(node.gpus) == 8 and node.gpus[7].memory_mib == 141 * 1024
    assert len(Inventory.described("4").gpus) == 4
    with pytest.raises(ValueError, match="expected a count such as 8"):
        Inventory.described("eight")


PHYSICAL = tuple(GPU(i, "H100", 81559, str(i), f"GPU-{i}aaa-bbbb") for i in range(8))


def test_cuda_visible_devices_renumbers_the_gpus_as_the_libraries_do() -> None:
    everything, warnings = visible_gpus(PHYSICAL, {})
    assert [g.index for g in everything] == list(range(8)) and not warnings
    gpus, warnings = visible_gpus(PHYSICAL, {"CUDA_VISIBLE_DEVICES": "6,7,2"})
    assert [(g.index, g.physical) for g in gpus] == [(0, "6"), (1, "7"), (2, "2")] and not warnings
    by_uuid, _ = visible_gpus(PHYSICAL, {"CUDA_VISIBLE_DEVICES": "GPU-5aaa,GPU-1aaa"})
    assert [(g.index, g.physical) for g in by_uuid] == [(0, "5"), (1, "1")]
    none, _ = visible_gpus(PHYSICAL, {"CUDA_VISIBLE_DEVICES": ""})
    assert none == ()


def test_cuda_stops_at_an_entry_it_cannot_resolve_and_says_so() -> None:
    gpus, warnings = visible_gpus(PHYSICAL, {"CUDA_VISIBLE_DEVICES": "1,9,2"})
    assert [g.physical for g in gpus] == ["1"]
    assert "entry '9' names no GPU" in warnings[0]
    _, order = visible_gpus(PHYSICAL, {"CUDA_DEVICE_ORDER": "FASTEST_FIRST"})
    assert "CUDA_DEVICE_ORDER=FASTEST_FIRST" in order[0]


def test_a_plan_on_visible_gpus_names_cuda_numbers() -> None:
    gpus, _ = visible_gpus(PHYSICAL, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
    env = {"MONOLITH_LLM__DEVICES": "[0, 1]", "MONOLITH_STT__DEVICES": "[2]", "MONOLITH_EMBEDDING__DEVICES": "[2]",
           "MONOLITH_TTS__DEVICES": "[3]"}
    plan = build_plan(real(env), Inventory(gpus, source="nvml"))
    assert plan.assignments["tts"].devices == (3,)
    assert "3:H100 (physical 7)" in plan.table()
    with pytest.raises(PlacementError, match=r"tts: GPU \[7\] does not exist \(this machine has GPUs \[0, 1, 2, 3\]\)"):
        build_plan(real(), Inventory(gpus, source="nvml"))


REMOTE = {"MONOLITH_LLM__BACKEND": '"remote"', "MONOLITH_LLM__REMOTE__BASE_URL": '"http://vllm-router:8000/v1"'}


def test_a_remote_llm_takes_no_gpu_and_its_layout_is_not_checked() -> None:
    # tensor parallel 6 would be refused for gpt-oss, and GPUs 0-5 are not here: neither matters
    env = {**REMOTE, "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "6", "MONOLITH_LLM__DEVICES": "[0, 1, 2, 3, 4, 5]"}
    env |= {f"MONOLITH_{n}__DEVICES": '"cpu"' for n in ("STT", "TTS", "EMBEDDING")}
    plan = build_plan(real(env), Inventory())
    llm = plan.assignments["llm"]
    assert (llm.backend, llm.devices, llm.is_remote, llm.describe()) == ("remote", (), True, "http://vllm-router:8000/v1")
    row = next(line for line in plan.table().splitlines() if line.startswith("llm"))
    assert row.split() == ["llm", "remote", "http://vllm-router:8000/v1", "-"]
    assert plan.warnings == []


def test_a_remote_llm_leaves_its_old_gpus_to_the_others() -> None:
    plan = build_plan(real({**REMOTE, "MONOLITH_TTS__DEVICES": "[0]"}), Inventory.fake(8))  # no allow_shared needed
    assert plan.assignments["tts"].devices == (0,) and plan.assignments["llm"].devices == ()


def test_cpu_mock_or_a_mock_provider_overrides_a_remote_backend() -> None:
    assert build_plan(make_settings(REMOTE, cpu_mock=True), Inventory()).assignments["llm"].is_mock
    plan = build_plan(real({**REMOTE, "MONOLITH_LLM__PROVIDER": '"mock"'}), Inventory.fake(8))
    assert plan.assignments["llm"].is_mock and not plan.assignments["llm"].is_remote
