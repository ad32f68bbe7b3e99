"""The TTS device queue: first chunks go before other responses' later chunks; cancelled work never runs."""

from __future__ import annotations

import asyncio

import pytest

from monolith.scheduler.tts_queue import DeviceQueue


async def hold(queue: DeviceQueue, label: str, first: bool, seconds: float, log: list[str]) -> None:
    async with queue.turn(first_in_response=first, label=label):
        log.append(f"start {label}")
        await asyncio.sleep(seconds)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("first-chunk-first", ["A0", "A1", "B0", "C0", "A2", "A3"]),
        ("fifo", ["A0", "A1", "A2", "A3", "B0", "C0"]),
    ],
)
async def test_three_sessions_first_chunks_jump_the_queue(policy: str, expected: list[str]) -> None:
    queue = DeviceQueue(policy)  # type: ignore[arg-type]
    log: list[str] = []
    # Session A's answer has four chunks, queued at once; B and C start answering a moment later.
    tasks = [asyncio.create_task(hold(queue, f"A{i}", i == 0, 0.03, log)) for i in range(4)]
    await asyncio.sleep(0.04)  # A0 done, A1 rendering, A2 and A3 waiting
    tasks += [asyncio.create_task(hold(queue, "B0", True, 0.03, log)), asyncio.create_task(hold(queue, "C0", True, 0.03, log))]
    await asyncio.gather(*tasks)
    assert list(queue.started) == expected


async def test_cancelled_while_waiting_never_runs_and_the_queue_moves_on() -> None:
    queue = DeviceQueue()
    log: list[str] = []
    running = asyncio.create_task(hold(queue, "A0", True, 0.05, log))
    await asyncio.sleep(0.01)
    doomed = asyncio.create_task(hold(queue, "B0", True, 0.05, log))
    after = asyncio.create_task(hold(queue, "C0", True, 0.01, log))
    await asyncio.sleep(0.01)
    assert queue.waiting == 2
    doomed.cancel()  # barge-in while B's first chunk waits
    await asyncio.gather(running, after)
    assert list(queue.started) == ["A0", "C0"]
    with pytest.raises(asyncio.CancelledError):
        await doomed


async def test_a_failing_chunk_releases_the_device() -> None:
    queue = DeviceQueue()

    async def fail() -> None:
        async with queue.turn(first_in_response=True, label="bad"):
            raise RuntimeError("vocoder exploded")

    with pytest.raises(RuntimeError):
        await fail()
    await asyncio.wait_for(hold(queue, "next", True, 0, []), 1)
    assert list(queue.started) == ["bad", "next"]


async def test_a_batching_device_holds_several_chunks_and_keeps_first_chunk_first() -> None:
    queue = DeviceQueue(capacity=2)
    release = asyncio.Event()
    inside: list[str] = []

    async def chunk(label: str, first: bool) -> None:
        async with queue.turn(first_in_response=first, label=label):
            inside.append(label)
            await release.wait()

    tasks = [asyncio.create_task(chunk("A1", False)), asyncio.create_task(chunk("B1", False))]
    await asyncio.sleep(0.01)
    assert sorted(inside) == ["A1", "B1"] and queue.holding == 2  # both held at once
    waiting = [asyncio.create_task(chunk("C1", False)), asyncio.create_task(chunk("D0", True))]
    await asyncio.sleep(0.01)
    assert queue.waiting == 2 and len(inside) == 2
    waiting[0].cancel()  # cancelled while waiting: never runs, frees nothing
    await asyncio.sleep(0.01)
    release.set()
    await asyncio.gather(*tasks, waiting[1])
    assert list(queue.started)[2:] == ["D0"] and "C1" not in inside and queue.holding == 0
