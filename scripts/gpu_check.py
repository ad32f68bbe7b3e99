"""Prove a GPU node in under 10 minutes: environment, plan, real engines on their GPUs, voice.

    python scripts/fetch_weights.py --small --into weights/small     # once, with internet access
    python scripts/gpu_check.py [--weights weights/small] [--out bench-results/gpu-check.json]
    python scripts/gpu_check.py --dry-run                            # print the plan; touch no GPU

The small real models (fetched by `fetch_weights.py --small`): gpt-oss-20b (the 120b's attention
layout, 64/8 heads; about 13 GiB), sherpa-onnx-streaming-zipformer-en-20M-2023-02-17,
fishaudio/openaudio-s1-mini, intfloat/multilingual-e5-small.

Steps (each bounded in time; a failed step is recorded and the rest still run):
 0. environment: driver, torch's CUDA, a C compiler and Python.h (Triton), sherpa-onnx and whether
    its CUDA provider loads (missing libraries named), which libcudnn the process maps, FAISS GPUs,
    torchaudio/torchcodec.
 1. `python -m monolith --check` of the shipped layout against this machine's GPUs.
 2. serve the small models with `fallback = "none"` everywhere (one GPU: everything shares it; two
    or more: LLM on GPU 0, STT and embedding on the last GPU, TTS on the one before), wait for
    /ready 200 "ready", record each provider's load time.
 3. placement proof: NVML's process list per GPU: the LLM's processes on its GPU only, monolith's
    own process only on the STT/embedding/TTS GPUs.
 4. voice end to end: spoken turns through /v1/voice; p50/p95 per stage, worst event-loop lag.
 5. TTS: first audio and semantic tokens/s, compiled and not; a cancel mid-chunk; a swap, and the
    TTS GPU's memory back afterwards.
 6. STT batched vs one decode per stream at 1/4/16 streams on a GPU other than 0; FAISS flat on GPU
    vs CPU (same results); LLM TTFT and inter-token gap at 16 streams, and abort.
It writes one JSON report and prints a table. Record the figures in docs/gpu-checks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

PORT = 8765
ADMIN = "gpu-check"
STEP_TIMEOUT_S = 240


# --- the plan ---------------------------------------------------------------------------------

def layout(gpus: int) -> dict[str, Any]:
    """Where each engine goes on a machine with `gpus` GPUs."""
    if gpus <= 1:
        return {"llm": [0], "stt": [0], "embedding": [0], "tts": [0], "shared": True}
    return {"llm": [0], "stt": [gpus - 1], "embedding": [gpus - 1], "tts": [max(1, gpus - 2)], "shared": False}


def find_model(weights: Path, provider: str) -> Path:
    folder = weights / provider
    found = sorted(p for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []
    if not found:
        raise FileNotFoundError(f"no {provider} model under {folder}: run scripts/fetch_weights.py --small --into {weights}")
    return found[0].resolve()


def config_text(weights: Path, gpus: int, *, dry_run: bool = False) -> str:
    place = layout(gpus)

    def model(provider: str) -> str:
        return str(weights / provider / "<model>") if dry_run else str(find_model(weights, provider))

    return "\n".join([
        "[server]", f'admin_token = "{ADMIN}"', 'log_format = "json"', "",
        "[placement]", f"allow_shared = {str(place['shared']).lower()}", "",
        "[llm]", f'model = "{model("llm")}"', f"devices = {place['llm']}", "tensor_parallel_size = 1",
        "max_model_len = 4096", "max_tokens = 64", "gpu_memory_utilization = 0.55" if place["shared"] else "",
        'fallback = "none"', "",
        "[stt]", f'model = "{model("stt")}"', f"devices = {place['stt']}", 'fallback = "none"', "",
        "[tts]", f'model = "{model("tts")}"', f"devices = {place['tts']}", 'fallback = "none"', "",
        "[embedding]", f'model = "{model("embedding")}"', f"devices = {place['embedding']}", 'fallback = "none"',
        'query_prefix = "query: "', 'passage_prefix = "passage: "', "",
        "[rag]", "enabled = false", "",
    ])


# --- step 0: the environment -------------------------------------------------------------------

def environment() -> dict[str, Any]:
    from monolith.providers.sherpa_stt.models import probe_cuda_provider
    from monolith.scheduler.cuda_env import torch_cuda_version
    from monolith.scheduler.placement import detect_inventory

    found: dict[str, Any] = {}
    inventory = detect_inventory()
    found["gpus"] = [f"{g.index}: {g.name} ({g.memory_mib} MiB, physical {g.physical})" for g in inventory.gpus]
    found["driver"] = inventory.driver
    found["torch_cuda"] = torch_cuda_version()
    found["c_compiler"] = os.environ.get("CC") or shutil.which("gcc") or shutil.which("clang")
    include = Path(sysconfig.get_paths()["include"]) / "Python.h"
    found["python_h"] = str(include) if include.exists() else None
    probe = probe_cuda_provider()
    version = importlib.util.find_spec("sherpa_onnx") and __import__("sherpa_onnx").__version__
    found["sherpa_onnx"] = {"version": version, "cuda_provider": str(probe.library) if probe.library else None,
                            "usable": probe.usable, "missing": list(probe.missing), "error": probe.error}
    import torch

    if torch.cuda.is_available():
        torch.zeros(1, device="cuda:0")
        torch.backends.cudnn.version()  # type: ignore[no-untyped-call]  # maps libcudnn
    maps = Path("/proc/self/maps").read_text(encoding="utf-8", errors="replace")
    found["libcudnn_mapped"] = sorted({line.split()[-1] for line in maps.splitlines() if "libcudnn.so" in line})
    try:
        import faiss

        found["faiss_gpus"] = int(faiss.get_num_gpus()) if hasattr(faiss, "get_num_gpus") else 0
    except ImportError:
        found["faiss_gpus"] = None
    for module in ("torchaudio", "torchcodec"):
        spec = importlib.util.find_spec(module)
        found[module] = None if spec is None else getattr(__import__(module), "__version__", "installed")
    return found


# --- steps 1-5: the server ------------------------------------------------------------------------

def run(command: list[str], timeout: float = STEP_TIMEOUT_S) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return {"command": " ".join(command), "returncode": done.returncode, "seconds": round(time.perf_counter() - started, 1),
            "stdout": done.stdout[-4000:], "stderr": done.stderr[-4000:]}


def nvml_processes() -> dict[int, list[dict[str, int]]]:
    """GPU index (NVML's) -> the processes with memory on it."""
    import pynvml

    pynvml.nvmlInit()
    try:
        found: dict[int, list[dict[str, int]]] = {}
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            found[i] = [{"pid": p.pid, "mib": int((p.usedGpuMemory or 0) // 2**20)}
                        for p in pynvml.nvmlDeviceGetComputeRunningProcesses(handle)]
        return found
    finally:
        pynvml.nvmlShutdown()


def gpu_used_mib(index: int) -> int:
    import pynvml

    pynvml.nvmlInit()
    try:
        return int(pynvml.nvmlDeviceGetMemoryInfo(pynvml.nvmlDeviceGetHandleByIndex(index)).used // 2**20)
    finally:
        pynvml.nvmlShutdown()


def placement_proof(server_pid: int, place: dict[str, Any]) -> dict[str, Any]:
    import psutil

    children = {c.pid for c in psutil.Process(server_pid).children(recursive=True)}
    per_gpu = nvml_processes()
    own = {i for i, procs in per_gpu.items() if any(p["pid"] == server_pid for p in procs)}
    engine = {i for i, procs in per_gpu.items() if any(p["pid"] in children for p in procs)}
    expected_own = set(place["stt"]) | set(place["embedding"]) | set(place["tts"])
    return {"per_gpu": per_gpu, "monolith_process_on": sorted(own), "vllm_processes_on": sorted(engine),
            "ok": own <= expected_own and engine <= set(place["llm"])}


async def voice_turns(base: str, turns: int = 3) -> dict[str, Any]:
    import numpy as np
    import websockets

    rate = 16000
    t = np.arange(int(1.2 * rate)) / rate
    speech = (0.3 * np.sin(2 * np.pi * 180 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    pcm = (np.concatenate([speech, np.zeros(rate, dtype=np.float32)]) * 32767).astype("<i2").tobytes()
    figures: dict[str, list[float]] = {}
    async with websockets.connect(base.replace("http", "ws") + "/v1/voice", max_size=1 << 24) as ws:
        await ws.recv()
        for _ in range(turns):
            for i in range(0, len(pcm), 640):
                await ws.send(pcm[i : i + 640])
                await asyncio.sleep(0.02)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                message = await asyncio.wait_for(ws.recv(), 60)
                if isinstance(message, bytes):
                    continue
                event = json.loads(message)
                if event["type"] == "turn.metrics":
                    for key, value in event.items():
                        if key.endswith("_ms") and isinstance(value, int | float):
                            figures.setdefault(key, []).append(float(value))
                    break
    return {k: {"p50": round(statistics.median(v), 1), "p95": round(sorted(v)[int(0.95 * (len(v) - 1))], 1)}
            for k, v in figures.items()}


def metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


async def serve_and_probe(weights: Path, gpus: int, report: dict[str, Any]) -> None:
    import httpx

    place = layout(gpus)
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as tmp:
        config = Path(tmp) / "config.toml"
        config.write_text(config_text(weights, gpus), encoding="utf-8")
        log = (Path(tmp) / "server.log").open("w")
        server = subprocess.Popen(  # noqa: ASYNC220 - started once; its output goes to a file
            [sys.executable, "-m", "monolith", "--config", str(config), "--port", str(PORT), "--host", "127.0.0.1"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{PORT}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=60) as http:
                started = time.perf_counter()
                ready: dict[str, Any] = {}
                while time.perf_counter() - started < 480 and server.poll() is None:
                    try:
                        resp = await http.get("/ready")
                        ready = resp.json()
                        if resp.status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(2)
                health = (await http.get("/health")).json()
                report["serve"] = {
                    "ready_status": ready.get("status"), "seconds_to_ready": round(time.perf_counter() - started, 1),
                    "load_seconds": {n: p.get("load_seconds") for n, p in health["providers"].items()},
                    "serving": {n: p.get("serving") for n, p in health["providers"].items()},
                    "warnings": health.get("warnings"), "failures": ready.get("failures"),
                }
                if ready.get("status") != "ready":
                    return
                report["placement"] = await guarded(lambda: asyncio.to_thread(placement_proof, server.pid, place))
                report["voice"] = await guarded(lambda: voice_turns(base))
                lag = metric((await http.get("/metrics")).text, "monolith_event_loop_lag_max_seconds")
                report["voice_event_loop_lag_max_ms"] = round(lag * 1000, 1) if lag is not None else None
                report["tts_cancel_and_swap"] = await guarded(lambda: tts_cancel_and_swap(http, place["tts"][0], weights))
                report["llm_abort"] = await guarded(lambda: llm_abort(http))
        finally:
            server.terminate()
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
            report.setdefault("serve", {})["log_tail"] = (Path(tmp) / "server.log").read_text()[-3000:]


async def tts_cancel_and_swap(http: Any, tts_gpu: int, weights: Path) -> dict[str, Any]:
    body = {"model": "default", "input": "This sentence is long enough to be cut off while it renders. " * 4,
            "response_format": "pcm"}
    started = time.perf_counter()
    async with http.stream("POST", "/v1/audio/speech", json=body) as resp:
        async for _ in resp.aiter_bytes():
            break  # hang up after the first audio: the chunk stops at its next token
    first_audio_ms = round((time.perf_counter() - started) * 1000, 1)
    before = gpu_used_mib(tts_gpu)
    swap = await http.post("/admin/models/tts", json={"path": str(find_model(weights, "tts"))},
                           headers={"Authorization": f"Bearer {ADMIN}"}, timeout=600)
    await asyncio.sleep(15)  # the old model is released once its work is done
    return {"first_audio_ms": first_audio_ms, "swap_status": swap.status_code, "swap": swap.json().get("swap"),
            "tts_gpu_mib_before_swap": before, "tts_gpu_mib_after_swap": gpu_used_mib(tts_gpu)}


async def llm_abort(http: Any) -> dict[str, Any]:
    body = {"model": "default", "messages": [{"role": "user", "content": "Count to one thousand."}],
            "max_tokens": 2000, "stream": True}

    async def cut() -> None:
        async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
            async for _ in resp.aiter_lines():
                break

    await asyncio.gather(*(cut() for _ in range(8)))
    await asyncio.sleep(2)
    running = metric((await http.get("/metrics")).text, "vllm:num_requests_running")
    return {"requests_running_after_8_hang_ups": running, "ok": running in (0.0, None)}


async def guarded(step: Callable[[], Any]) -> Any:
    try:
        return await asyncio.wait_for(step(), STEP_TIMEOUT_S)
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}


# --- step 5/6: engines side by side ----------------------------------------------------------------

FISH_SPEED = """
import asyncio, json, sys, time
from monolith.config import TTSConfig
from monolith.providers.base import EngineSpec
from monolith.providers.fish_tts import FishTTS
async def main(path, device, compiled, batch):
    p = FishTTS(TTSConfig(model=path, compile=compiled, max_batch=batch),
                EngineSpec(model_path=path, model_id="s1", devices=(device,)))
    await p.load(); await p.warmup()
    text = "The weather in Tokyo is sunny today, with a light breeze."
    async def one(i):
        start = time.perf_counter()
        audio = [a async for a in p.synthesize(text, voice="default", request_id=str(i))]
        return time.perf_counter() - start, sum(a.size for a in audio) / 2048
    runs = []
    for r in range(3):
        start = time.perf_counter()
        done = await asyncio.gather(*(one(i) for i in range(batch)))  # batch chunks at once
        wall = time.perf_counter() - start
        runs.append((max(s for s, _ in done), sum(t for _, t in done) / wall))
    print(json.dumps({"compile": compiled, "max_batch": batch, "chunks_at_once": batch,
                      "chunk_s": min(r[0] for r in runs), "semantic_tokens_per_s": max(r[1] for r in runs)}))
asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", int(sys.argv[4])))
"""


def tts_speed(weights: Path, device: int) -> list[Any]:
    """Fish Speech on its GPU: one chunk eager, one compiled, and 8 at once through the batched
    decoder (eager): semantic tokens per second of wall time."""
    out = []
    for compiled, batch in (("0", "1"), ("1", "1"), ("0", "8")):
        done = run([sys.executable, "-c", FISH_SPEED, str(find_model(weights, "tts")), str(device), compiled, batch],
                   timeout=420)
        lines = [ln for ln in done["stdout"].splitlines() if ln.startswith("{")]
        out.append(json.loads(lines[-1]) if lines else
                   {"compile": compiled == "1", "max_batch": int(batch), "error": done["stderr"][-1500:]})
    return out


def faiss_gpu_vs_cpu(device: int) -> dict[str, Any]:
    import faiss
    import numpy as np

    if not hasattr(faiss, "StandardGpuResources"):
        return {"skipped": "this FAISS has no GPU support"}
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((20000, 384)).astype(np.float32)
    faiss.normalize_L2(vectors)
    cpu = faiss.IndexFlatIP(384)
    cpu.add(vectors)
    gpu = faiss.index_cpu_to_gpu(faiss.StandardGpuResources(), device, cpu)
    queries = vectors[:64]
    _, cpu_ids = cpu.search(queries, 5)
    _, gpu_ids = gpu.search(queries, 5)
    return {"same_top5": bool((cpu_ids == gpu_ids).all()), "queries": 64}


# --- the command --------------------------------------------------------------------------------------

def plan(args: argparse.Namespace, gpus: int) -> list[str]:
    place = layout(gpus)
    stt_gpu = place["stt"][0] if place["stt"][0] != 0 or gpus == 1 else 1
    return [
        "0 environment: driver, torch CUDA, compiler + Python.h, sherpa-onnx CUDA provider, libcudnn, FAISS, torchaudio",
        f"1 {sys.executable} -m monolith --check   (the shipped layout on this machine's {gpus} GPU(s))",
        f"2 serve {args.weights} with fallback none: llm {place['llm']}, stt {place['stt']}, embedding "
        f"{place['embedding']}, tts {place['tts']} (allow_shared {place['shared']}); wait for /ready 'ready'",
        "3 NVML process list per GPU: vLLM only on the LLM GPU, monolith's process only on the others",
        "4 3 spoken turns through /v1/voice: p50/p95 per stage, worst event-loop lag",
        "5 /v1/audio/speech hang-up mid-chunk; POST /admin/models/tts (swap) and the TTS GPU's memory after; "
        "Fish Speech first audio and tokens/s compiled vs not",
        f"6 bench_stt.py --provider cuda --device {stt_gpu} --model {args.weights}/stt/<model> --streams 1 4 16; "
        f"FAISS flat GPU vs CPU; bench_llm.py --devices 0 --streams 16 --model {args.weights}/llm/<model>; "
        "8 LLM streams hung up, vllm:num_requests_running back to 0",
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument("--weights", type=Path, default=REPO / "weights" / "small")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "gpu-check.json")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and the config; run nothing")
    parser.add_argument("--gpus", type=int, default=None, help="with --dry-run: plan for this many GPUs")
    args = parser.parse_args()
    if args.dry_run:
        gpus = args.gpus or 8
        print(f"gpu_check plan for {gpus} GPU(s) (dry run: nothing runs):")
        for line in plan(args, gpus):
            print(f"  step {line}")
        print("\nconfig it would serve:\n" + config_text(args.weights, gpus, dry_run=True))
        return 0
    from monolith.scheduler.placement import detect_inventory

    gpus = len(detect_inventory().gpus)
    if gpus == 0:
        print("no GPU found (NVML and torch see none): nothing to check", file=sys.stderr)
        return 2
    started = time.perf_counter()
    report: dict[str, Any] = {"when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), "gpus": gpus,
                              "plan": plan(args, gpus)}
    try:
        report["environment"] = environment()
    except Exception as exc:
        report["environment"] = {"error": f"{type(exc).__name__}: {exc}"}
    report["check"] = run([sys.executable, "-m", "monolith", "--check"], timeout=60)
    asyncio.run(serve_and_probe(args.weights, gpus, report))
    place = layout(gpus)
    report["tts_speed"] = tts_speed(args.weights, place["tts"][0])
    stt_gpu = place["stt"][0] if place["stt"][0] != 0 or gpus == 1 else 1
    report["stt_bench"] = run([sys.executable, "scripts/bench_stt.py", "--provider", "cuda", "--device", str(stt_gpu),
                               "--model", str(find_model(args.weights, "stt")), "--streams", "1", "4", "16"])
    report["faiss"] = faiss_gpu_vs_cpu(place["embedding"][0])
    report["llm_bench"] = run([sys.executable, "scripts/bench_llm.py", "--model", str(find_model(args.weights, "llm")),
                               "--devices", "0", "--streams", "16", "--rounds", "1", "--tokens", "64"], timeout=420)
    report["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    print_table(report)
    print(f"\nreport: {args.out}")
    return 0


def print_table(report: dict[str, Any]) -> None:
    env = report.get("environment", {})
    rows = [
        ("driver / torch CUDA", f"{env.get('driver')} / {env.get('torch_cuda')}"),
        ("C compiler / Python.h", f"{env.get('c_compiler')} / {env.get('python_h')}"),
        ("sherpa-onnx CUDA usable", f"{env.get('sherpa_onnx', {}).get('usable')} {env.get('sherpa_onnx', {}).get('missing') or ''}"),
        ("libcudnn mapped", ", ".join(env.get("libcudnn_mapped", [])) or "-"),
        ("--check", f"exit {report.get('check', {}).get('returncode')}"),
        ("ready", f"{report.get('serve', {}).get('ready_status')} in {report.get('serve', {}).get('seconds_to_ready')} s"),
        ("load seconds", json.dumps(report.get("serve", {}).get("load_seconds"))),
        ("placement ok", str(report.get("placement", {}).get("ok"))),
        ("voice p50/p95 (ms)", json.dumps(report.get("voice"))),
        ("event-loop lag max (ms)", str(report.get("voice_event_loop_lag_max_ms"))),
        ("tts eager / compiled / batched x8", json.dumps(report.get("tts_speed"))),
        ("tts cancel + swap", json.dumps(report.get("tts_cancel_and_swap"))),
        ("faiss gpu == cpu", json.dumps(report.get("faiss"))),
        ("llm abort", json.dumps(report.get("llm_abort"))),
        ("total seconds", str(report.get("seconds"))),
    ]
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {value}")


if __name__ == "__main__":
    sys.exit(main())
