"""The loop-lag monitor notices a blocked event loop (the benchmark reads it from /metrics)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import REGISTRY

from monolith.looplag import watch_loop_lag


async def test_a_blocked_loop_shows_up_as_lag() -> None:
    watcher = asyncio.create_task(watch_loop_lag(0.005))
    await asyncio.sleep(0.02)
    time.sleep(0.06)  # noqa: ASYNC251 - blocking the loop is what this test checks
    await asyncio.sleep(0.02)
    watcher.cancel()
    worst = REGISTRY.get_sample_value("monolith_event_loop_lag_max_seconds")
    assert worst is not None and worst >= 0.05
