"""The tiny config as a user starts it: `python -m monolith --config DIR/config.toml`, in an
environment with nothing set, serves every engine for real, every time it starts."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .test_cli import free_port

STARTS = 3  # the import race (issue: providers load in parallel) struck some starts, not all


def clean_environment() -> dict[str, str]:
    """What a fresh shell has: no VLLM_*, HF_*, MONOLITH_* or test variables."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/root"), "LANG": "C.UTF-8"}


def start_and_read_health(config: Path, cwd: Path) -> tuple[dict[str, object], int, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monolith", "--config", str(config), "--host", "127.0.0.1", "--port", str(port)],
        cwd=cwd, env=clean_environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 240
        status = 0
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/ready", timeout=2).status_code
                if status == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.5)
        health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=60)
    return health, status, out


@pytest.mark.slow
def test_tiny_config_serves_every_engine_for_real_in_a_clean_environment(tiny_root: Path, tmp_path: Path) -> None:
    for start in range(STARTS):
        health, ready_status, log = start_and_read_health(tiny_root / "config.toml", tmp_path)
        providers = health["providers"]
        assert isinstance(providers, dict)
        on_mock = {name: p["last_error"] for name, p in providers.items() if p["is_mock"]}
        assert not on_mock, f"start {start + 1}: providers on their mock: {on_mock}\n{log[-3000:]}"
        assert ready_status == 200, log[-3000:]
        # one start-up line per provider: what loaded, where, how fast
        for name, backend in (("llm", "vllm"), ("stt", "sherpa-onnx"), ("tts", "fish-speech"),
                              ("embedding", "sentence-transformers")):
            assert re.search(rf"{name}: {backend} loaded \S+ on cpu in [0-9.]+ s", log), log[-3000:]
