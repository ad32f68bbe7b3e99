"""POST /v1/chat/completions on the real vLLM engine (tiny Llama), through the openai client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
from starlette.applications import Starlette

from monolith.config import Settings, load_settings
from monolith.providers.vllm_llm import VLLMProvider

from ..conftest import build_app, running
from ..fakes import SharedLLM
from ..voice.conftest import serve_live

pytestmark = pytest.mark.asyncio(loop_scope="session")


def chat_app(tiny_root: Path, engine: VLLMProvider, **env: str) -> Starlette:
    settings: Settings = load_settings(tiny_root / "config.toml", {"MONOLITH_RAG__ENABLED": "false", **env})
    return build_app(settings, builders={"llm": lambda s, n: SharedLLM(engine)})


@pytest.fixture
async def client(tiny_root: Path, llama_engine: VLLMProvider) -> AsyncIterator[httpx.AsyncClient]:
    async with running(chat_app(tiny_root, llama_engine)) as c:
        yield c


MESSAGES: list[Any] = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello! How are you?"}]


async def test_openai_client_non_streaming_and_streaming_agree(oai: openai.AsyncOpenAI) -> None:
    whole = await oai.chat.completions.create(model="tiny-llama", messages=MESSAGES, max_tokens=16, temperature=0)
    assert whole.choices[0].message.role == "assistant" and whole.choices[0].message.content
    assert whole.choices[0].finish_reason in ("stop", "length")
    assert whole.usage is not None and whole.usage.completion_tokens <= 16 and whole.usage.prompt_tokens > 5
    stream = await oai.chat.completions.create(
        model="tiny-llama", messages=MESSAGES, max_tokens=16, temperature=0, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [c async for c in stream]
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == [whole.choices[0].finish_reason]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == whole.usage.total_tokens


async def test_models_lists_the_llm(oai: openai.AsyncOpenAI) -> None:
    ids = [m.id async for m in oai.models.list()]
    assert "tiny-llama" in ids


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"model": "tiny-llama", "messages": []}, 400, "messages is empty"),
        ({"model": "tiny-llama", "messages": [{"role": "system", "content": "x"}]}, 400, "no user message"),
        ({"model": "gpt-4o", "messages": MESSAGES}, 404, "gpt-4o"),
        ({"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 5000}, 400, "more than the model's context"),
        ({"model": "tiny-llama", "messages": MESSAGES, "n": 2}, 400, "n"),
        ({"model": "tiny-llama", "messages": [{"role": "function", "content": "x"}]}, 400, "role"),
        ({"model": "tiny-llama", "messages": [{"role": "tool", "content": "x"}]}, 400, "tool_call_id"),
        ({"model": "tiny-llama", "messages": MESSAGES, "temperature": 5}, 400, "temperature"),
        ({"messages": MESSAGES}, 400, "model"),
    ],
)
async def test_bad_requests_get_json_4xx(client: httpx.AsyncClient, body: dict[str, Any], status: int, message: str) -> None:
    for stream in (False, True):
        resp = await client.post("/v1/chat/completions", json={**body, "stream": stream})
        assert resp.status_code == status, resp.text
        assert message in resp.json()["error"]["message"]


async def test_rag_requested_while_disabled_is_503(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/chat/completions", json={"model": "tiny-llama", "messages": MESSAGES, "rag": True})
    assert resp.status_code == 503 and resp.json()["error"]["code"] == "rag_disabled"


async def test_rag_passages_go_into_the_prompt_and_come_back_as_sources(tiny_root: Path, llama_engine: VLLMProvider, tmp_path: Path) -> None:
    from monolith.rag.ingest import ingest

    from ..rag.conftest import CORPUS, target_for

    env = {"MONOLITH_RAG__ENABLED": "true", "MONOLITH_RAG__INDEX_PATH": f'"{tmp_path / "i.bin"}"',
           "MONOLITH_RAG__STORE_PATH": f'"{tmp_path / "s.sqlite3"}"'}
    app = chat_app(tiny_root, llama_engine, **env)
    async with running(app) as client:
        await ingest(CORPUS, target_for(app.state.settings), app.state.registry.slots["embedding"].primary)
        await app.state.rag.reload()
        body = {"model": "tiny-llama", "max_tokens": 4,
                "messages": [{"role": "user", "content": "How long does the battery last?"}], "rag": {"top_k": 1}}
        resp = await client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 200
        assert [s["source"] for s in resp.json()["sources"]] == ["guide/battery.txt"]
        first = (await client.post("/v1/chat/completions", json={**body, "stream": True})).text.split("\n\n")[0]
        assert "guide/battery.txt" in first  # the first SSE chunk carries the sources


async def test_sse_client_disconnect_aborts_the_engine_request(tiny_root: Path, llama_engine: VLLMProvider) -> None:
    app = chat_app(tiny_root, llama_engine)
    async with serve_live(app) as live:
        base = live.url.replace("ws://", "http://").removesuffix("/v1/voice")
        body = {"model": "tiny-llama", "messages": MESSAGES, "max_tokens": 400, "temperature": 1.0, "seed": 3, "stream": True}
        before = len(llama_engine.aborted)
        async with httpx.AsyncClient(base_url=base) as http, http.stream("POST", "/v1/chat/completions", json=body) as resp:
            assert resp.status_code == 200
            lines = resp.aiter_lines()
            seen = 0
            async for line in lines:
                seen += line.startswith("data: ")
                if seen >= 3:
                    break
            assert llama_engine.running_requests() == 1
        # the client is gone: the server notices, the stream closes, the engine aborts
        for _ in range(200):
            if llama_engine.running_requests() == 0 and len(llama_engine.aborted) > before:
                break
            await asyncio.sleep(0.01)
        assert llama_engine.running_requests() == 0
        assert len(llama_engine.aborted) == before + 1
