"""scripts/make_tiny_weights.py writes the weights layout and a config that validates and serves."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from monolith.config import load_settings
from monolith.scheduler.placement import Inventory, build_plan

from .conftest import REPO


def test_writes_layout_and_a_config_that_passes_check(tmp_path: Path) -> None:
    out = tmp_path / "tiny"
    result = subprocess.run(
        [sys.executable, "scripts/make_tiny_weights.py", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr
    assert all((out / name).is_dir() for name in ("llm", "stt", "tts", "embedding"))
    settings = load_settings(out / "config.toml", {})
    plan = build_plan(settings, Inventory())  # CPU only: the tiny config must not ask for GPUs
    assert all(not a.devices for a in plan.assignments.values())
    check = subprocess.run(
        [sys.executable, "-m", "monolith", "--config", str(out / "config.toml"), "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    for name in ("llm", "stt", "tts", "embedding"):
        assert f"weights: {name}: " in check.stdout
