"""Side by side with a peer: the same voice turns through monolith and through a Pipecat pipeline.

    python scripts/bench_peers.py [--sessions 1 16 64] [--turns 10] [--barge 3] [--clip-s 1.5]
                                  [--out bench-results/peers.json]

Both sides run the same paced mock providers with the values of monolith's [llm.mock], [stt.mock]
and [tts.mock] (read here with monolith.config, handed to the Pipecat side as JSON): monolith as
`python -m monolith --cpu-mock`, driven over /v1/voice; Pipecat (pipecat-ai, pinned in
scripts/peers/requirements-pipecat.txt, in its own venv under .cache/bench-peers-venv, created on
first use) as one pipeline per session in one process, monolith's mock LLM and TTS wrapped as
Pipecat services (scripts/peers/pipecat_side.py). Each session speaks `--turns` times (speech,
then silence, 20 ms frames at real time), then interrupts `--barge` long answers. Each TTS
chunk gets its own capacity on both sides: monolith's [tts] max_batch = sessions with
[tts.mock] batch_cost_exponent = 0, as each Pipecat session has its own TTS service.

Printed side by side for each session count, with monolith/pipecat ratios from the same run: end
of speech -> first audio, the orchestration overhead (that less the endpoint silence, the STT
decode on the critical path and the time inside LLM and TTS), barge-in latency, event-loop lag,
CPU seconds and peak memory. A benchmark, not a test: it prints figures and judges nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "scripts")]  # this tree's monolith (the server runs it) and peers/

from bench_latency import free_port, wait_http  # noqa: E402
from peers.common import (  # noqa: E402
    FRAME_S,
    LONG_ANSWER,
    SILENCE_FRAME,
    TurnRecord,
    Work,
    barge_ref_frame,
    figures,
    proc_cpu_s,
    proc_status,
    process_figures,
    reset_peak_rss,
    speech_frames,
    summarize,
)

from monolith.config import Settings, load_settings  # noqa: E402

PEERS = REPO / "scripts" / "peers"
REQUIREMENTS = PEERS / "requirements-pipecat.txt"
VENV = REPO / ".cache" / "bench-peers-venv"
MAX_SESSIONS = 64  # [tts] max_batch's bound: beyond it monolith's TTS would queue and Pipecat's not


# --- the Pipecat venv ----------------------------------------------------------------------------


def pipecat_python(venv: Path = VENV) -> Path:
    """The venv's python, created (or rebuilt when the requirements changed) on first use."""
    python = venv / "bin" / "python"
    stamp = venv / ".requirements.sha256"
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == digest:
        return python
    print(f"creating {venv} (pipecat-ai from {REQUIREMENTS.relative_to(REPO)})...", file=sys.stderr, flush=True)
    steps = [[sys.executable, "-m", "venv", "--clear", str(venv)],
             [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q", "-r", str(REQUIREMENTS)]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True)
        if done.returncode:
            raise SystemExit(f"{' '.join(step)} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
    stamp.write_text(digest)
    return python


# --- the work: monolith's config, as the server will read it ---------------------------------


def server_env(sessions: int) -> dict[str, str]:
    """The monolith server's environment: a TTS slot per session, each costing what one costs."""
    return {
        **os.environ,
        "MONOLITH_SERVER__LOG_LEVEL": "warning",
        "MONOLITH_VOICE__MAX_SESSIONS": str(max(MAX_SESSIONS, sessions + 1)),
        "MONOLITH_TTS__MAX_BATCH": str(sessions),
        "MONOLITH_TTS__MOCK__BATCH_COST_EXPONENT": "0.0",
    }


def work_of(settings: Settings) -> Work:
    stt = settings.stt
    return Work(
        llm_first_token_ms=settings.llm.mock.first_token_ms,
        llm_tokens_per_second=settings.llm.mock.tokens_per_second,
        llm_max_tokens=settings.llm.max_tokens,
        stt_decode_delay_ms=stt.mock.decode_delay_ms,
        stt_transcript=stt.mock.transcript,
        stt_energy_threshold=stt.mock.energy_threshold,
        vad_min_speech_ms=stt.vad_min_speech_ms,
        endpoint_silence_ms=min(stt.vad_silence_ms, stt.endpoint_trailing_silence_ms),  # the mock STT's rule
        barge_in_min_speech_ms=settings.voice.barge_in_min_speech_ms,
        tts_first_chunk_ms=settings.tts.mock.first_chunk_ms,
        tts_real_time_factor=settings.tts.mock.real_time_factor,
        tts_batch_cost_exponent=settings.tts.mock.batch_cost_exponent,
        tts_max_batch=settings.tts.max_batch,
        tts_sample_rate=settings.tts.output_sample_rate,
        system_prompt=settings.voice.system_prompt,
    )


# --- the monolith side: a client per session over /v1/voice -------------------------------------


class VoiceClient:
    """One /v1/voice session: a microphone at real time, and the answers' timing."""

    def __init__(self, url: str, work: Work, frames: list[bytes], records: list[TurnRecord], delay_s: float) -> None:
        self.url, self.work, self.frames, self.records, self.delay_s = url, work, frames, records, delay_s
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.talk = asyncio.Event()
        self.first_audio_t: float | None = None
        self.audio_bytes = 0
        self.eos_t = 0.0  # the last voiced frame sent
        self.barge_ref_t = 0.0  # the frame completing barge_in_min_speech_ms of speech sent

    async def _reader(self, ws: Any) -> None:
        async for message in ws:
            t = time.perf_counter()
            if isinstance(message, bytes):
                self.audio_bytes += len(message)
                if self.first_audio_t is None:
                    self.first_audio_t = t
                continue
            ev = json.loads(message)
            if ev["type"] == "response.started":
                self.first_audio_t, self.audio_bytes = None, 0
            ev["_t"], ev["_first_audio"] = t, self.first_audio_t
            ev["_audio_s"] = self.audio_bytes / 2 / self.work.tts_sample_rate
            self.queue.put_nowait(ev)

    async def _mic(self, ws: Any) -> None:
        ref = barge_ref_frame(self.work)
        next_at = t = time.perf_counter()
        while True:
            if self.talk.is_set():
                self.talk.clear()
                for i, frame in enumerate(self.frames):
                    await ws.send(frame)
                    t = time.perf_counter()
                    if i == ref:
                        self.barge_ref_t = t
                    next_at += FRAME_S
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                self.eos_t = t
            await ws.send(SILENCE_FRAME)
            next_at += FRAME_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def wait(self, type_: str, timeout: float = 60) -> dict[str, Any]:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), timeout)
            if ev["type"] == type_:
                return ev
            if ev["type"] == "error":
                raise RuntimeError(f"server error: {ev.get('error')}")

    @staticmethod
    async def played(ev: dict[str, Any]) -> None:
        """A listener speaks again once the answer has played: first audio + its duration."""
        if ev.get("_first_audio") is not None:
            await asyncio.sleep(max(0.0, ev["_first_audio"] + ev["_audio_s"] - time.perf_counter()))

    async def run(self, turns: int, barge: int, barge_after_s: float) -> None:
        await asyncio.sleep(self.delay_s)
        async with websockets.connect(self.url, max_size=1 << 24) as ws:
            reader = asyncio.create_task(self._reader(ws))
            await self.wait("session.created")
            mic = asyncio.create_task(self._mic(ws))
            try:
                for _ in range(turns):
                    self.talk.set()
                    m = await self.wait("turn.metrics")
                    if m["_first_audio"] is None:
                        raise RuntimeError("a turn ended without audio")
                    self.records.append(TurnRecord(
                        "turn", e2e_ms=(m["_first_audio"] - self.eos_t) * 1000, provider_ms=m.get("provider_ms"),
                        stt_on_path_ms=self.work.stt_decode_delay_ms,  # monolith decodes after its endpoint
                        extra={k: m.get(k) for k in ("final_ms", "llm_first_token_ms", "tts_start_ms",
                                                     "pipeline_overhead_ms")}))
                    await self.played(m)
                for _ in range(barge):
                    await ws.send(json.dumps({"type": "input_text", "text": LONG_ANSWER}))
                    await self.wait("response.audio.started")
                    while self.first_audio_t is None:
                        await asyncio.sleep(0.001)
                    await asyncio.sleep(max(0.0, self.first_audio_t + barge_after_s - time.perf_counter()))
                    self.talk.set()
                    cancelled = await self.wait("response.cancelled")
                    self.records.append(TurnRecord("barge", barge_in_ms=(cancelled["_t"] - self.barge_ref_t) * 1000))
                    await self.played(await self.wait("turn.metrics"))  # the interrupting speech is the next turn
            finally:
                for task in (mic, reader):
                    task.cancel()
                await asyncio.gather(mic, reader, return_exceptions=True)


async def drive(url: str, work: Work, frames: list[bytes], args: argparse.Namespace, sessions: int,
                records: list[TurnRecord], turns: int, barge: int) -> list[str]:
    clients = [VoiceClient(url, work, frames, records, args.stagger_s * i / sessions) for i in range(sessions)]
    outcomes = await asyncio.gather(*(c.run(turns, barge, args.barge_after_s) for c in clients),
                                    return_exceptions=True)
    return [f"{type(o).__name__}: {o}" for o in outcomes if isinstance(o, BaseException)]


def lag_histogram(base: str) -> dict[str, float]:
    """monolith_event_loop_lag_seconds (cumulative buckets, count) and its max, from /metrics."""
    out: dict[str, float] = {}
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith("monolith_event_loop_lag_seconds_bucket"):
            out[line.split('le="', 1)[1].split('"', 1)[0]] = float(line.split()[-1])
        elif line.startswith("monolith_event_loop_lag_seconds_count"):
            out["count"] = float(line.split()[-1])
        elif line.startswith("monolith_event_loop_lag_max_seconds "):
            out["max"] = float(line.split()[-1])
    return out


def lag_over_run(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """The histogram's difference over the run: the bucket bounds holding p50, p99 and every tick."""
    n = after["count"] - before["count"]
    bounds = sorted((float(k), after[k] - before.get(k, 0.0)) for k in after if k not in ("count", "max", "+Inf"))

    def bound(q: float) -> float | None:
        return next((le * 1000 for le, c in bounds if c >= q * n), None)

    cum = dict(bounds)
    return {
        "ticks": int(n), "p50_bucket_ms": bound(0.5), "p99_bucket_ms": bound(0.99), "max_bucket_ms": bound(1.0),
        # the gauge is the worst since start: it names the run's max only when the run raised it
        "max_ms": round(after["max"] * 1000, 2) if after.get("max", 0) > before.get("max", 0) else None,
        "share_under_20ms": round(cum.get(0.02, 0.0) / n, 4) if n else None,
    }


def run_monolith(sessions: int, work: Work, frames: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    base, url = f"http://127.0.0.1:{port}", f"ws://127.0.0.1:{port}/v1/voice"
    proc = subprocess.Popen(
        [sys.executable, "-m", "monolith", "--cpu-mock", "--config", str(REPO / "config.toml"),
         "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=server_env(sessions))
    try:
        wait_http(f"{base}/ready", timeout=60)
        asyncio.run(drive(url, work, frames, args, 1, [], 1, 1))  # warm-up: a turn and a barge-in, not measured
        time.sleep(0.5)
        idle_rss_kb = proc_status(proc.pid)["VmRSS"]
        reset_peak_rss(proc.pid)
        lag0 = lag_histogram(base)
        cpu0, client0, wall0 = proc_cpu_s(proc.pid), proc_cpu_s(), time.perf_counter()
        records: list[TurnRecord] = []
        errors = asyncio.run(drive(url, work, frames, args, sessions, records, args.turns, args.barge))
        cpu1, client1, wall1 = proc_cpu_s(proc.pid), proc_cpu_s(), time.perf_counter()
        lag1 = lag_histogram(base)
        peak_rss_kb = proc_status(proc.pid)["VmHWM"]
    finally:
        proc.terminate()
        proc.wait(10)
    turns = [r for r in records if r.kind == "turn"]
    return {
        "system": "monolith", "sessions": sessions, "wall_s": round(wall1 - wall0, 2),
        "completed": {"turns": len(turns), "barge_ins": sum(r.kind == "barge" for r in records)},
        "errors": errors[:5],
        "settings": {"tts.max_batch": sessions, "tts.mock.batch_cost_exponent": 0.0, "server.log_level": "warning"},
        "figures": figures(records, work.endpoint_silence_ms),
        "server_turn_metrics": {k: summarize([r.extra[k] for r in turns if r.extra.get(k) is not None])
                                for k in ("final_ms", "llm_first_token_ms", "tts_start_ms", "pipeline_overhead_ms")},
        "event_loop_lag": lag_over_run(lag0, lag1),
        "process": {**process_figures(cpu_s=cpu1 - cpu0, wall_s=wall1 - wall0, idle_rss_kb=idle_rss_kb,
                                      peak_rss_kb=peak_rss_kb, sessions=sessions),
                    "client_cpu_s": round(client1 - client0, 3),
                    "note": "the server process; the clients run in the benchmark's process (client_cpu_s)"},
    }


# --- the Pipecat side: scripts/peers/pipecat_side.py in its venv --------------------------------


def run_pipecat(python: Path, sessions: int, work: Work, args: argparse.Namespace) -> dict[str, Any]:
    cmd = [str(python), str(PEERS / "pipecat_side.py"), "--work", work.to_json(), "--sessions", str(sessions),
           "--turns", str(args.turns), "--barge", str(args.barge), "--barge-after-s", str(args.barge_after_s),
           "--clip-s", str(args.clip_s), "--stagger-s", str(args.stagger_s), "--feeder-s", str(args.feeder_s),
           *args.pipecat_arg]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "scripts")]),
           "PIPECAT_LOG_LEVEL": os.environ.get("PIPECAT_LOG_LEVEL", "ERROR")}
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env=env, timeout=args.timeout_s)
    if done.returncode:
        raise SystemExit(f"the Pipecat side failed ({done.returncode}):\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the table ------------------------------------------------------------------------------------


def _fig(run: dict[str, Any], key: str, q: str) -> float | None:
    f = run["figures"].get(key, {})
    return f.get(q) if f.get("n") else None


def _lag(run: dict[str, Any], key: str) -> float | str | None:
    """A bucket bound of the run's event-loop lag (the same buckets both sides); over the last one: >1000."""
    lag = run["event_loop_lag"]
    return (lag.get(key) or ">1000") if lag.get("ticks") else None


ROWS: list[tuple[str, Any]] = [
    ("end of speech -> first audio p50 (ms)", lambda r: _fig(r, "e2e_ms", "p50")),
    ("end of speech -> first audio p95 (ms)", lambda r: _fig(r, "e2e_ms", "p95")),
    ("time inside providers p50 (ms)", lambda r: _fig(r, "provider_ms", "p50")),
    ("orchestration overhead p50 (ms)", lambda r: _fig(r, "orchestration_ms", "p50")),
    ("orchestration overhead p95 (ms)", lambda r: _fig(r, "orchestration_ms", "p95")),
    ("barge-in p50 (ms)", lambda r: _fig(r, "barge_in_ms", "p50")),
    ("barge-in p95 (ms)", lambda r: _fig(r, "barge_in_ms", "p95")),
    ("event-loop lag p99, bucket (ms)", lambda r: _lag(r, "p99_bucket_ms")),
    ("event-loop lag max, bucket (ms)", lambda r: _lag(r, "max_bucket_ms")),
    ("CPU s per session", lambda r: r["process"]["cpu_s_per_session"]),
    ("CPU, share of one core", lambda r: r["process"]["cpu_share_of_one_core"]),
    ("  of which feeding audio in-process", lambda r: (r["process"].get("feeder_only") or {}).get("cpu_share_of_one_core")),
    ("peak RSS (MB)", lambda r: r["process"]["peak_rss_mb"]),
    ("peak RSS per session (MB)", lambda r: r["process"]["peak_mb_per_session"]),
]
HEADER = f"{'figure':<40}{'monolith':>11}{'pipecat':>11}{'monolith/pipecat':>18}"


def side_by_side(title: str, mono: dict[str, Any], pipe: dict[str, Any], turns: int, barge: int) -> tuple[str, dict[str, float]]:
    sessions = mono["sessions"]
    lines = [title, HEADER]
    for name, key, each in (("turns completed", "turns", turns), ("barge-ins completed", "barge_ins", barge)):
        done = [f"{r['completed'][key]}/{each * sessions}" for r in (mono, pipe)]
        lines.append(f"{name:<40}{done[0]:>11}{done[1]:>11}")
    ratios: dict[str, float] = {}
    for name, get in ROWS:
        a, b = get(mono), get(pipe)
        ratio = round(a / b, 2) if isinstance(a, int | float) and isinstance(b, int | float) and b else None
        if ratio is not None:
            ratios[name] = ratio
        lines.append(f"{name:<40}{'-' if a is None else a:>11}{'-' if b is None else b:>11}"
                     f"{'-' if ratio is None else ratio:>18}")
    for side in (mono, pipe):
        for error in side["errors"]:
            lines.append(f"  {side['system']} error: {error}")
    return "\n".join(lines), ratios


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 16, 64], metavar="N")
    parser.add_argument("--turns", type=int, default=10, help="voice turns per session")
    parser.add_argument("--barge", type=int, default=3, help="then this many barge-in trials per session")
    parser.add_argument("--clip-s", type=float, default=1.5, help="seconds of speech per turn (a generated voiced clip)")
    parser.add_argument("--barge-after-s", type=float, default=0.25, help="barge in this long after first audio")
    parser.add_argument("--stagger-s", type=float, default=4.0, help="spread session starts over this many seconds")
    parser.add_argument("--feeder-s", type=float, default=5.0,
                        help="Pipecat side: then time its in-process microphones alone this long (0: not)")
    parser.add_argument("--pipecat-arg", action="append", default=[], metavar="ARG",
                        help="pass ARG to scripts/peers/pipecat_side.py (e.g. --pipecat-arg=--layout=aggregator)")
    parser.add_argument("--pipecat-python", type=Path, default=None,
                        help=f"a python with the requirements installed (default: {VENV.relative_to(REPO)}, created)")
    parser.add_argument("--timeout-s", type=float, default=900, help="per side and session count")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "peers.json")
    args = parser.parse_args()
    if any(not 1 <= n <= MAX_SESSIONS for n in args.sessions):
        parser.error(f"--sessions: 1 to {MAX_SESSIONS} ([tts] max_batch gives each session its TTS slot up to "
                     f"{MAX_SESSIONS}; beyond, monolith's TTS would queue and Pipecat's per-session services not)")

    python = args.pipecat_python or pipecat_python()
    results: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%S"), "args": {
        k: v for k, v in vars(args).items() if k not in ("out", "pipecat_python")}, "runs": {}}
    tables = []
    for n in args.sessions:
        work = work_of(load_settings(REPO / "config.toml", server_env(n), cpu_mock=True))
        frames = speech_frames(args.clip_s, work.stt_energy_threshold)
        t0 = time.perf_counter()
        mono = run_monolith(n, work, frames, args)
        print(f"  monolith, {n} session(s): {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        pipe = run_pipecat(python, n, work, args)
        print(f"  pipecat, {n} session(s): {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
        title = (f"{n} session(s), {args.turns} turns + {args.barge} barge-ins each, speech {args.clip_s:g} s, "
                 f"pipecat-ai {pipe.get('version')}")
        text, ratios = side_by_side(title, mono, pipe, args.turns, args.barge)
        print(text + "\n", flush=True)
        tables.append(text)
        results["runs"][str(n)] = {"work": json.loads(work.to_json()), "monolith": mono, "pipecat": pipe,
                                   "ratios_monolith_over_pipecat": ratios}
    results["table"] = "\n\n".join(tables)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
