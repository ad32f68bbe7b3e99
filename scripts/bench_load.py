"""Load benchmark: N voice sessions at once (16/64/128 by default) against `--cpu-mock`, each
mixing spoken turns (speech at real time, then silence) and typed ones, bounded in count and
time, loopback only.

    python scripts/bench_load.py [--sessions 16 64 128] [--turns 4] [--time-limit 240] [--out FILE]

Per session count it prints turns completed and failed (and sessions refused), p50/p95 of each
stage, the server's worst event-loop lag, the server's RSS before and after, and the
`monolith_voice_sessions_active` gauge once every client has gone (it must be back at 0). A new
server per count, so each starts clean. A benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_latency import (  # noqa: E402
    REPO,
    STAGES,
    Session,
    free_port,
    generated_speech,
    loop_lag,
    pcm16,
    start,
    summarize,
    wait_http,
)


class MixedSession(Session):
    """Spoken and typed turns, alternating; failures and refusals counted, never raised."""

    async def run_mixed(self, turns: int, results: dict[str, list[float]], counts: dict[str, int]) -> None:
        try:
            async with websockets.connect(self.url, max_size=1 << 24, open_timeout=30) as ws:
                reader = asyncio.create_task(self._reader(ws))
                await self.wait("session.created", timeout=30)
                mic = asyncio.create_task(self._mic(ws))
                try:
                    for i in range(turns):
                        if i % 2:
                            await ws.send(json.dumps({"type": "input_text", "text": "What is the weather like?"}))
                        else:
                            self.talk.set()
                        metrics = await self.wait_turn()
                        if metrics is None:
                            counts["failed"] += 1
                            continue
                        counts["completed"] += 1
                        for stage in STAGES:
                            if metrics.get(stage) is not None:
                                results[stage].append(metrics[stage])
                finally:
                    mic.cancel()
                    reader.cancel()
        except (websockets.InvalidStatus, websockets.ConnectionClosed, OSError, TimeoutError):
            counts["refused_or_dropped"] += 1

    async def wait_turn(self) -> dict[str, Any] | None:
        while True:
            ev = await asyncio.wait_for(self.queue.get(), 60)
            if ev["type"] == "turn.metrics":
                return ev
            if ev["type"] == "error":
                return None


def gauge(base: str, name: str) -> float | None:
    for line in httpx.get(f"{base}/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def run_count(sessions: int, turns: int, time_limit: float, speech: bytes) -> dict[str, Any]:
    port = free_port()
    proc = start(["-m", "monolith", "--cpu-mock", "--host", "127.0.0.1", "--port", str(port)])
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/ready")
        server = psutil.Process(proc.pid)
        rss_before = server.memory_info().rss / 2**20
        results: dict[str, list[float]] = {k: [] for k in STAGES}
        counts = {"completed": 0, "failed": 0, "refused_or_dropped": 0}
        url = f"ws://127.0.0.1:{port}/v1/voice"

        async def everyone() -> None:
            clients = [MixedSession(url, speech).run_mixed(turns, results, counts) for _ in range(sessions)]
            await asyncio.wait_for(asyncio.gather(*clients), time_limit)

        started = time.perf_counter()
        timed_out = False
        try:
            asyncio.run(everyone())
        except TimeoutError:
            timed_out = True
        seconds = time.perf_counter() - started
        time.sleep(1.0)  # closed sockets reach the server
        return {
            "sessions": sessions, "turns_per_session": turns, "seconds": round(seconds, 1), "time_limit_hit": timed_out,
            **counts, "figures": {k: summarize(v) for k, v in results.items()},
            "event_loop_lag_max_ms": round(loop_lag(base).get("max_ms", 0.0), 2),
            "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(server.memory_info().rss / 2**20, 1),
            "sessions_gauge_after": gauge(base, "monolith_voice_sessions_active"),
        }
    finally:
        proc.terminate()
        proc.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[16, 64, 128])
    parser.add_argument("--turns", type=int, default=4, help="turns per session, spoken and typed alternately")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per session count")
    parser.add_argument("--out", type=Path, default=REPO / "bench-results" / "load.json")
    args = parser.parse_args()
    speech = pcm16(generated_speech())
    runs = [run_count(n, args.turns, args.time_limit, speech) for n in args.sessions]
    print(f"mock providers, {args.turns} turns per session (spoken and typed), one server per count")
    print(f"{'sessions':>8} {'done':>6} {'failed':>6} {'refused':>7} {'tts_start p50/p95 ms':>22} "
          f"{'final p50/p95 ms':>18} {'loop lag max':>12} {'RSS MB before/after':>20} {'gauge after':>11}")
    for r in runs:
        f = r["figures"]
        tts = f"{f['tts_start_ms'].get('p50', '-')} / {f['tts_start_ms'].get('p95', '-')}"
        final = f"{f['final_ms'].get('p50', '-')} / {f['final_ms'].get('p95', '-')}"
        print(f"{r['sessions']:>8} {r['completed']:>6} {r['failed']:>6} {r['refused_or_dropped']:>7} {tts:>22} {final:>18} "
              f"{r['event_loop_lag_max_ms']:>12} {str(r['rss_mb_before']) + ' / ' + str(r['rss_mb_after']):>20} "
              f"{r['sessions_gauge_after']!s:>11}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(runs, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
