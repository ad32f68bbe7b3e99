"""Every defect a black-box probe of --cpu-mock found (D1-D10 and the rest), as a client sees
it: the status, the error code, the server still answering, and memory where it is about memory."""

from __future__ import annotations

import asyncio
import io
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil
import pytest
import pytest_asyncio
import soundfile as sf
import websockets

from monolith.api.json_input import MAX_DEPTH
from monolith.voice.timing import AudioClock

from ..conftest import AppFactory, make_settings, running
from ..voice.conftest import LiveServer, serve_live

SURROGATE = "hi \ud800 there."
DEEP = "[" * 100_000 + "]" * 100_000


async def peak_rss_growth(work: Callable[[], Awaitable[Any]]) -> tuple[Any, float]:
    """(what `work` returned, the process's peak RSS growth in MB while it ran)."""
    process = psutil.Process()
    start = peak = process.memory_info().rss
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, process.memory_info().rss)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        result = await work()
    finally:
        done.set()
        sampler.join()
    return result, (peak - start) / 2**20


def silent_flac(seconds: float, rate: int) -> bytes:
    buffer = io.BytesIO()
    block = np.zeros(rate * 10, dtype=np.int16)
    with sf.SoundFile(buffer, "w", samplerate=rate, channels=1, format="FLAC", subtype="PCM_16") as f:
        for _ in range(int(seconds // 10)):
            f.write(block)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def hour_at_48k() -> bytes:
    return silent_flac(3600, 48000)


@pytest.fixture(scope="module")
def long_at_192k() -> bytes:
    return silent_flac(590, 192000)


@pytest_asyncio.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app_factory()) as c:
        yield c


async def transcribe(client: httpx.AsyncClient, data: bytes) -> httpx.Response:
    return await client.post("/v1/audio/transcriptions", files={"file": ("a.flac", data, "audio/flac")},
                             data={"model": "default"}, timeout=120)


# --- D1: audio decoding is bounded ---------------------------------------------------------------

async def test_d1_an_hour_of_flac_is_refused_from_its_header_before_decoding(
    client: httpx.AsyncClient, hour_at_48k: bytes,
) -> None:
    assert len(hour_at_48k) < 2 * 2**20  # a small upload that holds an hour
    resp, growth = await peak_rss_growth(lambda: transcribe(client, hour_at_48k))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "audio_too_long"
    assert "3600 s long" in resp.json()["error"]["message"]
    assert growth < 60, f"memory grew {growth:.0f} MB for a file refused from its header"


async def test_d1_a_long_192k_file_within_the_limit_decodes_in_bounded_memory(
    client: httpx.AsyncClient, long_at_192k: bytes,
) -> None:
    resp, growth = await peak_rss_growth(lambda: transcribe(client, long_at_192k))
    assert resp.status_code == 200, resp.text
    # 590 s at 16 kHz float32 is 38 MB; at 192 kHz it would be 453 MB (and 930 MB was seen)
    assert growth < 200, f"memory grew {growth:.0f} MB"


async def test_decode_errors_show_no_python_object_addresses(client: httpx.AsyncClient) -> None:
    resp = await transcribe(client, b"this is not audio at all" * 100)
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_audio"
    assert " at 0x" not in resp.json()["error"]["message"]


# --- D2: bodies are bounded before they are read --------------------------------------------------

async def raw_request(port: int, head: bytes, body_parts: list[bytes], *, pause: float = 0.0) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head)
        for part in body_parts:
            writer.write(part)
            await writer.drain()
            if pause:
                await asyncio.sleep(pause)
        return await asyncio.wait_for(reader.read(65536), 10)
    except (ConnectionResetError, BrokenPipeError):
        return await asyncio.wait_for(reader.read(65536), 10)
    finally:
        writer.close()


def port_of(live: LiveServer) -> int:
    return int(live.url.split(":")[2].split("/")[0])


@pytest_asyncio.fixture
async def live(app_factory: AppFactory) -> AsyncIterator[LiveServer]:
    settings = make_settings({"MONOLITH_SERVER__BODY_TIMEOUT_S": "0.5", "MONOLITH_SERVER__HEADER_TIMEOUT_S": "0.5"})
    async with serve_live(app_factory(settings)) as server:
        yield server


async def test_d2_a_256_mib_content_length_is_refused_at_once(live: LiveServer) -> None:
    head = (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 268435456\r\n\r\n")
    started = time.perf_counter()
    answer = await raw_request(port_of(live), head, [b"{" + b" " * 65536])
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer and time.perf_counter() - started < 2


async def test_d2_a_chunked_body_is_cut_at_the_limit(live: LiveServer) -> None:
    head = (b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    piece = b"x" * (1 << 20)
    chunk = f"{len(piece):x}\r\n".encode() + piece + b"\r\n"

    async def send() -> bytes:
        return await raw_request(port_of(live), head, [chunk] * 20)  # 20 MiB against a 16 MiB limit

    answer, growth = await peak_rss_growth(send)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert growth < 64, f"memory grew {growth:.0f} MB"


async def test_slow_bodies_get_408_and_half_sent_headers_are_dropped(live: LiveServer) -> None:
    port = port_of(live)
    slow = await raw_request(port, b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
                             [b'{"input"'], pause=1.0)
    assert slow.startswith(b"HTTP/1.1 408"), slow[:200]
    connections = [await asyncio.open_connection("127.0.0.1", port) for _ in range(50)]
    for _, writer in connections:
        writer.write(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")  # headers that never end
    started = time.perf_counter()
    closed = await asyncio.gather(*(asyncio.wait_for(reader.read(), 5) for reader, _ in connections))
    assert all(data == b"" for data in closed) and time.perf_counter() - started < 3
    for _, writer in connections:
        writer.close()
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{port}/health")).status_code == 200  # still answering


# --- D3, D4, D6: the voice WebSocket -----------------------------------------------------------------

async def voice(live: LiveServer) -> Any:
    ws = await websockets.connect(live.url, max_size=1 << 24)
    assert json.loads(await ws.recv())["type"] == "session.created"
    return ws


async def next_of(ws: Any, kind: str) -> dict[str, Any]:
    while True:
        message = await asyncio.wait_for(ws.recv(), 10)
        if isinstance(message, str) and json.loads(message)["type"] == kind:
            return dict(json.loads(message))


async def test_d3_a_lone_surrogate_in_input_text_is_an_error_and_the_session_goes_on(live: LiveServer) -> None:
    ws = await voice(live)
    await ws.send('{"type": "input_text", "text": "hi \\ud800 there."}')
    error = await next_of(ws, "error")
    assert error["error"]["code"] == "invalid_value" and "surrogate" in error["error"]["message"]
    session = next(iter(live.app.state.voice.sessions.values()))
    assert not session.busy
    await ws.send(json.dumps({"type": "input_text", "text": "Still here."}))
    assert (await next_of(ws, "response.done"))["text"] == "Still here."
    await ws.close()


async def test_d4_a_lone_surrogate_in_session_update_applies_nothing(live: LiveServer) -> None:
    ws = await voice(live)
    await ws.send('{"type": "session.update", "session": {"voice": "default", "system_prompt": "be \\udfff nice"}}')
    error = await next_of(ws, "error")
    assert error["error"]["code"] == "invalid_value"
    session = next(iter(live.app.state.voice.sessions.values()))
    assert "nice" not in session.options.system_prompt
    await ws.send(json.dumps({"type": "session.update", "session": {"system_prompt": "Be brief."}}))
    assert (await next_of(ws, "session.updated"))["options"]["system_prompt"] == "Be brief."
    await ws.close()


async def test_d6_deep_json_on_the_websocket_is_invalid_json_and_the_session_goes_on(live: LiveServer) -> None:
    ws = await voice(live)
    await ws.send(DEEP)
    error = await next_of(ws, "error")
    assert error["error"]["code"] == "invalid_json" and str(MAX_DEPTH) in error["error"]["message"]
    await ws.send(json.dumps({"type": "input_text", "text": "After that."}))
    assert (await next_of(ws, "response.done"))["text"] == "After that."
    await ws.close()


# --- D5, D6 over HTTP ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/v1/chat/completions", "/v1/audio/speech", "/v1/embeddings", "/v1/rag/search"])
async def test_d6_deep_json_is_a_400_everywhere(client: httpx.AsyncClient, path: str) -> None:
    resp = await client.post(path, content=DEEP, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


@pytest.mark.parametrize("where", ["model", "content"])
async def test_d5_a_lone_surrogate_in_chat_is_a_400_and_the_log_line_survives(
    client: httpx.AsyncClient, where: str, capsys: pytest.CaptureFixture[str],
) -> None:
    from monolith.logs import setup_logging

    setup_logging(fmt="json", level="info")
    body = {"model": "default", "messages": [{"role": "user", "content": "hi"}]}
    if where == "model":
        raw = json.dumps(body).replace('"default"', '"de\\ud800fault"')
    else:
        raw = json.dumps(body).replace('"hi"', '"h\\ud800i"')
    resp = await client.post("/v1/chat/completions", content=raw, headers={"Content-Type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_value"
    assert "surrogate" in resp.json()["error"]["message"]
    import logging

    logging.getLogger("monolith.test").info("client text: %s", SURROGATE)
    out = capsys.readouterr().out
    assert "Logging error" not in out
    assert any('"client text: hi \\\\ud800 there."' in line or "client text: hi \\ud800 there." in line
               for line in out.splitlines())


# --- the rest ---------------------------------------------------------------------------------------------

async def test_numbers_sent_as_strings_are_refused(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": "default", "max_tokens": "5", "messages": [{"role": "user", "content": "hi"}]})
    assert resp.status_code == 400 and resp.json()["error"]["param"] == "max_tokens"


async def test_a_10_mb_prompt_is_refused_before_the_engine(client: httpx.AsyncClient) -> None:
    resp, growth = await peak_rss_growth(lambda: client.post("/v1/chat/completions", json={
        "model": "default", "messages": [{"role": "user", "content": "word " * 2_000_000}]}))
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "context_length_exceeded"
    # client and server in one process: the body, its JSON and the request hold a few copies
    # (about 47 MB seen); tokenizing it word by word into Python objects would pass 100
    assert growth < 100, f"memory grew {growth:.0f} MB for a prompt refused by its length"


async def test_a_prompt_over_the_context_is_refused_by_the_mock_as_by_the_engine(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={
        "model": "default", "messages": [{"role": "user", "content": "word " * 9000}]})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "context_length_exceeded"


async def test_d8_a_client_hanging_up_mid_body_is_not_a_server_error(live: LiveServer) -> None:
    from prometheus_client import REGISTRY

    def internal() -> float:
        return REGISTRY.get_sample_value("monolith_errors_total", {"kind": "internal_error"}) or 0.0

    before = internal()
    reader, writer = await asyncio.open_connection("127.0.0.1", port_of(live))
    writer.write(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"input\": ")
    await writer.drain()
    await asyncio.sleep(0.1)
    writer.close()
    await asyncio.sleep(0.3)
    assert internal() == before


def test_d7_speech_after_a_pause_is_timed_from_the_frame_it_starts_in() -> None:
    clock = AudioClock()
    clock.add(1600, 16000)  # 0-100 ms
    first = clock._marks[-1][1]
    time.sleep(0.05)  # the client pauses between turns
    clock.add(1600, 16000)  # 100-200 ms: speech starts on the boundary at 100 ms
    second = clock._marks[-1][1]
    assert clock.received_at(100.0) == second and clock.received_at(99.0) == first


async def test_a_good_swap_clears_the_warnings_of_failed_ones(app_factory: AppFactory, tmp_path: Path) -> None:
    auth = {"Authorization": "Bearer t"}
    async with running(app_factory(make_settings({"MONOLITH_SERVER__ADMIN_TOKEN": '"t"'}))) as client:
        failed = await client.post("/admin/models/tts", json={"path": str(tmp_path / "missing")}, headers=auth)
        assert failed.status_code == 422
        assert any("swap to" in w for w in (await client.get("/health", headers=auth)).json()["warnings"])
        (tmp_path / "good").mkdir()
        ok = await client.post("/admin/models/tts", json={"path": str(tmp_path / "good")}, headers=auth)
        assert ok.status_code == 200
        assert not any("swap to" in w for w in (await client.get("/health", headers=auth)).json()["warnings"])
