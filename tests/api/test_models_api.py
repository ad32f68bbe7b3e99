"""GET /v1/models and /v1/models/{id}; OpenAI's default model names as aliases of the served models."""

from __future__ import annotations

import httpx
import openai
import pytest

from monolith.config import ConfigError

from ..conftest import AppFactory, make_settings, openai_client, running


async def test_the_list_shows_served_ids_with_their_aliases(oai: openai.AsyncOpenAI) -> None:
    models = {m.id: m for m in (await oai.models.list()).data}
    assert set(models) == {"gpt-oss-120b", "streaming-zipformer", "openaudio-s1-mini", "multilingual-e5-base"}
    extra = {m.id: m.model_extra for m in models.values()}
    assert extra["streaming-zipformer"] == {"kind": "stt", "aliases": ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"]}
    assert extra["openaudio-s1-mini"]["aliases"] == ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"]
    assert extra["multilingual-e5-base"]["aliases"] == ["text-embedding-3-small", "text-embedding-3-large",
                                                        "text-embedding-ada-002"]
    assert extra["gpt-oss-120b"]["aliases"] == []


@pytest.mark.parametrize(("name", "kind", "root"), [
    ("streaming-zipformer", "stt", None), ("whisper-1", "stt", "streaming-zipformer"),
    ("gpt-4o-mini-transcribe", "stt", "streaming-zipformer"), ("tts-1-hd", "tts", "openaudio-s1-mini"),
    ("text-embedding-ada-002", "embedding", "multilingual-e5-base"), ("gpt-oss-120b", "llm", None),
])
async def test_retrieve_answers_for_ids_and_aliases(oai: openai.AsyncOpenAI, name: str, kind: str, root: str | None) -> None:
    model = await oai.models.retrieve(name)
    assert model.id == name and model.object == "model" and model.owned_by == "monolith"
    assert model.model_extra is not None and model.model_extra["kind"] == kind and model.model_extra.get("root") == root


async def test_retrieve_an_unknown_model_is_openais_404(client: httpx.AsyncClient) -> None:
    with pytest.raises(openai.NotFoundError):
        await openai_client(client).models.retrieve("gpt-5")
    resp = await client.get("/v1/models/gpt-5")
    assert resp.status_code == 404
    assert resp.json() == {"error": {"type": "invalid_request_error", "message": "The model `gpt-5` does not exist.",
                                     "code": "model_not_found", "param": "model"}}


async def test_aliases_are_configurable(app_factory: AppFactory) -> None:
    settings = make_settings({"MONOLITH_STT__MODEL_ALIASES": '["my-asr"]', "MONOLITH_LLM__MODEL_ALIASES": '["gpt-4o"]'})
    async with running(app_factory(settings)) as client:
        assert (await client.get("/v1/models/my-asr")).json()["root"] == "streaming-zipformer"
        assert (await client.get("/v1/models/whisper-1")).status_code == 404
        chat = await client.post("/v1/chat/completions", json={"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]})
        assert chat.status_code == 200 and chat.json()["model"] == "gpt-oss-120b"


def test_one_alias_cannot_name_two_models() -> None:
    with pytest.raises(ConfigError, match="whisper-1"):
        make_settings({"MONOLITH_TTS__MODEL_ALIASES": '["whisper-1"]'})
