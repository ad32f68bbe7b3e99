"""Real speech on CPU, timed: Piper-spoken questions played at real time into 1/4/16 voice
sessions of the make_speech_weights.py config (Moonshine STT, Piper TTS), with the echo LLM and
with the tiny Llama, one run each.

    python scripts/make_speech_weights.py /tmp/speech
    python scripts/bench_speech.py /tmp/speech [--sessions 1 4 16] [--turns 3] [--out FILE]
    python scripts/bench_speech.py /tmp/speech --preemptive [--sessions 1] [--llm echo]

Prints end of speech -> transcript.final (final_ms) and -> first audio sent (tts_start_ms), p50
and p95, per session count and LLM; the STT real-time factor (a 10 s recording transcribed), the
TTS real-time factor, and the TTS time to first audio for a 40-character first chunk. The goal
set for it: end of speech -> first audio p50 under 750 ms at 1 session on 2 cores.
--preemptive runs each LLM twice, [voice] preemptive off and on, and adds the share of
preemptive answers used and the work thrown away (from /metrics).
A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import soxr
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import RATE, Session, free_port, preemptive_counters, summarize, wait_http  # noqa: E402

QUESTION = "What is the weather like in Tokyo today?"
FIRST_CHUNK = "The weather in Tokyo is sunny and warm."  # 40 characters


class SpokenSession(Session):
    async def turns(self, count: int, results: dict[str, list[float]]) -> None:
        async with websockets.connect(self.url, max_size=1 << 24) as ws:
            reader = asyncio.create_task(self._reader(ws))
            await self.wait("session.created")
            mic = asyncio.create_task(self._mic(ws))
            try:
                for _ in range(count):
                    self.talk.set()
                    try:
                        metrics = await self.turn_metrics()
                    except TimeoutError:
                        metrics = None
                    if metrics is None:
                        results["failed"].append(1.0)
                        continue
                    for key in ("final_ms", "tts_start_ms", "llm_first_token_ms"):
                        if metrics.get(key) is not None:
                            results[key].append(metrics[key])
            finally:
                mic.cancel()
                reader.cancel()


    async def turn_metrics(self) -> dict[str, Any] | None:
        """The turn's figures; None when it heard nothing (an empty transcript) or failed."""
        while True:
            ev = await self.wait_any(("turn.metrics", "transcript.final", "error"), timeout=90)
            if ev["type"] == "turn.metrics":
                return ev
            if ev["type"] == "error" or not ev.get("text", "").strip():
                return None

    async def wait_any(self, types: tuple[str, ...], timeout: float) -> dict[str, Any]:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), timeout)
            if ev["type"] in types:
                return ev


def serve(config: Path, llm: str, port: int, preemptive: bool = False) -> Any:
    import subprocess

    env = {**os.environ, "MONOLITH_SERVER__LOG_LEVEL": "warning", "MONOLITH_RAG__ENABLED": "false",
           "MONOLITH_VOICE__PREEMPTIVE": "true" if preemptive else "false"}
    if llm == "echo":
        env["MONOLITH_LLM__PROVIDER"] = '"mock"'
        env["MONOLITH_LLM__MOCK__FIRST_TOKEN_MS"] = "0"  # the echo costs nothing: STT and TTS are measured
        env["MONOLITH_LLM__MOCK__TOKENS_PER_SECOND"] = "1000"
    return subprocess.Popen([sys.executable, "-m", "monolith", "--config", str(config), "--host", "127.0.0.1",
                             "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def speech_of(base: str, text: str) -> np.ndarray:
    """`text` spoken by the server's voice, as 16 kHz float32."""
    pcm = httpx.post(f"{base}/v1/audio/speech", json={"model": "default", "input": text, "response_format": "pcm"},
                     timeout=120).content
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768
    return np.asarray(soxr.resample(audio, 24000, RATE), dtype=np.float32)


def engine_figures(base: str) -> dict[str, float]:
    question = speech_of(base, QUESTION)
    long_text = " ".join([QUESTION, "It is sunny in the morning and cloudy later.", FIRST_CHUNK] * 3)
    started = time.perf_counter()
    recording = speech_of(base, long_text)
    tts_seconds = time.perf_counter() - started
    import io

    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, recording, RATE, format="WAV")
    started = time.perf_counter()
    httpx.post(f"{base}/v1/audio/transcriptions", files={"file": ("r.wav", buffer.getvalue(), "audio/wav")},
               data={"model": "default"}, timeout=120)
    stt_seconds = time.perf_counter() - started
    firsts = []
    for _ in range(5):
        started = time.perf_counter()
        with httpx.stream("POST", f"{base}/v1/audio/speech", json={"model": "default", "input": FIRST_CHUNK,
                                                                   "response_format": "pcm"}, timeout=60) as resp:
            for _ in resp.iter_bytes():
                firsts.append((time.perf_counter() - started) * 1000)
                break
    duration = recording.size / RATE
    return {"question_s": round(question.size / RATE, 2), "recording_s": round(duration, 1),
            "stt_rtf": round(stt_seconds / duration, 3), "tts_rtf": round(tts_seconds / duration, 3),
            "tts_first_audio_40_chars_ms_p50": round(statistics.median(firsts), 1)}


def run(config: Path, llm: str, counts: list[int], turns: int, preemptive: bool = False) -> dict[str, Any]:
    port = free_port()
    proc = serve(config, llm, port, preemptive)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready", timeout=240)
        figures = engine_figures(base) if llm == "echo" and not preemptive else {}
        speech = (speech_of(base, QUESTION) * 32767).astype("<i2").tobytes()
        by_count = {}
        for n in counts:
            results: dict[str, list[float]] = {"final_ms": [], "tts_start_ms": [], "llm_first_token_ms": [], "failed": []}

            async def all_sessions(n: int = n, results: dict[str, list[float]] = results) -> None:
                url = f"ws://127.0.0.1:{port}/v1/voice"
                await asyncio.gather(*(SpokenSession(url, speech).turns(turns, results) for _ in range(n)))

            asyncio.run(all_sessions())
            by_count[str(n)] = {k: summarize(v) for k, v in results.items() if k != "failed"}
            by_count[str(n)]["turns_failed"] = {"n": len(results["failed"])}
        return {"llm": llm, "preemptive": preemptive, "engines": figures, "sessions": by_count,
                "preemptive_counters": preemptive_counters(base)}
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a folder written by scripts/make_speech_weights.py")
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--turns", type=int, default=3)
    parser.add_argument("--llm", nargs="+", choices=["echo", "tiny"], default=["echo", "tiny"])
    parser.add_argument("--preemptive", action="store_true", help="each LLM with [voice] preemptive off, then on")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "bench-results" / "speech.json")
    args = parser.parse_args()
    config = args.dir / "config.toml"
    if "tiny" in args.llm and not (args.dir / "llm" / "tiny-llama").exists():
        import make_speech_weights

        make_speech_weights.make(args.dir, llm="tiny")  # the tiny Llama beside the speech models (echo: env)
    modes = [False, True] if args.preemptive else [False]
    runs = [run(config, llm, args.sessions, args.turns, on) for llm in args.llm for on in modes]
    for r in runs:
        if r["engines"]:
            e = r["engines"]
            print(f"STT RTF {e['stt_rtf']} (Moonshine tiny, {e['recording_s']} s), TTS RTF {e['tts_rtf']} (Piper), "
                  f"TTS first audio for a 40-character chunk p50 {e['tts_first_audio_40_chars_ms_p50']} ms")
    print(f"{'llm':<6}{'preemptive':>11}{'sessions':>9}{'final_ms p50/p95':>20}"
          f"{'first audio (tts_start_ms) p50/p95':>38}{'failed':>8}")
    for r in runs:
        for n, f in r["sessions"].items():
            final = f"{f['final_ms'].get('p50', '-')} / {f['final_ms'].get('p95', '-')}"
            audio = f"{f['tts_start_ms'].get('p50', '-')} / {f['tts_start_ms'].get('p95', '-')}"
            on = "on" if r["preemptive"] else "off"
            print(f"{r['llm']:<6}{on:>11}{n:>9}{final:>20}{audio:>38}{f['turns_failed']['n']:>8}")
        if r["preemptive"]:
            p = r["preemptive_counters"]
            print(f"      preemptive answers: {p['used']:.0f} used, {p['discarded']:.0f} discarded (share used "
                  f"{p['share_used']}); thrown away {p['discarded_llm_chars']:.0f} LLM characters, "
                  f"{p['discarded_tts_seconds']} s of TTS audio")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
