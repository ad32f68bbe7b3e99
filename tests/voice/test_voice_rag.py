"""A voice turn with RAG on: passages go into the prompt, their sources come back in response.done."""

from __future__ import annotations

import json
from pathlib import Path

import websockets

from monolith.config import Settings
from monolith.providers.embedding import EmbeddingProvider
from monolith.providers.llm import ChatMessage
from monolith.rag.ingest import ingest

from ..conftest import build_app, make_settings
from ..rag.conftest import CORPUS, target_for
from .conftest import LiveServer, connect, serve_live


def rag_settings(tmp_path: Path) -> Settings:
    return make_settings({
        "MONOLITH_RAG__ENABLED": "true",
        "MONOLITH_RAG__INDEX_PATH": f'"{tmp_path / "index.bin"}"',
        "MONOLITH_RAG__STORE_PATH": f'"{tmp_path / "chunks.sqlite3"}"',
        "MONOLITH_RAG__TOP_K": "2",
        "MONOLITH_VOICE__USE_RAG": "true",
    })


async def index_the_corpus(live: LiveServer, settings: Settings) -> None:
    """Ingest the test corpus with the server's own embedder (--cpu-mock: the mock) and load it."""
    embedder = live.registry.slots["embedding"].primary
    assert isinstance(embedder, EmbeddingProvider)
    await ingest(CORPUS, target_for(settings), embedder)
    await live.app.state.rag.reload()


async def test_voice_turn_with_rag_puts_passages_in_the_prompt_and_returns_sources(tmp_path: Path) -> None:
    settings = rag_settings(tmp_path)
    app = build_app(settings)
    async with serve_live(app) as live:
        await index_the_corpus(live, settings)

        client = await connect(live)
        await client.send_json({"type": "input_text", "text": "東京タワーの高さは何メートルですか"})
        done = await client.wait_for("response.done")
        assert [s["source"] for s in done["sources"]][0] == "tokyo.md"
        assert "333メートル" in done["sources"][0]["text"] and len(done["sources"]) == 2

        prompt: list[ChatMessage] = live.registry.slots["llm"].primary.last_messages
        context = [m for m in prompt if m.role == "system" and "reference passages" in m.content]
        assert len(context) == 1 and "(tokyo.md)" in context[0].content and "333メートル" in context[0].content
        assert prompt[-1] == ChatMessage("user", "東京タワーの高さは何メートルですか")

        # Turned off for this session: no retrieval, no sources.
        await client.send_json({"type": "session.update", "session": {"use_rag": False}})
        await client.send_json({"type": "input_text", "text": "東京タワーの高さは何メートルですか"})
        done = await client.wait_for("response.done")
        assert done["sources"] == []
        assert not any("reference passages" in m.content for m in live.registry.slots["llm"].primary.last_messages)
        await client.ws.close()


async def test_realtime_gets_the_sources_as_monolith_rag_sources_before_response_done(tmp_path: Path) -> None:
    settings = rag_settings(tmp_path)
    app = build_app(settings)
    async with serve_live(app) as live:
        await index_the_corpus(live, settings)
        async with websockets.connect(live.url.replace("/v1/voice", "/v1/realtime")) as ws:
            await ws.recv()  # session.created
            await ws.send(json.dumps({"type": "conversation.item.create", "item": {
                "type": "message", "role": "user", "content": [{"type": "input_text", "text": "東京タワーの高さは何メートルですか"}]}}))
            await ws.send(json.dumps({"type": "response.create"}))
            events = []
            while not events or events[-1]["type"] != "response.done":
                events.append(json.loads(await ws.recv()))
        kinds = [e["type"] for e in events]
        sources = events[kinds.index("monolith.rag.sources")]
        assert sources["response_id"] == events[-1]["response"]["id"]
        assert sources["sources"][0]["source"] == "tokyo.md" and "333メートル" in sources["sources"][0]["text"]
        assert len(sources["sources"]) == 2
