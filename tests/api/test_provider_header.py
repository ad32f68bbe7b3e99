"""X-Monolith-Provider: the client can tell which backend answered, a mock above all (planned,
or standing in for an engine that failed), and /health says a mock served."""

from __future__ import annotations

import io
import json
from typing import Any

import httpx
import numpy as np
import soundfile as sf

from ..conftest import AppFactory, make_settings, running
from ..fakes import StepLLM, ToneTTS

CHAT = {"model": "default", "messages": [{"role": "user", "content": "Hi"}]}
SPEECH = {"model": "default", "voice": "default", "input": "Hello there.", "response_format": "pcm"}


def wav(seconds: float = 1.0) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.full(int(16000 * seconds), 0.3, dtype=np.float32), 16000, format="WAV")
    return buf.getvalue()


async def test_every_provider_route_says_the_mock_served(client: httpx.AsyncClient) -> None:
    answers = [
        await client.post("/v1/chat/completions", json=CHAT),
        await client.post("/v1/chat/completions", json={**CHAT, "stream": True}),
        await client.post("/v1/embeddings", json={"input": "hello"}),
        await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav())}, data={"model": "default"}),
        await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", wav())},
                          data={"model": "default", "stream": "true"}),
        await client.post("/v1/audio/speech", json=SPEECH),
        await client.post("/v1/audio/speech", json={**SPEECH, "stream_format": "sse"}),
    ]
    for resp in answers:
        assert resp.status_code == 200, resp.text
        assert resp.headers["x-monolith-provider"] == "mock", resp.request.url
    models = await client.get("/v1/models")
    refused = await client.post("/v1/embeddings", json={"input": ""})
    assert "x-monolith-provider" not in models.headers and "x-monolith-provider" not in refused.headers


def _real(fallback: str) -> Any:
    env = {"MONOLITH_LLM__DEVICES": '"cpu"', "MONOLITH_TTS__DEVICES": '"cpu"', "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1",
           "MONOLITH_TTS__FALLBACK": json.dumps(fallback), "MONOLITH_LLM__FALLBACK": json.dumps(fallback),
           "MONOLITH_STT__PROVIDER": '"mock"', "MONOLITH_EMBEDDING__PROVIDER": '"mock"'}
    return make_settings(env, cpu_mock=False)


async def test_the_engines_name_when_it_served_and_mock_when_the_fallback_did(app_factory: AppFactory) -> None:
    app = app_factory(_real("mock"), builders={"llm": lambda s, n: StepLLM(["Hi", "!"]),
                                               "tts": lambda s, n: ToneTTS(fail="before_first")})
    async with running(app) as client:
        chat = await client.post("/v1/chat/completions", json=CHAT)
        assert chat.headers["x-monolith-provider"] == "step-llm"
        speech = await client.post("/v1/audio/speech", json=SPEECH)
        assert speech.status_code == 200 and speech.headers["x-monolith-provider"] == "mock"
        health = (await client.get("/health")).json()
    assert health["status"] == "degraded"
    assert any("tts:" in w and "the mock served instead" in w for w in health["warnings"]), health["warnings"]


async def test_no_header_when_the_engine_failed_and_nothing_stood_in(app_factory: AppFactory) -> None:
    app = app_factory(_real("none"), builders={"llm": lambda s, n: StepLLM(["Hi"]),
                                               "tts": lambda s, n: ToneTTS(fail="before_first")})
    async with running(app) as client:
        speech = await client.post("/v1/audio/speech", json=SPEECH)
    assert speech.status_code == 500 and speech.json()["error"]["code"] == "provider_failed"
    assert "x-monolith-provider" not in speech.headers
