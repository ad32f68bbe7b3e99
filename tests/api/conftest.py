"""The real vLLM engines behind /v1/chat/completions, for the chat tests that drive them with the
openai SDK (test_chat_tools.py, test_chat_structured.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import openai
import pytest
from starlette.applications import Starlette

from monolith.providers.vllm_llm import VLLMProvider

from ..conftest import build_app, real_llm_settings, running
from ..fakes import SharedLLM

ENGINES = [pytest.param("llama_engine", id="llama"),
           pytest.param("gpt_oss_engine", id="gpt-oss", marks=pytest.mark.slow)]  # its engine starts in ~40 s


def chat_app(engine: VLLMProvider) -> Starlette:
    settings = real_llm_settings({"MONOLITH_LLM__MAX_MODEL_LEN": "1024", "MONOLITH_LLM__MAX_TOKENS": "140",
                                  "MONOLITH_LLM__TEMPERATURE": "0.0"})
    return build_app(settings, builders={"llm": lambda s, n: SharedLLM(engine)})


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> VLLMProvider:
    """Each session-wide engine in turn (tests/conftest.py starts them)."""
    provider: VLLMProvider = request.getfixturevalue(request.param)
    return provider


@pytest.fixture
async def sdk(engine: VLLMProvider) -> AsyncIterator[openai.AsyncOpenAI]:
    """The openai SDK in strict mode against a server whose LLM is `engine`."""
    async with running(chat_app(engine)) as http:
        yield openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=http, max_retries=0,
                                 _strict_response_validation=True)
