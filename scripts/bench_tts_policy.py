"""TTS scheduling benchmark: time to first audio for 1 and 4 concurrent sessions, first-chunk-first
vs plain FIFO on one TTS device, side by side in one run.

    python scripts/bench_tts_policy.py [--sessions 1 4] [--responses 3] [--chunks 4] [--out FILE]

Each session answers `--responses` times; every answer is `--chunks` sentences, queued at once
(as an LLM streams them), and answers start at random moments, so sessions overlap. The TTS is
the mock provider paced like a GPU deployment (`--first-chunk-ms` to render a chunk, plus
`--rtf` x its audio length), behind the real registry facade and device queue, so the figures
are those of the scheduling policy; `--real CONFIG` runs a real engine instead (Fish Speech's
batched decode itself is measured by `bench_tts.py`).
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from monolith.config import load_settings  # noqa: E402
from monolith.registry import Registry  # noqa: E402
from monolith.scheduler.placement import Inventory, build_plan  # noqa: E402

SENTENCE = "This sentence is about two seconds long when spoken."


async def answer(registry: Registry, label: str, chunks: int, first_audio: list[float]) -> float:
    """One answer: all its chunks queued at once; returns its audio seconds."""
    start = time.perf_counter()

    async def chunk(i: int) -> float:
        seconds = 0.0
        async for pcm in registry.tts.stream_pcm16(SENTENCE, voice="default", request_id=f"{label}-{i}",
                                                   sample_rate=24000, first_in_response=i == 0):
            if i == 0 and not seconds:
                first_audio.append((time.perf_counter() - start) * 1000)
            seconds += len(pcm) / 2 / 24000
        return seconds

    return sum(await asyncio.gather(*(chunk(i) for i in range(chunks))))


async def session(registry: Registry, name: str, responses: int, chunks: int, rng: random.Random,
                  first_audio: list[float]) -> float:
    audio_s = 0.0
    for r in range(responses):
        await asyncio.sleep(rng.uniform(0.2, 1.0))  # the user speaks, the LLM starts answering
        audio_s += await answer(registry, f"{name}-{r}", chunks, first_audio)
    return audio_s


async def run(policy: str, sessions: int, args: argparse.Namespace) -> dict[str, Any]:
    env = {"MONOLITH_TTS__SCHEDULING": f'"{policy}"', "MONOLITH_TTS__MOCK__FIRST_CHUNK_MS": str(args.first_chunk_ms),
           "MONOLITH_TTS__MOCK__REAL_TIME_FACTOR": str(args.rtf), "MONOLITH_RAG__ENABLED": "false"}
    settings = load_settings(args.real or REPO / "config.toml", env, cpu_mock=args.real is None)
    registry = Registry(settings, build_plan(settings, Inventory()))
    await registry.load_all()
    first_audio: list[float] = []
    rng = random.Random(7)
    start = time.perf_counter()
    audio = await asyncio.gather(*(session(registry, f"s{i}", args.responses, args.chunks, rng, first_audio)
                                   for i in range(sessions)))
    wall = time.perf_counter() - start
    await registry.close()
    first_audio.sort()
    return {
        "first_audio_p50_ms": round(statistics.median(first_audio), 1),
        "first_audio_p95_ms": round(first_audio[int(0.95 * (len(first_audio) - 1))], 1),
        "first_audio_max_ms": round(first_audio[-1], 1),
        "rtf": round(wall / sum(audio), 3),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"chunks": args.chunks, "responses": args.responses, "runs": {}}
    for n in args.sessions:
        row = {policy: await run(policy, n, args) for policy in ("first-chunk-first", "fifo")}
        row["fifo / first-chunk-first (p95)"] = round(
            row["fifo"]["first_audio_p95_ms"] / row["first-chunk-first"]["first_audio_p95_ms"], 2)
        results["runs"][str(n)] = row
    return results


def report(results: dict[str, Any]) -> None:
    print(f"{results['responses']} answers per session, {results['chunks']} chunks each; mock TTS paced like a GPU")
    print(f"{'sessions':>8} {'policy':<18}{'first audio p50':>16}{'p95':>9}{'max':>9}{'RTF':>7}")
    for n, row in results["runs"].items():
        for policy in ("first-chunk-first", "fifo"):
            r = row[policy]
            print(f"{n:>8} {policy:<18}{r['first_audio_p50_ms']:>16}{r['first_audio_p95_ms']:>9}"
                  f"{r['first_audio_max_ms']:>9}{r['rtf']:>7}")
        print(f"{'':>8} fifo / first-chunk-first, time to first audio p95: {row['fifo / first-chunk-first (p95)']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--responses", type=int, default=3)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--first-chunk-ms", type=float, default=150.0)
    parser.add_argument("--rtf", type=float, default=0.1)
    parser.add_argument("--real", type=Path, help="a config.toml whose [tts] provider is real")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = asyncio.run(main(args))
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
