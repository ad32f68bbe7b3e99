"""The voice WebSocket with the real vLLM engine: cancelling a response aborts the engine request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from monolith.providers.vllm_llm import VLLMProvider

from ..conftest import build_app, load_tiny
from ..fakes import SharedLLM
from .conftest import connect, serve_live

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_response_cancel_and_disconnect_leave_no_engine_request(tiny_root: Path, llama_engine: VLLMProvider) -> None:
    settings = load_tiny(tiny_root, {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_LLM__MAX_TOKENS": "400",
                                     "MONOLITH_LLM__TEMPERATURE": "1.0"})
    async with serve_live(build_app(settings, builders={"llm": lambda s, n: SharedLLM(llama_engine)})) as live:
        client = await connect(live)
        await client.send_json({"type": "input_text", "text": "Tell me a long story."})
        await client.wait_for("response.text.delta")
        assert llama_engine.running_requests() == 1
        await client.send_json({"type": "response.cancel"})
        cancelled = await client.wait_for("response.cancelled")
        for _ in range(100):
            if llama_engine.running_requests() == 0:
                break
            await asyncio.sleep(0.01)
        assert llama_engine.running_requests() == 0
        assert llama_engine.aborted[-1].startswith(cancelled["response_id"])

        await client.send_json({"type": "input_text", "text": "And another one."})
        await client.wait_for("response.text.delta")
        await client.ws.close()  # hang up mid-answer
        for _ in range(200):
            if llama_engine.running_requests() == 0:
                break
            await asyncio.sleep(0.01)
        assert llama_engine.running_requests() == 0
