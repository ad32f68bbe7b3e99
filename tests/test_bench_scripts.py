"""The benchmark scripts run end to end (a smoke run; figures are printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import REPO


def test_bench_latency_runs_both_topologies(tmp_path: Path) -> None:
    out = tmp_path / "latency.json"
    result = subprocess.run(
        [sys.executable, "scripts/bench_latency.py", "--sessions", "2", "--turns", "1", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "in-process / hops (p50 ratio)" in result.stdout
    runs = json.loads(out.read_text())
    assert [r.get("topology") for r in runs[:2]] == ["in-process", "hops"]
    for run in runs[:2]:
        assert run["figures"]["tts_start_ms"]["n"] == 2
        assert run["figures"]["barge_in_ms"]["n"] == 2
