"""Measures how late the event loop wakes up: the proof that nothing blocks it."""

from __future__ import annotations

import asyncio
import time

from monolith import metrics

TICK_S = 0.01


async def watch_loop_lag(tick_s: float = TICK_S) -> None:
    """Sleep `tick_s` forever; record how much later than asked each wake-up came."""
    worst = 0.0
    while True:
        start = time.perf_counter()
        await asyncio.sleep(tick_s)
        lag = max(0.0, time.perf_counter() - start - tick_s)
        metrics.LOOP_LAG.observe(lag)
        if lag > worst:
            worst = lag
            metrics.LOOP_LAG_MAX.set(lag)
