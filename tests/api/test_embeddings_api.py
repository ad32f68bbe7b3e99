"""POST /v1/embeddings with the real tiny model, through the official openai client and raw HTTP."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from ..conftest import build_app, load_tiny, running


@pytest.fixture
async def client(tiny_root: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = load_tiny(tiny_root, {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_EMBEDDING__MAX_INPUTS": "8"})
    app = build_app(settings)
    async with running(app) as c:
        assert app.state.registry.health()["embedding"]["provider"] == "sentence-transformers"
        yield c


async def test_openai_client_default_base64_and_float_agree(oai: openai.AsyncOpenAI) -> None:
    texts = ["The battery lasts 40 hours.", "Refunds take five business days."]
    default = await oai.embeddings.create(model="all-minilm-l6-v2", input=texts)  # the client asks for base64
    floats = await oai.embeddings.create(model="all-minilm-l6-v2", input=texts, encoding_format="float")
    assert [d.index for d in default.data] == [0, 1]
    a = np.array([d.embedding for d in default.data])
    b = np.array([d.embedding for d in floats.data])
    assert a.shape == (2, 384)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    assert default.model == "all-minilm-l6-v2"
    assert default.usage.prompt_tokens == default.usage.total_tokens > 8


async def test_base64_on_the_wire_is_little_endian_float32(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/embeddings", json={"input": "hello", "encoding_format": "base64"})
    assert resp.status_code == 200
    raw = base64.b64decode(resp.json()["data"][0]["embedding"])
    vec = np.frombuffer(raw, dtype="<f4")
    assert vec.shape == (384,) and abs(float(np.linalg.norm(vec)) - 1) < 1e-5
    floats = (await client.post("/v1/embeddings", json={"input": "hello"})).json()  # API default: float
    np.testing.assert_allclose(vec, floats["data"][0]["embedding"], atol=1e-6)


HELLO_WORLD_CL100K = [15339, 1917]  # tiktoken.get_encoding("cl100k_base").encode("hello world")


async def test_tiktoken_ids_give_the_same_vector_as_the_text(client: httpx.AsyncClient) -> None:
    """LangChain's OpenAIEmbeddings sends cl100k_base ids: they are read back to the text."""
    as_text = (await client.post("/v1/embeddings", json={"input": "hello world"})).json()
    as_ids = await client.post("/v1/embeddings", json={"input": HELLO_WORLD_CL100K, "model": "text-embedding-3-small"})
    many = await client.post("/v1/embeddings", json={"input": [HELLO_WORLD_CL100K, [15339]]})
    assert as_ids.status_code == 200, as_ids.text
    np.testing.assert_allclose(as_text["data"][0]["embedding"], as_ids.json()["data"][0]["embedding"], atol=1e-6)
    assert len(many.json()["data"]) == 2 and as_ids.json()["model"] == "all-minilm-l6-v2"


async def test_ids_outside_cl100k_base_are_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/embeddings", json={"input": [15339, 100256]})
    assert resp.status_code == 400
    assert "token id 100256 is not in cl100k_base" in resp.json()["error"]["message"]
    assert resp.json()["error"]["param"] == "input"


async def test_without_the_vocabulary_token_ids_are_a_400_that_says_what_to_do(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from monolith.providers import tiktoken_ids

    tiktoken_ids.cl100k_base.cache_clear()
    monkeypatch.setattr(tiktoken_ids, "vocabulary_file", lambda: None)
    resp = await client.post("/v1/embeddings", json={"input": HELLO_WORLD_CL100K})
    tiktoken_ids.cl100k_base.cache_clear()
    error = resp.json()["error"]
    assert resp.status_code == 400 and error["code"] == "token_ids_unsupported"
    assert "monolith[openai-tokens]" in error["message"] and "check_embedding_ctx_length=False" in error["message"]


async def test_token_ids_can_be_read_with_the_models_own_tokenizer_or_refused(tiny_root: Path) -> None:
    for how, status in (("model", 200), ("reject", 400)):
        settings = load_tiny(tiny_root, {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_EMBEDDING__TOKEN_IDS": f'"{how}"'})
        async with running(build_app(settings)) as c:
            as_text = (await c.post("/v1/embeddings", json={"input": "hello world"})).json()
            as_ids = await c.post("/v1/embeddings", json={"input": [7592, 2088]})  # MiniLM's (BERT's) ids
        assert as_ids.status_code == status, as_ids.text
        if how == "model":
            np.testing.assert_allclose(as_text["data"][0]["embedding"], as_ids.json()["data"][0]["embedding"], atol=1e-6)
        else:
            assert "check_embedding_ctx_length=False" in as_ids.json()["error"]["message"]


async def test_dimensions_equal_to_the_models_is_accepted_other_values_refused(oai: openai.AsyncOpenAI) -> None:
    ok = await oai.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=384)
    assert len(ok.data[0].embedding) == 384
    with pytest.raises(openai.BadRequestError) as err:
        await oai.embeddings.create(model="all-minilm-l6-v2", input="x", dimensions=128)
    assert "384-dimensional" in err.value.message and "dimensions" in err.value.message


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"input": []}, 400, "input is empty"),
        ({"input": ""}, 400, "input[0] is empty"),
        ({"input": ["ok", "  "]}, 400, "input[1] is empty"),
        ({"input": [f"t{i}" for i in range(9)]}, 400, "at most 8 per request"),
        ({"input": "x", "model": "text-embedding-4"}, 404, "text-embedding-4"),
        ({"input": "x", "encoding_format": "int8"}, 400, "encoding_format"),
        ({"input": 5}, 400, "input"),
        ({}, 400, "input"),
    ],
)
async def test_bad_requests_get_clear_4xx(client: httpx.AsyncClient, body: dict[str, object], status: int, message: str) -> None:
    resp = await client.post("/v1/embeddings", json=body)
    assert resp.status_code == status, resp.text
    assert message in resp.json()["error"]["message"]


async def test_body_that_is_not_json_is_400(client: httpx.AsyncClient) -> None:
    resp = await client.post("/v1/embeddings", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["error"]["code"] == "invalid_json"


async def test_input_type_query_adds_the_configured_prefix(tiny_root: Path) -> None:
    settings = load_tiny(
        tiny_root,
        {"MONOLITH_RAG__ENABLED": "false", "MONOLITH_EMBEDDING__QUERY_PREFIX": '"query: "'},
    )
    app = build_app(settings)
    async with running(app) as c:
        typed = (await c.post("/v1/embeddings", json={"input": "battery", "input_type": "query"})).json()
        by_hand = (await c.post("/v1/embeddings", json={"input": "query: battery"})).json()
        raw = (await c.post("/v1/embeddings", json={"input": "battery"})).json()
    np.testing.assert_allclose(typed["data"][0]["embedding"], by_hand["data"][0]["embedding"], atol=1e-6)
    assert not np.allclose(typed["data"][0]["embedding"], raw["data"][0]["embedding"], atol=1e-3)
