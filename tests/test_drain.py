"""SIGTERM as Kubernetes sends it: /ready says draining at once, new sessions are refused, open
ones are told and may finish, and the process is gone within drain_timeout_s whatever clients do
(a slow upload and an open SSE stream included)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time

import httpx
import websockets

from .conftest import REPO
from .test_cli import free_port

DRAIN_S = 4.0


async def test_sigterm_drains_sessions_then_exits_within_the_drain_timeout() -> None:
    port = free_port()
    env = {**os.environ, "MONOLITH_SERVER__DRAIN_TIMEOUT_S": str(DRAIN_S),
           "MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "8", "MONOLITH_LLM__MOCK__FIRST_TOKEN_MS": "10"}
    proc = subprocess.Popen(  # noqa: ASYNC220 - the server under test, started once
        [sys.executable, "-m", "monolith", "--cpu-mock", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            for _ in range(200):
                try:
                    if (await http.get("/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
            ws = await websockets.connect(f"ws://127.0.0.1:{port}/v1/voice")
            await ws.recv()
            await ws.send(json.dumps({"type": "input_text", "text": "one two three four five six seven eight nine."}))
            # a client that sends half a body and stalls, and an SSE stream that runs long
            _, slow = await asyncio.open_connection("127.0.0.1", port)
            slow.write(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
            sse = asyncio.create_task(http.post("/v1/chat/completions", json={
                "model": "default", "stream": True, "messages": [{"role": "user", "content": "word " * 200}]}))
            await asyncio.sleep(0.5)

            proc.send_signal(signal.SIGTERM)
            signalled = time.monotonic()
            await asyncio.sleep(0.3)
            ready = await http.get("/ready")
            assert ready.status_code == 503 and ready.json()["status"] == "draining"
            with_new = await websockets.connect(f"ws://127.0.0.1:{port}/v1/voice")
            refused = json.loads(await with_new.recv())
            assert refused["error"]["code"] == "draining"
            await asyncio.sleep(0.1)
            assert with_new.close_code == 1013

            kinds = []
            try:
                while True:
                    message = await asyncio.wait_for(ws.recv(), DRAIN_S + 2)
                    if isinstance(message, str):
                        kinds.append(json.loads(message)["type"])
            except websockets.ConnectionClosed:
                pass
            assert "session.closing" in kinds
            assert ws.close_code == 1001
            sse.cancel()
            slow.close()
        code = await asyncio.to_thread(proc.wait, DRAIN_S + 5)
        elapsed = time.monotonic() - signalled
    finally:
        if proc.poll() is None:
            proc.kill()
    out = proc.stdout.read() if proc.stdout else ""
    assert code == 0, out[-2000:]
    # clients held it for at most drain_timeout_s; unloading the (mock) engines takes the rest
    assert elapsed < DRAIN_S + 2, f"exit took {elapsed:.1f} s\n{out[-2000:]}"
