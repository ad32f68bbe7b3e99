"""A real uvicorn on loopback, in the test's own event loop, and a voice client for it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pytest
import uvicorn
import websockets
from starlette.applications import Starlette

from monolith.serving import make_server

from ..conftest import AppFactory, make_settings


def speech(seconds: float, rate: int = 16000, amplitude: float = 0.3) -> bytes:
    """A voiced-looking signal (harmonics with a slow envelope): loud enough for the energy VAD."""
    t = np.arange(int(seconds * rate)) / rate
    wave = sum(np.sin(2 * math.pi * f * t) / (i + 1) for i, f in enumerate((180.0, 360.0, 540.0)))
    return (amplitude * wave / 1.8 * 32767).astype("<i2").tobytes()


def silence(seconds: float, rate: int = 16000) -> bytes:
    return bytes(2 * int(seconds * rate))


@dataclass
class LiveServer:
    app: Starlette
    server: uvicorn.Server
    url: str

    @property
    def registry(self) -> Any:
        return self.app.state.registry

    @property
    def http_url(self) -> str:
        return self.url.replace("ws://", "http://").removesuffix("/v1/voice")


@dataclass
class VoiceClient:
    ws: Any
    events: list[dict[str, Any]] = field(default_factory=list)
    audio: list[bytes] = field(default_factory=list)
    order: list[str] = field(default_factory=list)  # event types, "<audio>" for binary frames

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, pcm: bytes, frame_bytes: int = 640, pace_s: float = 0.0) -> None:
        for i in range(0, len(pcm), frame_bytes):
            await self.ws.send(pcm[i : i + frame_bytes])
            if pace_s:
                await asyncio.sleep(pace_s)

    async def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(message, bytes):
                self.audio.append(message)
                self.order.append("<audio>")
                continue
            ev = json.loads(message)
            self.events.append(ev)
            self.order.append(ev["type"])
            return ev

    async def wait_for(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        while True:
            ev = await self.next_event(timeout)
            if ev["type"] == type_:
                return ev

    def of_type(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]


@pytest.fixture
async def live(app_factory: AppFactory, request: pytest.FixtureRequest) -> AsyncIterator[LiveServer]:
    env = getattr(request, "param", None) or {}
    async with serve_live(app_factory(make_settings(env))) as server:
        yield server


@contextlib.asynccontextmanager
async def serve_live(app: Starlette) -> AsyncIterator[LiveServer]:
    """The server as `python -m monolith` runs it (monolith.serving: its protocol, limits and
    drain) on a free loopback port, models loaded, stopped on exit."""
    server = make_server(app, app.state.settings, "127.0.0.1", 0)
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    await asyncio.wait_for(app.state.loader, 10)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield LiveServer(app, server, f"ws://127.0.0.1:{port}/v1/voice")
    server.should_exit = True
    await asyncio.wait_for(task, 10)


async def connect(live: LiveServer) -> VoiceClient:
    ws = await websockets.connect(live.url, max_size=1 << 24)
    client = VoiceClient(ws)
    created = await client.next_event()
    assert created["type"] == "session.created"
    return client
