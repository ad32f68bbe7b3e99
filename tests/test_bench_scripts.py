"""The benchmark scripts run end to end (a smoke run; figures are printed, never asserted)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .conftest import REPO


def run_bench(script: str, *args: str, out: Path, timeout: int) -> tuple[str, Any]:
    """Run scripts/<script> with `--out out`; its stdout and the figures it wrote."""
    result = subprocess.run([sys.executable, f"scripts/{script}", *args, "--out", str(out)],
                            cwd=REPO, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, json.loads(out.read_text())


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_latency_runs_both_topologies(tmp_path: Path) -> None:
    stdout, runs = run_bench("bench_latency.py", "--sessions", "2", "--turns", "1",
                             out=tmp_path / "latency.json", timeout=240)
    assert "in-process / hops (p50 ratio)" in stdout
    assert [r.get("topology") for r in runs[:2]] == ["in-process", "hops"]
    for run in runs[:2]:
        assert run["figures"]["tts_start_ms"]["n"] == 2
        assert run["figures"]["barge_in_ms"]["n"] == 2


@pytest.mark.slow  # under a minute; CI runs it, `-m 'not slow'` skips it
def test_bench_latency_compares_tts_batch_sizes(tmp_path: Path) -> None:
    stdout, runs = run_bench("bench_latency.py", "--tts-batch", "1", "4", "--sessions", "4", "--turns", "1",
                             out=tmp_path / "latency.json", timeout=240)
    assert "tts_start_ms p95, tts batch 1 / batch 4:" in stdout
    assert [r["topology"] for r in runs[:2]] == ["in-process, tts batch 1", "in-process, tts batch 4"]
    for run in runs[:2]:
        assert run["figures"]["tts_start_ms"]["n"] == 4 and run["figures"]["barge_in_ms"]["n"] == 4
    assert runs[2]["tts_start_p95_ratio_unbatched_over_batched"] > 0


@pytest.mark.slow  # about a minute; CI runs it, `-m 'not slow'` skips it
def test_bench_latency_compares_preemptive_off_and_on(tmp_path: Path) -> None:
    stdout, runs = run_bench("bench_latency.py", "--preemptive", "--revise-every", "2", "--sessions", "2",
                             "--turns", "2", out=tmp_path / "latency.json", timeout=240)
    assert "end of speech -> first audio p50/p95: off" in stdout
    off, on = runs[:2]
    assert off["preemptive_turns"] == 0 and off["preemptive"]["used"] == 0
    assert on["preemptive_turns"] == 2  # every other turn's final differs from its pause
    assert on["preemptive"]["discarded"] >= 2 and on["figures"]["end_of_speech_to_first_audio_ms"]["n"] == 4


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_rag_prints_every_figure(tmp_path: Path) -> None:
    stdout, figures = run_bench("bench_rag.py", "--sizes", "300", "--queries", "5", "--ingest-chunks", "20",
                                "--callers", "4", "--requests", "2", out=tmp_path / "rag.json", timeout=300)
    assert "micro-batched / one per request (throughput ratio)" in stdout
    assert "300 chunks: hnsw / flat p50" in stdout
    assert set(figures["search"]) == {"300/flat", "300/hnsw", "minilm_query_embed"}
    assert figures["embedding"]["micro_batched"]["forward_passes"] < figures["embedding"]["one_per_request"]["forward_passes"]


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_stt_prints_batched_and_single_figures(tmp_path: Path, zipformer_models: dict[str, Path]) -> None:
    stdout, figures = run_bench("bench_stt.py", "--streams", "1", "2", "--seconds", "1", "--model",
                                str(zipformer_models["transducer"]), out=tmp_path / "stt.json", timeout=300)
    assert "batched / one per stream (throughput ratio)" in stdout
    runs = figures["runs"]
    assert set(runs) == {"1", "2"} and runs["2"]["batched"]["rtf"] > 0 and runs["2"]["decode_only_ratio"] > 0


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_llm_runs_both_paths(tmp_path: Path) -> None:
    stdout, figures = run_bench("bench_llm.py", "--streams", "2", "--tokens", "8", "--rounds", "1",
                                out=tmp_path / "llm.json", timeout=600)
    assert "in-process / server: TTFT p50" in stdout
    assert figures["in_process"]["2"]["tokens_per_s"] > 0 and figures["server"]["2"]["tokens_per_s"] > 0


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_tts_compares_the_two_policies(tmp_path: Path) -> None:
    stdout, figures = run_bench("bench_tts_policy.py", "--sessions", "2", "--responses", "1", "--chunks", "2",
                                "--first-chunk-ms", "10", "--rtf", "0", out=tmp_path / "tts.json", timeout=120)
    assert "fifo / first-chunk-first, time to first audio p95" in stdout
    row = figures["runs"]["2"]
    assert set(row) == {"first-chunk-first", "fifo", "fifo / first-chunk-first (p95)"}


@pytest.mark.slow  # minutes (the first run builds the Pipecat venv from PyPI); CI runs it
def test_bench_peers_runs_monolith_and_pipecat_side_by_side(tmp_path: Path) -> None:
    stdout, results = run_bench("bench_peers.py", "--sessions", "1", "--turns", "1", "--barge", "1",
                                "--clip-s", "0.6", "--feeder-s", "0", out=tmp_path / "peers.json", timeout=900)
    assert "monolith    pipecat  monolith/pipecat" in stdout
    assert "end of speech -> first audio p50 (ms)" in stdout and "barge-in p95 (ms)" in stdout
    run = results["runs"]["1"]
    for side in ("monolith", "pipecat"):
        assert run[side]["completed"] == {"turns": 1, "barge_ins": 1}, run[side]["errors"]
        assert run[side]["figures"]["e2e_ms"]["n"] == 1 and run[side]["figures"]["barge_in_ms"]["n"] == 1
    assert run["work"]["tts_max_batch"] == 1 and run["work"]["tts_batch_cost_exponent"] == 0


def test_gpu_check_dry_run_prints_the_plan_and_the_config() -> None:
    result = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--gpus", "8"],
                            cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "gpu_check plan for 8 GPU(s)" in out
    for step in range(7):
        assert f"step {step} " in out
    assert "llm [0], stt [7], embedding [7], tts [6]" in out and "bench_stt.py --provider cuda --device 7" in out
    assert 'fallback = "none"' in out and "[placement]\nallow_shared = false" in out
    one = subprocess.run([sys.executable, "scripts/gpu_check.py", "--dry-run", "--gpus", "1"],
                         cwd=REPO, capture_output=True, text=True, timeout=60).stdout
    assert "llm [0], stt [0], embedding [0], tts [0] (allow_shared True)" in one


@pytest.mark.slow  # minutes; CI runs it, `-m 'not slow'` skips it
def test_bench_tts_compares_batched_and_one_at_a_time(tmp_path: Path) -> None:
    stdout, figures = run_bench("bench_tts.py", "--quick", "--concurrency", "1", "2", "--tokens", "12",
                                out=tmp_path / "tts.json", timeout=300)
    assert "tokens/s one at a time" in stdout and "batched / one at a time, throughput:" in stdout
    ratios = figures["batched_vs_sequential_throughput"]
    assert set(ratios) == {"1", "2"} and all(r > 0 for r in ratios.values())
    runs = figures["models"]["tiny"]["runs"]
    for mode in ("sequential", "batched"):  # the same seeded chunks: the same tokens either way
        assert runs["2"][mode]["tokens"] == runs["2"]["sequential"]["tokens"] > 0
