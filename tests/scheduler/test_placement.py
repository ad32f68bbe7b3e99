"""Placement plans on fake inventories: an 8-GPU node, a 1-GPU box, CPU only."""

from __future__ import annotations

import pytest

from monolith.scheduler.placement import Inventory, PlacementError, build_plan, detect_inventory

from ..conftest import make_settings


def real(env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return make_settings(env, cpu_mock=False)


def test_default_layout_on_an_8_gpu_node() -> None:
    plan = build_plan(real(), Inventory.fake(8))
    llm, stt, tts, emb = (plan.assignments[n] for n in ("llm", "stt", "tts", "embedding"))
    assert llm.devices == (0, 1, 2, 3, 4, 5) and llm.tensor_parallel_size == 6
    assert stt.devices == (6,) and emb.devices == (6,) and tts.devices == (7,)
    # STT and embedding share GPU 6's executor thread; TTS has its own.
    assert stt.executor_key == emb.executor_key == "cuda:6"
    assert tts.executor_key == "cuda:7"
    table = plan.table()
    assert "cuda:0,1,2,3,4,5 (tensor parallel 6)" in table
    assert "GPUs (fake): 0:NVIDIA H100" in table


def test_device_that_does_not_exist() -> None:
    with pytest.raises(PlacementError) as err:
        build_plan(real(), Inventory.fake(4))
    assert any("GPU [4, 5] does not exist (this machine has GPUs [0, 1, 2, 3])" in p for p in err.value.problems)
    assert any(p.startswith("tts: GPU [7] does not exist") for p in err.value.problems)


def test_tensor_parallel_must_match_device_count() -> None:
    with pytest.raises(PlacementError, match="tensor_parallel_size is 4 but devices names 6"):
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
