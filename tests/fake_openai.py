"""A scripted OpenAI-compatible server on a loopback port, for the remote LLM's error paths: what
it answers is set per test, what it was asked is recorded, and it can stop and start again on
the same port. The real thing (vLLM's own server) is in tests/vllm_server.py."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .vllm_server import free_port


class FakeOpenAIServer:
    def __init__(self, models: tuple[str, ...] = ("tiny",)) -> None:
        self.port = free_port()
        self.models: list[dict[str, Any]] = [{"id": m, "object": "model", "root": f"/models/{m}"} for m in models]
        self.requests: list[dict[str, Any]] = []  # {"path", "headers", "body"}
        self.status = 200  # chat: another status answers with OpenAI's error shape and `error_message`
        self.error_message = "scripted error"
        self.models_status = 200
        self.deltas: list[dict[str, Any]] = [{"content": "Hello"}, {"content": " there."}]
        self.finish_reason: str | None = "stop"
        self.usage = {"prompt_tokens": 7, "completion_tokens": 2, "total_tokens": 9}
        self.hold = False  # after the deltas, keep the answer open until the client goes away
        self.streaming = 0  # answers being streamed now
        self.client_went_away = asyncio.Event()
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.app = Starlette(routes=[Route("/v1/models", self._list_models),
                                     Route("/v1/chat/completions", self._chat, methods=["POST"])])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> None:
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning", lifespan="off",
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        while not self._server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        self._server = self._task = None

    def _error(self, status: int) -> Response:
        return JSONResponse({"error": {"message": self.error_message, "type": "BadRequestError", "param": None,
                                       "code": status}}, status_code=status)

    async def _list_models(self, request: Request) -> Response:
        self.requests.append({"path": "/v1/models", "headers": dict(request.headers), "body": None})
        if self.models_status != 200:
            return self._error(self.models_status)
        return JSONResponse({"object": "list", "data": self.models})

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append({"path": "/v1/chat/completions", "headers": dict(request.headers), "body": body})
        if self.status != 200:
            return self._error(self.status)
        return StreamingResponse(self._events(body), media_type="text/event-stream")

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[str]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            return "data: " + json.dumps({"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                                          "model": body["model"], "choices": choices, **extra}) + "\n\n"

        self.streaming += 1
        try:
            yield chunk([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}])
            for scripted in self.deltas:
                delta = {k: v for k, v in scripted.items() if k != "logprobs"}  # `logprobs`: the choice's
                yield chunk([{"index": 0, "delta": delta, "logprobs": scripted.get("logprobs"), "finish_reason": None}])
            if self.hold:
                await asyncio.Event().wait()
            if self.finish_reason is not None:
                yield chunk([{"index": 0, "delta": {}, "finish_reason": self.finish_reason}])
            if body.get("stream_options", {}).get("include_usage"):
                yield chunk([], usage=self.usage)
            yield "data: [DONE]\n\n"
        except asyncio.CancelledError:
            self.client_went_away.set()
            raise
        finally:
            self.streaming -= 1
