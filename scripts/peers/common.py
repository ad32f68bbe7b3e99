"""Shared by both sides of scripts/bench_peers.py: the work (monolith's config values), the audio,
the per-turn record, summaries, a loop-lag ticker and process figures.

numpy and the standard library only: the Pipecat side imports it from its own venv."""

from __future__ import annotations

import asyncio
import json
import math
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

RATE = 16000  # voice.input_sample_rate: both sides get 16 kHz PCM16
FRAME_S = 0.02  # the microphone sends 20 ms frames at real time
FRAME_SAMPLES = int(RATE * FRAME_S)
SILENCE_FRAME = bytes(FRAME_SAMPLES * 2)
LONG_ANSWER = "This answer runs long enough to be interrupted by the user. " * 6
LAG_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 250, 500, 1000)  # monolith_event_loop_lag_seconds' buckets


@dataclass(frozen=True)
class Work:
    """What both sides run, read by the driver from monolith's config (config.toml with the
    server's environment) and handed to the Pipecat side as JSON."""

    llm_first_token_ms: float  # [llm.mock]
    llm_tokens_per_second: float
    llm_max_tokens: int  # [llm] max_tokens
    stt_decode_delay_ms: float  # [stt.mock]
    stt_transcript: str
    stt_energy_threshold: float
    vad_min_speech_ms: float  # [stt] vad_min_speech_ms
    endpoint_silence_ms: float  # min([stt] vad_silence_ms, endpoint_trailing_silence_ms)
    barge_in_min_speech_ms: float  # [voice]
    tts_first_chunk_ms: float  # [tts.mock]
    tts_real_time_factor: float
    tts_batch_cost_exponent: float
    tts_max_batch: int  # [tts] max_batch
    tts_sample_rate: int  # [tts] output_sample_rate
    system_prompt: str  # [voice]

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> Work:
        return cls(**json.loads(text))


def generated_speech(seconds: float) -> np.ndarray:
    """bench_latency.py's voiced signal: every 20 ms frame is over the energy threshold."""
    t = np.arange(int(seconds * RATE)) / RATE
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 3 * t) ** 2
    wave_ = sum(np.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate((160.0, 320.0, 480.0)))
    return np.asarray(0.3 * envelope * wave_ / 1.8, dtype=np.float32)


def rms(frame: bytes) -> float:
    x = np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32768.0
    return float(np.sqrt(np.mean(np.square(x)))) if x.size else 0.0


def speech_frames(seconds: float, threshold: float) -> list[bytes]:
    """The clip as whole 20 ms PCM16 frames, each voiced: the last one sent is the end of speech."""
    data = (np.clip(generated_speech(seconds), -1, 1) * 32767).astype("<i2").tobytes()
    step = FRAME_SAMPLES * 2
    frames = [data[i : i + step] for i in range(0, len(data) - step + 1, step)]
    quiet = [i for i, f in enumerate(frames) if rms(f) < threshold]
    if quiet:
        raise ValueError(f"frames {quiet} of the clip are under the energy threshold {threshold}")
    return frames


def barge_ref_frame(work: Work) -> int:
    """Frame k (0-based) completes (k + 1) x 20 ms of speech: the one that makes a barge-in."""
    return max(0, math.ceil(work.barge_in_min_speech_ms / (FRAME_S * 1000)) - 1)


def summarize(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"n": 0}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, math.ceil(0.95 * len(ordered)) - 1)]
    return {"n": len(values), "p50": round(statistics.median(ordered), 2), "p95": round(p95, 2),
            "max": round(ordered[-1], 2), "mean": round(statistics.fmean(ordered), 2)}


@dataclass
class TurnRecord:
    """One voice turn ("turn") or one barge-in trial ("barge"), on the driver's clock."""

    kind: str
    e2e_ms: float | None = None  # last voiced frame sent -> first audio of the answer out
    provider_ms: float | None = None  # LLM to its first speakable chunk + TTS to its first audio
    stt_on_path_ms: float = 0.0  # STT decode time between the endpoint and the final transcript
    barge_in_ms: float | None = None  # frame completing the barge-in speech sent -> response stopped
    extra: dict[str, Any] = field(default_factory=dict)

    def orchestration_ms(self, endpoint_silence_ms: float) -> float | None:
        """End of speech -> first audio, less the silence that ends the turn, the STT decode on
        the critical path and the time inside LLM and TTS: what the framework itself adds."""
        if self.e2e_ms is None or self.provider_ms is None:
            return None
        return self.e2e_ms - endpoint_silence_ms - self.stt_on_path_ms - self.provider_ms


def figures(records: list[TurnRecord], endpoint_silence_ms: float) -> dict[str, dict[str, float | int]]:
    turns = [r for r in records if r.kind == "turn"]
    barges = [r for r in records if r.kind == "barge"]
    return {
        "e2e_ms": summarize([r.e2e_ms for r in turns if r.e2e_ms is not None]),
        "provider_ms": summarize([r.provider_ms for r in turns if r.provider_ms is not None]),
        "orchestration_ms": summarize([x for r in turns if (x := r.orchestration_ms(endpoint_silence_ms)) is not None]),
        "barge_in_ms": summarize([r.barge_in_ms for r in barges if r.barge_in_ms is not None]),
    }


def bucket_of(lag_ms: float) -> float | None:
    """The histogram bucket bound holding `lag_ms` (monolith's buckets; None: over the last)."""
    return next((float(b) for b in LAG_BUCKETS_MS if lag_ms <= b), None)


class LagTicker:
    """A 10 ms ticker recording how late each wake-up came: monolith.looplag's rule."""

    def __init__(self, tick_s: float = 0.01) -> None:
        self.tick_s = tick_s
        self.lags_ms: list[float] = []
        self.late: list[tuple[float, float]] = []  # (seconds since start, lag ms) of ticks over 50 ms late
        self.task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        began = time.perf_counter()
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.tick_s)
            lag_ms = max(0.0, time.perf_counter() - start - self.tick_s) * 1000
            self.lags_ms.append(lag_ms)
            if lag_ms > 50:
                self.late.append((round(start - began, 2), round(lag_ms, 1)))

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    def stop(self) -> dict[str, Any]:
        if self.task:
            self.task.cancel()
        ordered = sorted(self.lags_ms)
        if not ordered:
            return {"ticks": 0}

        def at(q: float) -> float:
            return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]

        return {
            "ticks": len(ordered), "p50_bucket_ms": bucket_of(at(0.5)), "p99_bucket_ms": bucket_of(at(0.99)),
            "max_bucket_ms": bucket_of(ordered[-1]), "max_ms": round(ordered[-1], 2),
            "share_under_20ms": round(sum(1 for x in ordered if x < 20) / len(ordered), 4),
            "over_50ms": self.late[:20],
        }


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """VmRSS and VmHWM (peak) in kB, from /proc."""
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value = line.split(":", 1)
                out[key] = int(value.split()[0])
    return out


def proc_cpu_s(pid: int | str = "self") -> float:
    """User + system CPU seconds of a process, all its threads, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reset_peak_rss(pid: int | str = "self") -> bool:
    """VmHWM back to the current RSS (Linux 4.0+), so the peak is the measured run's."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def process_figures(*, cpu_s: float, wall_s: float, idle_rss_kb: int, peak_rss_kb: int, sessions: int) -> dict[str, float]:
    return {
        "cpu_s": round(cpu_s, 3),
        "cpu_s_per_session": round(cpu_s / sessions, 3),
        "cpu_share_of_one_core": round(cpu_s / wall_s, 4) if wall_s else 0.0,
        "idle_rss_mb": round(idle_rss_kb / 1024, 1),
        "peak_rss_mb": round(peak_rss_kb / 1024, 1),
        "peak_mb_per_session": round(max(0, peak_rss_kb - idle_rss_kb) / 1024 / sessions, 3),
    }
