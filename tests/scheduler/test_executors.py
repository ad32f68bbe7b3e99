"""Blocking model calls run on per-device threads; the event loop stays responsive."""

from __future__ import annotations

import asyncio
import threading
import time

from monolith.scheduler.executors import DeviceExecutor, ExecutorPool
from monolith.scheduler.placement import Assignment


async def _max_loop_lag(during: asyncio.Future[object], tick_s: float = 0.005) -> float:
    worst = 0.0
    while not during.done():
        start = time.perf_counter()
        await asyncio.sleep(tick_s)
        worst = max(worst, time.perf_counter() - start - tick_s)
    return worst


async def test_loop_stays_responsive_while_a_provider_blocks() -> None:
    executor = DeviceExecutor("cuda:6", cuda_index=6)
    try:
        call = asyncio.ensure_future(executor.run(time.sleep, 0.5))
        lag = await _max_loop_lag(call)
        await call
        assert lag < 0.05, f"event loop stalled {lag * 1000:.1f} ms"
        assert executor.calls == 1 and executor.busy_s >= 0.5
    finally:
        executor.shutdown()


async def test_one_thread_per_device_group_runs_calls_in_order() -> None:
    pool = ExecutorPool()
    stt = Assignment("stt", "sherpa-onnx", (6,))
    emb = Assignment("embedding", "sentence-transformers", (6,))
    tts = Assignment("tts", "fish-speech", (7,))
    try:
        assert pool.for_assignment(stt) is pool.for_assignment(emb)
        assert pool.for_assignment(tts) is not pool.for_assignment(stt)
        names = await asyncio.gather(
            pool.for_assignment(stt).run(lambda: threading.current_thread().name),
            pool.for_assignment(emb).run(lambda: threading.current_thread().name),
            pool.for_assignment(tts).run(lambda: threading.current_thread().name),
        )
        assert names[0] == names[1] and names[0].startswith("monolith-cuda:6")
        assert names[2].startswith("monolith-cuda:7")
        order: list[int] = []
        await asyncio.gather(*(pool.for_assignment(stt).run(order.append, i) for i in range(20)))
        assert order == list(range(20))
    finally:
        pool.shutdown()


async def test_cpu_providers_get_their_own_threads() -> None:
    pool = ExecutorPool()
    try:
        a = pool.for_assignment(Assignment("stt", "sherpa-onnx", ()))
        b = pool.for_assignment(Assignment("tts", "fish-speech", ()))
        assert a is not b and a.key == "cpu:stt"
        # a long TTS call does not delay STT
        slow = asyncio.ensure_future(b.run(time.sleep, 0.3))
        start = time.perf_counter()
        await a.run(lambda: None)
        assert time.perf_counter() - start < 0.1
        await slow
    finally:
        pool.shutdown()
