"""STT benchmark: real-time factor and per-chunk decode latency for 1, 4 and 16 concurrent
streams, batched (one decode call for all ready streams, as the live loop does) vs one decode
call per stream, side by side in one run.

    python scripts/bench_stt.py [--streams 1 4 16] [--seconds 6] [--model medium|small|DIR] [--out FILE]

Uses monolith's own streaming engine (sherpa-onnx OnlineRecognizer + Silero VAD per stream).
The model is a streaming zipformer2 with a real model's architecture and random weights, built
by scripts/tiny_zipformer.py in icefall's `medium` (default) or `small` configuration; `--model
DIR` takes a downloaded sherpa-onnx streaming transducer instead. Audio is the test sentence,
looped, fed in 100 ms pieces per stream, as fast as the engine takes it.
RTF = compute time / audio duration: below 1, all the streams together keep up with real time.
A round's time is how long a session waits for its latest piece to be decoded.
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

import tiny_zipformer  # noqa: E402

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
    """Each round gives every stream its next 100 ms piece; a round's time is how long the last
    stream waits for its piece to be decoded (the per-chunk latency a session sees)."""
    states = [engine.new_state(RATE) for _ in range(streams)]
    rounds: list[float] = []
    decode_before = engine.decode_seconds
    start = time.perf_counter()
    for i in range(0, samples.size, PIECE):
        piece = samples[i : i + PIECE]
        groups = [[(s, piece) for s in states]] if batched else [[(s, piece)] for s in states]
        t = time.perf_counter()
        for group in groups:
            engine.step(group)
        rounds.append((time.perf_counter() - t) * 1000)
    total = time.perf_counter() - start
    seconds = samples.size / RATE
    # rounds that decoded a chunk (about one in three: a chunk is 320 ms) set the tail
    return {
        "rtf": round(total / seconds, 4),
        "decode_rtf": round((engine.decode_seconds - decode_before) / seconds, 4),
        "stream_seconds_per_s": round(streams * seconds / total, 2),
        "round_p50_ms": round(float(np.percentile(rounds, 50)), 2),
        "round_p95_ms": round(float(np.percentile(rounds, 95)), 2),
        "round_max_ms": round(float(np.max(rounds)), 2),
    }


def main(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-stt-") as tmp:
        if args.model in tiny_zipformer.SIZES:
            folder = Path(tmp) / f"streaming-zipformer2-{args.model}"
            count = tiny_zipformer.write_streaming_zipformer2(folder, args.model)
            model = f"streaming zipformer2 {args.model} ({count / 1e6:.1f} M parameters, random weights)"
        else:
            folder, model = Path(args.model), args.model
        config = STTConfig(model=str(folder), num_threads=args.threads, mode="streaming")
        vad = packaged_silero_model()
        assert vad is not None, "pip install --no-deps silero-vad"
        engine = OnlineEngine(build_online(discover(folder, config), config, args.provider, args.device), config, vad)
        samples = audio(args.seconds)
        run(engine, 1, samples[: RATE * 2], batched=True)  # warm-up
        results: dict[str, Any] = {"model": model,
                                   "seconds": args.seconds, "threads": args.threads, "provider": args.provider, "device": args.device if args.provider == "cuda" else None, "runs": {}}
        for n in args.streams:
            batched = run(engine, n, samples, batched=True)
            single = run(engine, n, samples, batched=False)
            ratio = batched["stream_seconds_per_s"] / single["stream_seconds_per_s"]
            decode_ratio = single["decode_rtf"] / batched["decode_rtf"]
            results["runs"][str(n)] = {"batched": batched, "one_per_stream": single, "throughput_ratio": round(ratio, 2),
                                       "decode_only_ratio": round(decode_ratio, 2)}
    return results


def report(results: dict[str, Any]) -> None:
    print(f"model: {results['model']}; {results['seconds']} s of audio per stream; {results['threads']} ONNX threads")
    print("round = every stream's next 100 ms piece, fed and decoded")
    print("RTF counts everything a session costs (VAD, features, decoding); decode RTF only the recognizer's decode calls")
    print(f"{'streams':>7} {'mode':<15}{'RTF':>8}{'decode RTF':>12}{'stream-s/s':>12}{'round p50 ms':>14}"
          f"{'round p95 ms':>14}{'max ms':>9}")
    for n, run_ in results["runs"].items():
        for mode in ("batched", "one_per_stream"):
            r = run_[mode]
            print(f"{n:>7} {mode:<15}{r['rtf']:>8}{r['decode_rtf']:>12}{r['stream_seconds_per_s']:>12}"
                  f"{r['round_p50_ms']:>14}{r['round_p95_ms']:>14}{r['round_max_ms']:>9}")
        print(f"{'':>7} batched / one per stream (throughput ratio): {run_['throughput_ratio']}"
              f"  (decode calls only: {run_['decode_only_ratio']})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--model", default="medium", help="small, medium, or a sherpa-onnx streaming transducer folder")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--provider", choices=["cpu", "cuda"], default="cpu", help="ONNX Runtime provider")
    parser.add_argument("--device", type=int, default=0, help="with --provider cuda: the GPU (CUDA's number)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    results = main(args)
    report(results)
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))
