"""MicroBatcher: concurrent calls share one batch; each caller gets its own results, in order."""

from __future__ import annotations

import asyncio

import pytest

from monolith.providers.batching import MicroBatcher


class Recorder:
    def __init__(self, delay: float = 0.0, fail: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.delay = delay
        self.fail = fail

    async def __call__(self, items: list[str]) -> list[str]:
        self.batches.append(list(items))
        await asyncio.sleep(self.delay)
        if self.fail:
            raise RuntimeError("model exploded")
        return [item.upper() for item in items]


async def test_calls_within_the_window_run_as_one_batch() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_items=32, max_wait_s=0.02)
    results = await asyncio.gather(*(batcher.submit([f"a{i}", f"b{i}"]) for i in range(5)))
    assert results == [[f"A{i}", f"B{i}"] for i in range(5)]
    assert len(run.batches) == 1 and len(run.batches[0]) == 10
    assert batcher.stats.calls == 5 and batcher.stats.batches == 1


async def test_a_full_batch_runs_without_waiting_for_the_window() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_items=4, max_wait_s=10.0)
    results = await asyncio.wait_for(asyncio.gather(*(batcher.submit([str(i)]) for i in range(8))), 1.0)
    assert results == [[str(i)] for i in range(8)]
    assert [len(b) for b in run.batches] == [4, 4]


async def test_calls_arriving_while_a_batch_runs_form_the_next_batch() -> None:
    run = Recorder(delay=0.05)
    batcher = MicroBatcher(run, max_items=32, max_wait_s=0.001)
    first = asyncio.create_task(batcher.submit(["x"]))
    await asyncio.sleep(0.01)  # the first batch is running now
    later = await asyncio.gather(*(batcher.submit([str(i)]) for i in range(6)))
    assert await first == ["X"]
    assert later == [[str(i)] for i in range(6)]
    assert [len(b) for b in run.batches] == [1, 6]


async def test_a_call_larger_than_the_cap_runs_alone() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_items=4, max_wait_s=0.01)
    big, small = await asyncio.gather(batcher.submit([str(i) for i in range(10)]), batcher.submit(["s"]))
    assert len(big) == 10 and small == ["S"]
    assert sorted(len(b) for b in run.batches) == [1, 10]


async def test_a_cancelled_call_never_runs() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_items=32, max_wait_s=0.05)
    doomed = asyncio.create_task(batcher.submit(["doomed"]))
    kept = asyncio.create_task(batcher.submit(["kept"]))
    await asyncio.sleep(0.01)
    doomed.cancel()
    assert await kept == ["KEPT"]
    assert run.batches == [["kept"]]


async def test_a_failing_batch_fails_each_of_its_callers() -> None:
    batcher = MicroBatcher(Recorder(fail=True), max_items=32, max_wait_s=0.01)
    results = await asyncio.gather(batcher.submit(["a"]), batcher.submit(["b"]), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    # ...and the batcher still works afterwards
    ok = MicroBatcher(Recorder(), max_items=32, max_wait_s=0.0)
    assert await ok.submit(["c"]) == ["C"]


async def test_empty_call_returns_at_once() -> None:
    run = Recorder()
    assert await MicroBatcher(run, max_items=4, max_wait_s=1.0).submit([]) == []
    assert run.batches == []


async def test_close_cancels_waiting_calls() -> None:
    batcher = MicroBatcher(Recorder(), max_items=32, max_wait_s=5.0)
    waiting = asyncio.create_task(batcher.submit(["x"]))
    await asyncio.sleep(0.01)
    await batcher.close()
    with pytest.raises(asyncio.CancelledError):
        await waiting
