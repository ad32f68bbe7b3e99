"""STT benchmark: real-time factor and per-step decode latency for 1, 4 and 16 concurrent
streams, batched (one decode call for all ready streams, as the live loop does) vs one decode
call per stream, side by side in one run.

    python scripts/bench_stt.py [--streams 1 4 16] [--seconds 6] [--layers 4 --width 1536] [--out FILE]

Uses monolith's own streaming engine (sherpa-onnx OnlineRecognizer + Silero VAD per stream)
with a random-weight streaming zipformer2 built by scripts/tiny_sherpa.py; `--layers/--width`
give its encoder the compute of a small real model (the text is random either way). Audio is
the test sentence, looped, fed in 100 ms pieces per stream, as fast as the engine takes it.
RTF = compute time / audio duration: below 1, all the streams together keep up with real time.
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import tiny_sherpa  # noqa: E402

from monolith.config import STTConfig  # noqa: E402
from monolith.providers.sherpa_stt.engines import OnlineEngine  # noqa: E402
from monolith.providers.sherpa_stt.models import build_online, discover  # noqa: E402
from monolith.providers.sherpa_stt.vad import packaged_silero_model  # noqa: E402

RATE = 16000
PIECE = RATE // 10  # 100 ms per stream per step


def audio(seconds: float) -> np.ndarray:
    sentence, _ = sf.read(REPO / "tests" / "data" / "speech_en_16k.wav", dtype="float32")
    unit = np.concatenate([sentence, np.zeros(RATE // 2, dtype=np.float32)])
    return np.tile(unit, int(np.ceil(seconds * RATE / unit.size)))[: int(seconds * RATE)]


def run(engine: OnlineEngine, streams: int, samples: np.ndarray, batched: bool) -> dict[str, Any]:
    states = [engine.new_state(RATE) for _ in range(streams)]
    steps: list[float] = []
    start = time.perf_counter()
    for i in range(0, samples.size, PIECE):
        piece = samples[i : i + PIECE]
        groups = [[(s, piece) for s in states]] if batched else [[(s, piece)] for s in states]
        for group in groups:
            t = time.perf_counter()
            engine.step(group)
            steps.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    seconds = samples.size / RATE
    return {
        "rtf": round(total / seconds, 4),
        "stream_seconds_per_s": round(streams * seconds / total, 2),
        "step_p50_ms": round(float(np.percentile(steps, 50)), 3),
        "step_p95_ms": round(float(np.percentile(steps, 95)), 3),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        folder = Path(tmp) / "streaming-zipformer-bench"
        tiny_sherpa.write_streaming_zipformer2(folder, hidden=(args.layers, args.width))
        config = STTConfig(model=str(folder), num_threads=args.threads, mode="streaming")
        vad = packaged_silero_model()
        assert vad is not None, "pip install --no-deps silero-vad"
        engine = OnlineEngine(build_online(discover(folder, config), config, "cpu", 0), config, vad)
        samples = audio(args.seconds)
        run(engine, 1, samples[: RATE * 2], batched=True)  # warm-up
        results: dict[str, Any] = {"model": f"random streaming zipformer2, {args.layers} x {args.width} hidden",
                                   "seconds": args.seconds, "threads": args.threads, "runs": {}}
        for n in args.streams:
            batched = run(engine, n, samples, batched=True)
            single = run(engine, n, samples, batched=False)
            ratio = batched["stream_seconds_per_s"] / single["stream_seconds_per_s"]
            results["runs"][str(n)] = {"batched": batched, "one_per_stream": single, "throughput_ratio": round(ratio, 2)}
    return results


def report(results: dict[str, Any]) -> None:
    print(f"model: {results['model']}; {results['seconds']} s of audio per stream; {results['threads']} ONNX threads")
    print(f"{'streams':>7} {'mode':<15}{'RTF':>8}{'stream-s/s':>12}{'step p50 ms':>13}{'step p95 ms':>13}")
    for n, run_ in results["runs"].items():
        for mode in ("batched", "one_per_stream"):
            r = run_[mode]
            print(f"{n:>7} {mode:<15}{r['rtf']:>8}{r['stream_seconds_per_s']:>12}{r['step_p50_ms']:>13}{r['step_p95_ms']:>13}")
        print(f"{'':>7} batched / one per stream (throughput ratio): {run_['throughput_ratio']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--width", type=int, default=1536)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = main(args)
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
