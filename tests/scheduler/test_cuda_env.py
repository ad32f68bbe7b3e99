"""The driver floor: a CUDA 13 torch on an older driver is refused before anything loads."""

from __future__ import annotations

import pytest

from monolith.scheduler.cuda_env import driver_problem, torch_cuda_version
from monolith.scheduler.placement import GPU, Inventory, PlacementError, build_plan

from ..conftest import make_settings


def test_cuda_13_needs_driver_580() -> None:
    problem = driver_problem("550.54.15", "13.0")
    assert problem is not None
    assert "driver is 550.54.15" in problem and "CUDA 13.0" in problem and "580 or newer" in problem
    assert driver_problem("580.65.06", "13.0") is None
    assert driver_problem("575.51.03", "12.8") is None
    assert driver_problem("520.61.05", "12.1") is not None


def test_unknown_driver_or_cuda_is_not_a_problem() -> None:
    assert driver_problem("", "13.0") is None
    assert driver_problem("550.54.15", None) is None


def test_torch_cuda_version_is_read_without_importing_torch() -> None:
    import sys

    had_torch = "torch" in sys.modules
    version = torch_cuda_version()
    assert version is None  # the CPU build installed here says `cuda = None`
    assert ("torch" in sys.modules) == had_torch


def test_an_old_driver_stops_a_gpu_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    import monolith.scheduler.placement as placement

    monkeypatch.setattr(placement, "torch_cuda_version", lambda: "13.0")
    old = Inventory(tuple(GPU(i, "H100", 81559, str(i)) for i in range(8)), source="nvml", driver="535.104.05")
    with pytest.raises(PlacementError, match="driver is 535.104.05, but this install's torch is built for CUDA 13.0"):
        build_plan(make_settings(cpu_mock=False), old)
    build_plan(make_settings(cpu_mock=True), old)  # mocks touch no GPU: nothing to check
