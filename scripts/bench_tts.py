"""Fish Speech under concurrency: N chunks at once, one at a time (today's `[tts] max_batch = 1`:
Fish's own decode loop) vs the continuous-batching decoder (`max_batch = N`), side by side in one run.

    python scripts/bench_tts.py [--models tiny s1mini] [--concurrency 1 4 8 16] [--tokens 48] [--quick] [--out FILE]

- `tiny`: the tiny random checkpoint (scripts/tiny_fish.py), end to end as a user's chunks go:
  the Fish Speech provider behind a TTS device queue, text -> semantic tokens -> codec -> audio.
  Time to first audio is from the moment all N chunks were queued to each chunk's audio.
- `s1mini`: a random build with OpenAudio S1-mini's layer sizes (0.86 B parameters, float32 on the
  CPU), the text-to-semantic loops alone (its codec is not built here): time to a chunk's codes.
  Fish's own loop takes about a minute per chunk at this size on 2 cores, so its one-at-a-time
  figures are measured on `--s1mini-sequential-chunks` chunks and extrapolated (each chunk costs
  the same; printed as such). The batched decoder's own one-row speed is printed too, so the
  batching gain can be told apart from the decoder's shorter attention.
Every chunk is seeded the same way in both modes, so both decode exactly the same tokens
(tests/providers/test_fish_batched.py checks that). Throughput is semantic tokens per second of
wall time. `--quick` runs the tiny checkpoint only (a few minutes on 2 cores).

Writes JSON (default bench-results/tts.json) with `batched_vs_sequential_throughput`: the tiny
checkpoint's throughput ratio per concurrency ({"1": ..., "4": ..., "8": ..., "16": ...}), and the
same per model under `models`. The goal set for it: at least 3x at 8 concurrent chunks.
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from monolith.config import TTSConfig  # noqa: E402
from monolith.providers.base import EngineSpec  # noqa: E402
from monolith.scheduler.tts_queue import DeviceQueue  # noqa: E402

TEXTS = [
    "Hello there.", "How are you today?", "The weather is fine.", "Tokyo is sunny and warm.",
    "One more sentence, please.", "Thank you very much.", "See you tomorrow morning.", "Good night.",
    "Where is the station?", "The train leaves at nine.", "I would like some coffee.", "It is raining again.",
    "Turn left at the corner.", "The meeting starts soon.", "Please call me back.", "That sounds great.",
]
SEED = 1234
SAMPLES_PER_TOKEN = 2048  # the codec's hop at 44.1 kHz (21.5 semantic tokens per second of audio)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * (len(ordered) - 1) + 0.5))], 1)


def row(tokens: int, seconds: float, first_audio_ms: list[float], **extra: Any) -> dict[str, Any]:
    return {"tokens": tokens, "seconds": round(seconds, 3), "tokens_per_s": round(tokens / seconds, 2),
            "first_audio_p50_ms": round(statistics.median(first_audio_ms), 1),
            "first_audio_p95_ms": percentile(first_audio_ms, 0.95), **extra}


# --- tiny: the provider, end to end ----------------------------------------------------------

async def tiny_round(folder: Path, max_batch: int, n: int, tokens: int) -> dict[str, Any]:
    from monolith.providers.fish_tts import FishTTS

    config = TTSConfig(model=str(folder), precision="float32", max_new_tokens=tokens, seed=SEED, max_batch=max_batch)
    provider = FishTTS(config, EngineSpec(model_path=str(folder), model_id="fish-tiny"))
    await provider.load()
    await provider.warmup()
    queue = DeviceQueue(capacity=provider.batch_capacity())
    start = time.perf_counter()

    async def chunk(text: str) -> tuple[float, int]:
        async with queue.turn(first_in_response=True, label=text):
            samples, first = 0, 0.0
            async for audio in provider.synthesize(text, voice="default", request_id=text):
                first = first or (time.perf_counter() - start) * 1000
                samples += audio.size
        return first, samples // SAMPLES_PER_TOKEN

    done = await asyncio.gather(*(chunk(TEXTS[i % len(TEXTS)]) for i in range(n)))
    seconds = time.perf_counter() - start
    await provider.close()
    return row(sum(t for _, t in done), seconds, [f for f, _ in done])


def tiny(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import tiny_fish

    if not (folder / "model.pth").exists():
        tiny_fish.write_tiny_fish(folder)
    runs: dict[str, Any] = {}
    for n in args.concurrency:
        sequential = asyncio.run(tiny_round(folder, 1, n, args.tokens))
        batched = asyncio.run(tiny_round(folder, n, n, args.tokens))
        runs[str(n)] = {"sequential": sequential, "batched": batched,
                        "throughput_ratio": round(batched["tokens_per_s"] / sequential["tokens_per_s"], 2)}
        print_row("tiny", n, runs[str(n)])
    return runs


# --- s1mini: the decode loops alone -------------------------------------------------------------

def fish_one(model: Any, text: str, tokens: int) -> tuple[float, int]:
    """One chunk through Fish's own generate_long, seeded as Fish's engine seeds it."""
    from fish_speech.models.text2semantic import inference as t2s
    from fish_speech.utils import set_seed

    set_seed(SEED)
    started = time.perf_counter()
    made = 0
    for result in t2s.generate_long(model=model, device="cpu", decode_one_token=t2s.decode_one_token_ar, text=text,
                                    max_new_tokens=tokens, temperature=0.7, top_p=0.7, repetition_penalty=1.2,
                                    prompt_text=[], prompt_tokens=[]):
        if result.action == "sample":
            made = int(result.codes.shape[1])
    return time.perf_counter() - started, made


def batched_round(model: Any, max_batch: int, texts: list[str], tokens: int) -> tuple[float, list[float], int]:
    """All of `texts` submitted at once; (seconds, each chunk's time to codes in ms, tokens)."""
    from monolith.providers.fish_tts.batched import BatchedSemanticDecoder

    decoder = BatchedSemanticDecoder(model, max_batch, cache_len=1024)
    start = time.perf_counter()
    handles = [decoder.submit(t, temperature=0.7, top_p=0.7, repetition_penalty=1.2, max_new_tokens=tokens, seed=SEED)
               for t in texts]
    ready: dict[int, float] = {}
    while decoder.pending():
        decoder.step()
        for h in handles:
            if h.state == "done" and h.id not in ready:
                ready[h.id] = (time.perf_counter() - start) * 1000
    return time.perf_counter() - start, [ready[h.id] for h in handles], sum(int(h.codes.shape[1]) for h in handles)


def s1mini(args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    import tiny_fish
    import torch

    torch.set_num_threads(args.threads)
    model = tiny_fish.s1mini_sized_model(folder)
    params = sum(p.numel() for p in model.parameters())
    print(f"s1mini-sized random model: {params / 1e9:.2f} B parameters, float32, {args.threads} threads")
    # Fish's own loop, one chunk at a time: measured on a few chunks; every chunk costs the same
    measured = [fish_one(model, TEXTS[i], args.tokens) for i in range(args.s1mini_sequential_chunks)]
    fish_s_per_token = sum(s for s, _ in measured) / sum(t for _, t in measured)
    # the batched decoder with one row (after a warm-up round): its speed without batching
    batched_round(model, 1, TEXTS[:1], 4)
    one_s, _, one_tokens = batched_round(model, 1, TEXTS[:1], args.tokens)
    runs: dict[str, Any] = {}
    for n in args.concurrency:
        seconds, to_codes, made = batched_round(model, n, [TEXTS[i % len(TEXTS)] for i in range(n)], args.tokens)
        per_chunk = made / n * fish_s_per_token * 1000  # Fish's loop: chunk i is ready after i + 1 chunks
        sequential = row(made, made * fish_s_per_token, [per_chunk * (i + 1) for i in range(n)],
                         extrapolated_from_chunks=len(measured))
        runs[str(n)] = {
            "sequential": sequential,
            "batched": row(made, seconds, to_codes),
            "batched_decoder_one_row_tokens_per_s": round(one_tokens / one_s, 2),
            "throughput_ratio": round(made / seconds / sequential["tokens_per_s"], 2),
            "batching_gain": round(made / seconds / (one_tokens / one_s), 2),
        }
        print_row("s1mini", n, runs[str(n)])
    return runs


def print_header() -> None:
    print(f"{'model':<7}{'N':>3} {'tokens/s one at a time':>23} {'batched':>8} {'ratio':>6} "
          f"{'first audio p50/p95 one at a time (ms)':>40} {'batched':>17}")


def print_row(model: str, n: int, r: dict[str, Any]) -> None:
    s, b = r["sequential"], r["batched"]
    extra = f"  (one-at-a-time extrapolated; batching alone x{r['batching_gain']})" if "batching_gain" in r else ""
    print(f"{model:<7}{n:>3} {s['tokens_per_s']:>23} {b['tokens_per_s']:>8} {r['throughput_ratio']:>6} "
          f"{s['first_audio_p50_ms']:>26} / {s['first_audio_p95_ms']:<11} {b['first_audio_p50_ms']:>8} / "
          f"{b['first_audio_p95_ms']:<8}{extra}", flush=True)


def quiet_fish_speech() -> None:
    """Fish Speech logs every chunk (loguru) and warns about CPU autocast: keep the table readable."""
    import warnings

    from loguru import logger

    logger.remove()
    logger.add(sys.stderr, level="ERROR")
    warnings.filterwarnings("ignore")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", choices=["tiny", "s1mini"], default=["tiny", "s1mini"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--tokens", type=int, default=48, help="max_new_tokens per chunk")
    parser.add_argument("--s1mini-sequential-chunks", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the s1mini model")
    parser.add_argument("--quick", action="store_true", help="the tiny checkpoint only")
    parser.add_argument("--work", type=Path, help="where the models' files go (default: a temporary folder)")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "tts.json")
    args = parser.parse_args()
    models = ["tiny"] if args.quick else args.models
    quiet_fish_speech()
    with tempfile.TemporaryDirectory() as scratch:
        work = args.work or Path(scratch)
        print_header()
        results: dict[str, Any] = {"tokens_per_chunk": args.tokens, "models": {}}
        if "tiny" in models:
            results["models"]["tiny"] = tiny(args, work / "fish-tiny")
        if "s1mini" in models:
            results["models"]["s1mini"] = s1mini(args, work / "s1mini-tokenizer")
    for name, runs in results["models"].items():
        results["models"][name] = {"runs": runs, "batched_vs_sequential_throughput":
                                   {n: r["throughput_ratio"] for n, r in runs.items()}}
    first = results["models"].get("tiny") or next(iter(results["models"].values()))
    results["batched_vs_sequential_throughput"] = first["batched_vs_sequential_throughput"]
    print("batched / one at a time, throughput:", json.dumps(results["batched_vs_sequential_throughput"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
