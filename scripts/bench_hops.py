"""The old docker-compose topology, for comparison: the same mock providers behind loopback
HTTP/WebSocket services (one hop per provider), and monolith wired to them over the network.

    python scripts/bench_hops.py providers PORT          # the provider services
    python scripts/bench_hops.py monolith PORT PROVIDERS # monolith calling them over loopback

Used by scripts/bench_latency.py; benchmark code, not part of the product.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import numpy as np
import uvicorn
import websockets
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from monolith.config import Settings, load_settings
from monolith.providers.llm import ChatMessage, LLMChunk, LLMProvider, SamplingOptions
from monolith.providers.mock_llm import MockLLM
from monolith.providers.mock_stt import MockSTT
from monolith.providers.mock_tts import MockTTS
from monolith.providers.stt import STTEvent, STTProvider, STTStream
from monolith.providers.tts import TTSProvider
from monolith.turn_end import EndOfTurn

# --- the provider services (one process, one route per provider) ------------------------------


def provider_services(settings: Settings) -> Starlette:
    llm = MockLLM(settings.llm.mock)
    tts = MockTTS(settings.tts.mock)
    stt = MockSTT(settings.stt)

    async def chat(request: Request) -> StreamingResponse:
        body = await request.json()
        messages = [ChatMessage(m["role"], m["content"]) for m in body["messages"]]
        options = SamplingOptions(max_tokens=body["max_tokens"])

        async def sse() -> AsyncIterator[bytes]:
            async for chunk in llm.stream_chat(messages, options, request_id=body["request_id"]):
                yield f"data: {json.dumps(chunk.__dict__)}\n\n".encode()

        return StreamingResponse(sse(), media_type="text/event-stream")

    async def speech(request: Request) -> StreamingResponse:
        body = await request.json()

        async def audio() -> AsyncIterator[bytes]:
            async for samples in tts.synthesize(body["text"], voice="default", request_id=body["request_id"]):
                yield samples.astype("<f4").tobytes()

        return StreamingResponse(audio(), media_type="application/octet-stream")

    async def recognize(ws: WebSocket) -> None:
        await ws.accept()
        stream = await stt.open_stream(sample_rate=int(ws.query_params["rate"]), request_id="hop")

        async def forward() -> None:
            async for ev in stream.events():
                await ws.send_text(json.dumps(ev.__dict__))

        sender = asyncio.create_task(forward())
        try:
            while True:
                data = await ws.receive_bytes()
                await stream.feed(np.frombuffer(data, dtype="<f4"))
        except WebSocketDisconnect:
            pass
        finally:
            await stream.close()
            sender.cancel()

    return Starlette(routes=[Route("/llm", chat, methods=["POST"]), Route("/tts", speech, methods=["POST"]),
                             WebSocketRoute("/stt", recognize)])


# --- monolith's side: providers that call those services ---------------------------------------


class RemoteLLM(LLMProvider):
    backend = "remote"

    def __init__(self, base: str, client: httpx.AsyncClient) -> None:
        super().__init__(model_id="remote-llm")
        self.base, self.client, self.active = base, client, 0

    async def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, *, request_id: str
    ) -> AsyncIterator[LLMChunk]:
        body = {"messages": [m.__dict__ for m in messages], "max_tokens": options.max_tokens, "request_id": request_id}
        self.active += 1
        try:
            async with self.client.stream("POST", f"{self.base}/llm", json=body) as resp:
                async for line in resp.aiter_lines():
                    if line.startswith("data: "):
                        yield LLMChunk(**json.loads(line[6:]))
        finally:
            self.active -= 1

    def running_requests(self) -> int:
        return self.active


class RemoteTTS(TTSProvider):
    backend = "remote"
    native_sample_rate = MockTTS.native_sample_rate

    def __init__(self, base: str, client: httpx.AsyncClient) -> None:
        super().__init__(model_id="remote-tts")
        self.base, self.client = base, client

    def voices(self) -> list[str]:
        return ["default"]

    async def synthesize(
        self, text: str, *, voice: str, request_id: str, first_in_response: bool = True, speed: float = 1.0,
    ) -> AsyncIterator[np.ndarray]:
        rest = b""
        async with self.client.stream("POST", f"{self.base}/tts", json={"text": text, "request_id": request_id}) as resp:
            async for data in resp.aiter_bytes():
                data, usable = rest + data, (len(rest) + len(data)) // 4 * 4
                rest = data[usable:]
                if usable:
                    yield np.frombuffer(data[:usable], dtype="<f4")


class RemoteSTTStream(STTStream):
    def __init__(self, ws: Any) -> None:
        self.ws = ws

    async def feed(self, samples: np.ndarray) -> None:
        await self.ws.send(samples.astype("<f4").tobytes())

    async def events(self) -> AsyncIterator[STTEvent]:
        try:
            async for message in self.ws:
                yield STTEvent(**json.loads(message))
        except websockets.ConnectionClosed:
            return

    async def flush(self) -> None:
        return None

    async def close(self) -> None:
        await self.ws.close()


class RemoteSTT(STTProvider):
    backend = "remote"

    def __init__(self, base: str) -> None:
        super().__init__(model_id="remote-stt")
        self.base = base.replace("http://", "ws://")

    async def open_stream(
        self, *, sample_rate: int, request_id: str, end_of_turn: EndOfTurn | None = None
    ) -> STTStream:
        return RemoteSTTStream(await websockets.connect(f"{self.base}/stt?rate={sample_rate}"))

    async def transcribe(self, samples: np.ndarray, sample_rate: int) -> str:
        raise NotImplementedError


def monolith_over_hops(settings: Settings, providers_url: str) -> Starlette:
    from monolith.app import create_app
    from monolith.registry import Registry
    from monolith.scheduler.placement import Inventory, build_plan

    client = httpx.AsyncClient(timeout=None, limits=httpx.Limits(max_connections=256))
    builders = {
        "llm": lambda s, n: RemoteLLM(providers_url, client),
        "tts": lambda s, n: RemoteTTS(providers_url, client),
        "stt": lambda s, n: RemoteSTT(providers_url),
    }
    return create_app(settings, Registry(settings, build_plan(settings, Inventory()), builders=builders))  # type: ignore[arg-type]


def main(argv: list[str]) -> int:
    settings = load_settings(None, cpu_mock=True)
    role, port = argv[0], int(argv[1])
    app = provider_services(settings) if role == "providers" else monolith_over_hops(settings, argv[2])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", ws_max_size=1 << 24)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
