"""Voice latency benchmark: speech played at real time into N concurrent sessions, M turns each.

    python scripts/bench_latency.py [--wav FILE] [--sessions 16] [--turns 20] [--out FILE]
    python scripts/bench_latency.py --preemptive [--revise-every 4]   # preemptive off vs on

Runs the mock providers twice, side by side in one run: in-process (`python -m monolith
--cpu-mock`) and behind loopback HTTP/WebSocket services, one hop per provider (the old
docker-compose topology, scripts/bench_hops.py). Prints p50/p95/max of partial/final/LLM first
token/TTS start, the pipeline overhead (time from final transcript to first audio not spent in
the LLM or TTS), barge-in latency (speech start + barge_in_min_speech_ms -> response.cancelled),
the server's event-loop lag, and the in-process/hop ratios. Results go to a JSON file.
With --preemptive it runs in-process twice instead, [voice] preemptive off and on, and prints end
of speech -> first audio for both, the share of preemptive answers used and the work thrown away
(from /metrics); --revise-every N makes the mock recognizer's text at the pause differ from its
final every N-th turn (0: never), so that some preemptive answers are thrown away.
A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import socket
import statistics
import subprocess
import sys
import time
import wave
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

REPO = Path(__file__).resolve().parent.parent
RATE = 16000
FRAME_S = 0.02
STAGES = ("partial_ms", "final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms")
FIGURES = (*STAGES, "end_of_speech_to_first_audio_ms", "provider_ms", "barge_in_ms")
BARGE_IN_MIN_MS = 200.0  # the server's voice.barge_in_min_speech_ms default
LONG_ANSWER = "This answer runs long enough to be interrupted by the user. " * 6


def generated_speech(seconds: float = 1.2) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t) ** 2
    wave_ = sum(np.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate((160.0, 320.0, 480.0)))
    return (0.3 * envelope * wave_ / 1.8).astype(np.float32)


def load_wav(path: Path) -> np.ndarray:
    with wave.open(str(path)) as w:
        if w.getsampwidth() != 2:
            raise SystemExit(f"{path}: only PCM16 WAV files are supported")
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float32) / 32768
        if w.getnchannels() > 1:
            data = data.reshape(-1, w.getnchannels()).mean(axis=1)
        if w.getframerate() != RATE:
            import soxr

            data = soxr.resample(data, w.getframerate(), RATE)
    return data


def pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes()


class Session:
    """One client: streams audio at real time (speech, then silence), records events."""

    def __init__(self, url: str, speech: bytes) -> None:
        self.url, self.speech = url, speech
        self.frame = int(RATE * FRAME_S) * 2
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.talk = asyncio.Event()

    async def _reader(self, ws: Any) -> None:
        try:
            async for message in ws:
                if isinstance(message, str):
                    ev = json.loads(message)
                    ev["_t"] = time.perf_counter()
                    await self.queue.put(ev)
        except websockets.ConnectionClosed:
            await self.queue.put({"type": "error", "error": {"code": "connection_closed"}, "_t": time.perf_counter()})

    async def _mic(self, ws: Any) -> None:
        silence = bytes(self.frame)
        next_at = time.perf_counter()
        while True:
            if self.talk.is_set():
                self.talk.clear()
                self.speech_sent_at = time.perf_counter()
                for i in range(0, len(self.speech), self.frame):
                    await ws.send(self.speech[i : i + self.frame])
                    next_at += FRAME_S
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
            await ws.send(silence)
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def wait(self, type_: str, timeout: float = 30) -> dict[str, Any]:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), timeout)
            if ev["type"] == type_:
                return ev

    async def run(self, turns: int, results: dict[str, list[float]]) -> None:
        async with websockets.connect(self.url, max_size=1 << 24) as ws:
            reader = asyncio.create_task(self._reader(ws))
            await self.wait("session.created")
            mic = asyncio.create_task(self._mic(ws))
            try:
                for _ in range(turns):
                    self.talk.set()
                    metrics = await self.wait("turn.metrics")
                    for key in (*STAGES, "end_of_speech_to_first_audio_ms", "provider_ms"):
                        if metrics.get(key) is not None:
                            results[key].append(metrics[key])
                    results["preemptive_turns"].append(1.0 if metrics.get("preemptive") else 0.0)
                # barge-in trials: a long typed answer, interrupted by speech once audio plays
                for _ in range(max(1, turns // 4)):
                    await ws.send(json.dumps({"type": "input_text", "text": LONG_ANSWER}))
                    await self.wait("response.audio.started")
                    self.talk.set()
                    await asyncio.sleep(0)
                    cancelled = await self.wait("response.cancelled")
                    # frame k goes out at k*20 ms carrying audio up to (k+1)*20 ms: the server
                    # holds barge_in_min of speech one frame before that much wall time passed
                    enough_speech_at = self.speech_sent_at + BARGE_IN_MIN_MS / 1000 - FRAME_S
                    results["barge_in_ms"].append((cancelled["_t"] - enough_speech_at) * 1000)
                    await self.wait("turn.metrics")  # the interrupting speech becomes the next turn
            finally:
                mic.cancel()
                reader.cancel()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(args: list[str], extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MONOLITH_SERVER__LOG_LEVEL": "warning", **(extra_env or {})}
    return subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def loop_lag(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("monolith_event_loop_lag_max_seconds "):
            values["max_ms"] = float(line.split()[1]) * 1000
        elif line.startswith('monolith_event_loop_lag_seconds_bucket{le="0.02"}'):
            values["under_20ms"] = float(line.split()[1])
        elif line.startswith("monolith_event_loop_lag_seconds_count"):
            values["count"] = float(line.split()[1])
    return values


def counter(text: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples in /metrics text whose labels include `labels`."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            if all(f'{k}="{v}"' in line for k, v in labels.items()):
                total += float(line.rsplit(" ", 1)[1])
    return total


def preemptive_counters(base: str) -> dict[str, float]:
    text = httpx.get(f"{base}/metrics").text
    used = counter(text, "monolith_preemptive_responses_total", outcome="used")
    discarded = counter(text, "monolith_preemptive_responses_total", outcome="discarded")
    return {
        "used": used, "discarded": discarded,
        "share_used": round(used / (used + discarded), 3) if used + discarded else 0.0,
        "discarded_llm_chars": counter(text, "monolith_preemptive_discarded_llm_chars_total"),
        "discarded_tts_seconds": round(counter(text, "monolith_preemptive_discarded_tts_seconds_total"), 2),
        "turns_ended": counter(text, "monolith_turns_ended_total"),
        "turns_ended_early": counter(text, "monolith_turns_ended_early_total"),
    }


def summarize(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"n": len(values), "p50": round(statistics.median(ordered), 2), "p95": round(p95, 2), "max": round(ordered[-1], 2)}


async def drive(url: str, sessions: int, turns: int, speech: bytes) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {k: [] for k in (*FIGURES, "preemptive_turns")}
    await asyncio.gather(*(Session(url, speech).run(turns, results) for _ in range(sessions)))
    return results


def run_topology(name: str, sessions: int, turns: int, speech: bytes, env: dict[str, str] | None = None) -> dict[str, Any]:
    procs = []
    try:
        port = free_port()
        if name.startswith("in-process"):
            procs.append(start(["-m", "monolith", "--cpu-mock", "--host", "127.0.0.1", "--port", str(port)], env))
        else:
            pport = free_port()
            procs.append(start(["scripts/bench_hops.py", "providers", str(pport)]))
            wait_http(f"http://127.0.0.1:{pport}/llm")
            procs.append(start(["scripts/bench_hops.py", "monolith", str(port), f"http://127.0.0.1:{pport}"]))
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/ready")
        started = time.perf_counter()
        raw = asyncio.run(drive(f"ws://127.0.0.1:{port}/v1/voice", sessions, turns, speech))
        lag = loop_lag(base)
        return {
            "topology": name, "seconds": round(time.perf_counter() - started, 1),
            "figures": {k: summarize(v) for k, v in raw.items() if k != "preemptive_turns"},
            "preemptive_turns": int(sum(raw["preemptive_turns"])), "turns": len(raw["preemptive_turns"]),
            "preemptive": preemptive_counters(base),
            "event_loop_lag": {
                "max_ms": round(lag.get("max_ms", 0.0), 2),
                "share_under_20ms": round(lag.get("under_20ms", 0) / max(lag.get("count", 1), 1), 4),
            },
        }
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wav", type=Path, help="speech to play (PCM16 WAV); default: a generated voiced signal")
    parser.add_argument("--sessions", type=int, default=16)
    parser.add_argument("--turns", type=int, default=20, help="turns per session (the old runbook measured 20 samples)")
    parser.add_argument("--topology", choices=["both", "in-process", "hops"], default="both")
    parser.add_argument("--tts-batch", type=int, nargs="+", default=None, metavar="N",
                        help="instead of the topologies: in-process with [tts] max_batch = each N, side by side "
                             "(with --preemptive: the one max_batch of both runs)")
    parser.add_argument("--preemptive", action="store_true",
                        help="instead of the topologies: in-process with [voice] preemptive off, then on")
    parser.add_argument("--revise-every", type=int, default=0, metavar="N",
                        help="with --preemptive: the mock STT's text at a pause differs from its final every N-th turn")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "latency.json")
    args = parser.parse_args()
    speech = pcm16(load_wav(args.wav) if args.wav else generated_speech())
    if args.preemptive:
        env = {"MONOLITH_STT__MOCK__PAUSE_TEXT_DIFFERS_EVERY": str(args.revise_every)}
        if args.tts_batch:  # one [tts] max_batch for both runs
            env["MONOLITH_TTS__MAX_BATCH"] = str(args.tts_batch[0])
        runs = [run_topology(f"in-process, preemptive {state}", args.sessions, args.turns, speech,
                             {"MONOLITH_VOICE__PREEMPTIVE": flag, **env})
                for state, flag in (("off", "false"), ("on", "true"))]
    elif args.tts_batch:
        runs = [run_topology(f"in-process, tts batch {n}", args.sessions, args.turns, speech,
                             {"MONOLITH_TTS__MAX_BATCH": str(n)}) for n in args.tts_batch]
    else:
        names = ["in-process", "hops"] if args.topology == "both" else [args.topology]
        runs = [run_topology(n, args.sessions, args.turns, speech) for n in names]
    print(f"{args.sessions} sessions x {args.turns} turns, mock providers, speech {len(speech) / 2 / RATE:.2f} s")
    width = max(30, *(len(r["topology"]) + 14 for r in runs))  # a column wider than its longest name
    header = f"{'figure (ms)':<22}" + "".join(f"{r['topology'] + ' p50/p95/max':>{width}}" for r in runs)
    print(header)
    for key in FIGURES:
        row = f"{key.replace('end_of_speech_to_first_audio_ms', 'speech_end->audio_ms'):<22}"
        for r in runs:
            f = r["figures"][key]
            row += f"{(str(f['p50']) + ' / ' + str(f['p95']) + ' / ' + str(f['max'])) if f['n'] else '-':>{width}}"
        print(row)
    for r in runs:
        lag = r["event_loop_lag"]
        print(f"event loop lag ({r['topology']}): max {lag['max_ms']} ms, {lag['share_under_20ms'] * 100:.2f}% of 10 ms ticks under 20 ms late")
    if args.preemptive:
        off, on = (r["figures"]["end_of_speech_to_first_audio_ms"] for r in runs)
        p = runs[1]["preemptive"]
        print(f"end of speech -> first audio p50/p95: off {off.get('p50')} / {off.get('p95')} ms, "
              f"on {on.get('p50')} / {on.get('p95')} ms")
        print(f"preemptive: {runs[1]['preemptive_turns']} of {runs[1]['turns']} turns answered preemptively; "
              f"{p['used']:.0f} used, {p['discarded']:.0f} discarded (share used {p['share_used']}); thrown away: "
              f"{p['discarded_llm_chars']:.0f} LLM characters, {p['discarded_tts_seconds']} s of TTS audio")
        if off.get("n") and on.get("n"):
            runs.append({"first_audio_p50_saved_ms": round(off["p50"] - on["p50"], 1),
                         "first_audio_p95_saved_ms": round(off["p95"] - on["p95"], 1)})
            print(f"saved: p50 {runs[-1]['first_audio_p50_saved_ms']} ms, p95 {runs[-1]['first_audio_p95_saved_ms']} ms")
    elif args.tts_batch and len(runs) >= 2:
        base, best = runs[0]["figures"]["tts_start_ms"], runs[-1]["figures"]["tts_start_ms"]
        if base.get("n") and best.get("n"):
            ratio = round(base["p95"] / best["p95"], 2)
            print(f"tts_start_ms p95, tts batch {args.tts_batch[0]} / batch {args.tts_batch[-1]}: {ratio}")
            runs.append({"tts_start_p95_ratio_unbatched_over_batched": ratio})
    elif len(runs) == 2:
        ratios: dict[str, dict[str, float]] = {"p50": {}, "p95": {}}
        for q in ("p50", "p95"):
            for key in ("final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms", "barge_in_ms"):
                a, b = runs[0]["figures"][key], runs[1]["figures"][key]
                if a.get("n") and b.get("n") and b[q]:
                    ratios[q][key] = round(a[q] / b[q], 3)
            print(f"in-process / hops ({q} ratio): " + ", ".join(f"{k} {v}" for k, v in ratios[q].items()))
        runs.append({"ratios_inprocess_over_hops": ratios})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
