"""The real CLI as a user runs it: serve, become ready, stop cleanly on SIGTERM; --check; bad config."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "monolith", *args], cwd=REPO, capture_output=True, text=True,
        timeout=60, env={**os.environ, **(env or {})},
    )


@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_serves_until_ready_then_stops_cleanly_on_sigterm(host: str) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "monolith", "--cpu-mock", "--host", host, "--port", str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline = time.monotonic() + 30
        status = None
        while time.monotonic() < deadline:
            try:
                resp = httpx.get(f"http://127.0.0.1:{port}/ready", headers={"X-Request-ID": "cli-test"}, timeout=1)
                status = resp.json()["status"]
                if resp.status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert status == "degraded", "a --cpu-mock server is ready but degraded (mocks serve)"
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert lines, out
    assert all({"time", "level", "logger", "message", "request_id"} <= set(line) for line in lines)
    assert any(line["logger"].startswith("uvicorn") for line in lines), "uvicorn's logs are JSON too"
    access = [line for line in lines if line.get("path") == "/ready" and line["request_id"] == "cli-test"]
    assert access and access[-1]["status"] == 200
    assert any(line["message"] == "shut down" for line in lines)
    # reachable from other machines with no API key: said loudly, once; on loopback, not at all
    unguarded = [line for line in lines if line["message"].startswith("SERVING WITHOUT API KEYS ON")]
    assert len(unguarded) == (1 if host == "0.0.0.0" else 0)
    assert all(line["level"] == "warning" for line in unguarded)


def test_check_prints_the_plan_and_exits_0() -> None:
    result = run_cli("--cpu-mock", "--check")
    assert result.returncode == 0, result.stderr
    assert "provider" in result.stdout and "llm        mock" in result.stdout
    assert "weights: llm: mock, no weights needed" in result.stdout


def test_check_rejects_gpus_that_are_not_there() -> None:
    result = run_cli("--check")
    assert result.returncode == 2
    assert "llm: wants GPU [0, 1, 2, 3, 4, 5] but this machine has no GPU" in result.stderr


def test_check_reports_incomplete_weights(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        '[llm]\ndevices = "cpu"\ntensor_parallel_size = 1\nfallback = "none"\nmodel = "llm"\n'
        '[stt]\nprovider = "mock"\n[tts]\nprovider = "mock"\n[embedding]\nprovider = "mock"\n'
    )
    (tmp_path / "llm").mkdir()
    (tmp_path / "llm" / "config.json").write_text("{}")
    result = run_cli("--config", str(config), "--check")
    assert result.returncode == 2
    assert "llm: " in result.stdout and "incomplete (missing *.safetensors or *.bin or *.pt" in result.stdout


def test_bad_config_exits_2_naming_key_and_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[llm]\nmax_tokens = -5\n")
    result = run_cli("--config", str(config), "--cpu-mock")
    assert result.returncode == 2
    assert f"{config}: invalid value for `llm.max_tokens`" in result.stderr


def test_bad_env_override_exits_2_naming_the_variable() -> None:
    result = run_cli("--cpu-mock", "--check", env={"LLM_TP_SIZE": "many"})
    assert result.returncode == 2
    assert "environment variable LLM_TP_SIZE" in result.stderr


def test_the_shipped_layout_checks_out_for_an_8_gpu_node_from_a_laptop() -> None:
    result = run_cli("--check", "--gpus", "8x80GB")
    assert result.returncode == 0, result.stderr
    assert "cuda:0,1,2,3,4,5 (tensor parallel 2 x data parallel 3)" in result.stdout
    assert "plan: valid for the described GPUs" in result.stdout


def test_the_check_counts_the_batched_tts_cache_in_the_tts_gpus_memory() -> None:
    alone = run_cli("--check", "--gpus", "8x80GB")
    batched = run_cli("--check", "--gpus", "8x80GB", env={"MONOLITH_TTS__MAX_BATCH": "16"})
    assert alone.returncode == batched.returncode == 0, batched.stderr
    tts_line = [line for line in alone.stdout.splitlines() if line.startswith("memory: GPU 7: tts")]
    assert tts_line == ["memory: GPU 7: tts ~4.0 = ~4.0 of 80 GiB (fits)"]
    # 16 rows of S1-mini's 8192 positions: 28 layers x 2 x 8 heads x 128 x 2 bytes each, 14 GiB
    assert "memory: GPU 7: tts ~18.0 = ~18.0 of 80 GiB (fits)" in batched.stdout


def test_old_env_tp_6_with_gpt_oss_fails_the_check_with_the_numbers() -> None:
    result = run_cli("--check", "--gpus", "8", env={"LLM_TP_SIZE": "6"})
    assert result.returncode == 2
    assert "the model's 64 attention heads do not divide by tensor_parallel_size 6" in result.stderr
    assert "valid tensor_parallel_size values: 1, 2, 4, 8" in result.stderr


def _layout_config(tmp_path: Path, tp: int, dp: int) -> Path:
    model = tmp_path / "llm"
    model.mkdir(exist_ok=True)
    (model / "config.json").write_text(json.dumps({"num_attention_heads": 64, "num_key_value_heads": 8,
                                                   "num_hidden_layers": 36}))
    config = tmp_path / "config.toml"
    devices = list(range(tp * dp))
    config.write_text(
        f'[llm]\nmodel = "llm"\ndevices = {devices}\ntensor_parallel_size = {tp}\ndata_parallel_size = {dp}\n'
        '[stt]\ndevices = [7]\n[embedding]\ndevices = [7]\n[tts]\ndevices = [7]\n'
    )
    return config


def test_check_for_another_machine_validates_tensor_parallel_against_the_model(tmp_path: Path) -> None:
    for tp, dp, code in ((1, 6, 0), (2, 3, 0), (4, 1, 0), (3, 2, 2), (6, 1, 2)):
        result = run_cli("--config", str(_layout_config(tmp_path, tp, dp)), "--check", "--gpus", "8")
        assert result.returncode == code, (tp, dp, result.stdout, result.stderr)
        if code:
            assert f"do not divide by tensor_parallel_size {tp}" in result.stderr


def test_a_port_out_of_range_is_a_config_error_not_a_traceback() -> None:
    result = run_cli("--cpu-mock", "--port", "70000")
    assert result.returncode == 2
    assert "--port 70000: a port is a number from 1 to 65535" in result.stderr
    assert "Traceback" not in result.stderr


def test_check_with_a_remote_llm_plans_no_llm_gpus_and_shows_no_key() -> None:
    env = {"MONOLITH_LLM__BACKEND": "remote", "MONOLITH_LLM__REMOTE__BASE_URL": "http://vllm-router:8000/v1",
           "MONOLITH_LLM__REMOTE__API_KEY": "sk-sekrit"}
    result = run_cli("--check", "--gpus", "8x80GB", env=env)
    assert result.returncode == 0, result.stderr
    assert "llm        remote" in result.stdout and "memory: GPU 6: stt" in result.stdout
    assert "weights: llm: served by http://vllm-router:8000/v1, no weights needed here" in result.stdout
    assert "memory: llm" not in result.stdout and "sk-sekrit" not in result.stdout + result.stderr


def test_process_defaults_pci_order_and_spawn_unless_the_user_chose() -> None:
    from monolith.__main__ import set_process_defaults

    fresh: dict[str, str] = {}
    set_process_defaults(fresh)
    assert fresh == {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", "VLLM_WORKER_MULTIPROC_METHOD": "spawn"}
    chosen = {"CUDA_DEVICE_ORDER": "FASTEST_FIRST", "VLLM_WORKER_MULTIPROC_METHOD": "fork"}
    set_process_defaults(chosen)
    assert chosen == {"CUDA_DEVICE_ORDER": "FASTEST_FIRST", "VLLM_WORKER_MULTIPROC_METHOD": "fork"}
