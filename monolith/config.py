"""Typed settings, loaded once: config.toml, then legacy env aliases, then MONOLITH_* env vars.

Precedence (later wins): defaults < config.toml < the old docker-compose `.env` names
(LEGACY_ALIASES) < `MONOLITH_<SECTION>__<KEY>` < command-line flags (--host/--port).
Every rejected value names its key and where it came from (the file or the variable).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from monolith.turn_end import COMPLETE_ENDINGS, INCOMPLETE_ENDINGS

DeviceSpec = Literal["cpu"] | list[int]
Fallback = Literal["mock", "none"]
ENV_PREFIX = "MONOLITH_"


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and its source."""


class _Section(BaseModel):
    # strict: TOML already carries types, so "6" for an int is a mistake worth reporting.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class ServerConfig(_Section):
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=1, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["json", "text"] = "json"
    admin_token: str = ""
    swap_wait_s: float = Field(10.0, ge=0)
    # A configured engine that failed (or died) while its mock serves makes /ready 503; true
    # keeps it 200 "degraded" for operators who prefer availability to a loud failure.
    ready_when_degraded: bool = False
    # Clients: API keys for every /v1 route and voice WebSocket (none: open), a file of keys (one
    # per line), browser origins allowed (CORS and WebSocket Origin; same origin always is).
    api_keys: list[str] = Field(default_factory=list)
    api_keys_file: str = ""
    metrics_need_key: bool = False  # /metrics: open to scrapers by default
    cors_origins: list[str] = Field(default_factory=list)
    # Bounds: request bodies, slow clients, open connections, shutdown.
    max_body_mb: float = Field(16.0, gt=0)
    header_timeout_s: float = Field(10.0, gt=0)  # a request's headers must arrive within this
    body_timeout_s: float = Field(30.0, gt=0)  # and each piece of its body within this
    max_connections: int = Field(1024, ge=1)
    drain_timeout_s: float = Field(60.0, gt=0)  # SIGTERM: running responses get this long to finish
    # Engines: how often each is checked, and how many failed calls in a row mean it is broken.
    health_check_interval_s: float = Field(2.0, gt=0)
    restart_after_failures: int = Field(5, ge=1)
    restart_backoff_max_s: float = Field(60.0, gt=0)


class MockLLMConfig(_Section):
    first_token_ms: float = Field(120.0, ge=0)
    tokens_per_second: float = Field(100.0, gt=0)


def redact_url(url: str) -> str:
    """`url` without user, password, query or fragment: what /health and the logs may show."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:  # IPv6
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port is not None else host
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


class RemoteLLMConfig(_Section):
    """`[llm.remote]`: the OpenAI-compatible server that serves the LLM when `llm.backend = "remote"`."""

    base_url: str = ""  # e.g. http://vllm-router:8000/v1 (the part before /chat/completions)
    # Sent as `Authorization: Bearer`; MONOLITH_LLM__REMOTE__API_KEY sets it from the environment.
    # OPENAI_API_KEY is not read: a developer's OpenAI key never goes to a self-hosted server.
    api_key: str = ""
    model: str = ""  # the name the server knows the model by; empty: the id monolith serves, else its only model
    connect_timeout_s: float = Field(5.0, gt=0)
    max_retries: int = Field(1, ge=0)  # retries of a request that failed before any answer (connect, 429, 5xx)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and (urlsplit(value).scheme not in ("http", "https") or not urlsplit(value).hostname):
            raise ValueError("expected an http:// or https:// URL such as http://vllm-router:8000/v1")
        return value.rstrip("/")

    @field_validator("api_key")
    @classmethod
    def _one_credential(cls, value: str, info: ValidationInfo) -> str:
        if value and urlsplit(info.data.get("base_url") or "").username is not None:
            raise ValueError("llm.remote.base_url holds a user and password (sent as HTTP Basic auth) and "
                             "api_key is set too (sent as a Bearer token); a request has one Authorization "
                             "header: keep one of them")
        return value

    @property
    def endpoint(self) -> str:
        return redact_url(self.base_url)


class LLMConfig(_Section):
    provider: Literal["vllm", "mock"] = "vllm"
    model: str = "weights/llm/gpt-oss-120b"
    served_model_name: str = ""
    model_aliases: list[str] = Field(default_factory=list)  # other names clients may ask for this model by
    devices: DeviceSpec = [0, 1, 2, 3, 4, 5]
    tensor_parallel_size: int = Field(2, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(0, ge=0)  # 0: as many replicas as the devices make room for
    max_model_len: int = Field(8192, ge=16)
    gpu_memory_utilization: float = Field(0.90, gt=0, le=1)
    dtype: str = "auto"
    max_num_seqs: int = Field(64, ge=1)
    reasoning_effort: Literal["low", "medium", "high"] = "low"
    # vLLM's tool-call parser for a chat-template model's output ("hermes", "llama3_json", ...;
    # vLLM's --tool-call-parser); empty: no tool calling. gpt-oss needs none (harmony).
    tool_call_parser: str = ""
    # vLLM's --tool-strict-level: "parameter" constrains every tool's arguments to its schema.
    tool_strict_level: Literal["auto", "function", "parameter"] = "auto"
    max_tokens: int = Field(512, ge=1)
    temperature: float = Field(0.7, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    engine_args: dict[str, Any] = Field(default_factory=dict)
    fallback: Fallback = "mock"
    first_output_timeout_s: float = Field(60.0, gt=0)  # no first token by then: the request fails
    output_gap_timeout_s: float = Field(30.0, gt=0)  # nor a next one
    remote: RemoteLLMConfig = RemoteLLMConfig()
    mock: MockLLMConfig = MockLLMConfig()
    # Where vLLM runs: local (an engine in this process's care, on `devices`) or remote (an
    # OpenAI-compatible server at `remote.base_url`: vLLM multi-node, its routers; no GPU here).
    # Declared after `remote` so that its check sees the URL.
    backend: Literal["local", "remote"] = "local"

    @field_validator("backend")
    @classmethod
    def _remote_has_a_url(cls, value: str, info: ValidationInfo) -> str:
        remote = info.data.get("remote")
        mock = info.data.get("provider") == "mock"  # a mock needs no server
        if value == "remote" and not mock and isinstance(remote, RemoteLLMConfig) and not remote.base_url:
            raise ValueError("a remote LLM needs llm.remote.base_url, the OpenAI-compatible server's URL "
                             "(e.g. http://vllm-router:8000/v1)")
        return value

    @property
    def is_remote(self) -> bool:
        return self.backend == "remote" and self.provider != "mock"

    def layout(self, device_count: int) -> tuple[int, int, int]:
        """(tensor, pipeline, data) parallel sizes, vLLM's own engine arguments; their product is
        the GPUs the engine takes. Data parallel 0 means every group of tensor x pipeline GPUs
        among `device_count` is a replica (1 on CPU)."""
        tp, pp = self.tensor_parallel_size, self.pipeline_parallel_size
        dp = self.data_parallel_size or max(1, device_count // (tp * pp))
        return tp, pp, dp


class MockSTTConfig(_Section):
    decode_delay_ms: float = Field(30.0, ge=0)
    transcript: str = "こんにちは、今日の天気を教えてください。"
    energy_threshold: float = Field(0.02, gt=0)
    # Every n-th turn the text at a pause lacks its last words, so the final transcript differs
    # from it (a recognizer revising its guess); 0: the text at a pause is always the final one.
    pause_text_differs_every: int = Field(0, ge=0)


class STTConfig(_Section):
    provider: Literal["sherpa-onnx", "mock"] = "sherpa-onnx"
    model: str = "weights/stt/streaming-zipformer"
    # Other names clients may ask for this model by (OpenAI's, so clients with OpenAI's defaults work)
    model_aliases: list[str] = Field(default_factory=lambda: ["whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe"])
    mode: Literal["auto", "streaming", "offline"] = "auto"
    model_type: Literal["auto", "transducer", "nemo_transducer", "zipformer2_ctc", "paraformer", "nemo_ctc",
                        "whisper", "sense_voice", "moonshine"] = "auto"
    language: str = "auto"  # Whisper and SenseVoice: the spoken language (ja, en, zh, ko, yue...), or auto
    encoder: str = ""
    decoder: str = ""
    joiner: str = ""
    tokens: str = ""
    ctc_model: str = ""
    devices: DeviceSpec = [6]
    onnx_provider: Literal["auto", "cpu", "cuda"] = "auto"
    num_threads: int = Field(2, ge=1)
    decoding_method: Literal["greedy_search", "modified_beam_search"] = "greedy_search"
    hotwords_file: str = ""
    hotwords_score: float = 1.5
    sample_rate: int = Field(16000, ge=8000)
    feature_dim: int = Field(80, ge=1)
    decode_interval_ms: float = Field(10.0, gt=0)
    offline_partial_interval_ms: float = Field(300.0, gt=0)
    endpoint_trailing_silence_ms: float = Field(600.0, gt=0)
    endpoint_no_speech_silence_ms: float = Field(2400.0, gt=0)
    max_utterance_s: float = Field(20.0, gt=0)
    vad_model: str = ""
    vad_threshold: float = Field(0.5, gt=0, lt=1)
    vad_min_speech_ms: float = Field(200.0, ge=0)
    vad_silence_ms: float = Field(500.0, gt=0)
    max_upload_mb: float = Field(25.0, gt=0)
    max_transcription_s: float = Field(600.0, gt=0)
    fallback: Fallback = "mock"
    first_output_timeout_s: float = Field(60.0, gt=0)  # opening a stream, or a file's first text
    output_gap_timeout_s: float = Field(60.0, gt=0)
    mock: MockSTTConfig = MockSTTConfig()


class MockTTSConfig(_Section):
    first_chunk_ms: float = Field(150.0, ge=0)
    real_time_factor: float = Field(0.1, ge=0)
    # Batched (tts.max_batch > 1): a step for b chunks costs b ** batch_cost_exponent times a step
    # for one, as a GPU's batched decode does (0: free, 1: no gain).
    batch_cost_exponent: float = Field(0.3, ge=0, le=1)


OPENAI_VOICES = ("alloy", "ash", "ballad", "coral", "echo", "fable", "onyx", "nova", "sage", "shimmer", "verse",
                 "marin", "cedar")


class TTSConfig(_Section):
    provider: Literal["fish-speech", "sherpa-onnx", "mock"] = "fish-speech"
    model: str = "weights/tts/openaudio-s1-mini"
    model_aliases: list[str] = Field(default_factory=lambda: ["tts-1", "tts-1-hd", "gpt-4o-mini-tts"])
    devices: DeviceSpec = [7]
    output_sample_rate: Literal[16000, 24000, 44100] = 24000
    voice: str = "default"
    # Voice names clients may ask for -> this server's voices (OpenAI's names, so clients with
    # OpenAI's defaults work unchanged).
    voice_aliases: dict[str, str] = Field(default_factory=lambda: dict.fromkeys(OPENAI_VOICES, "default"))
    max_new_tokens: int = Field(1024, ge=1)
    temperature: float = Field(0.7, gt=0)
    top_p: float = Field(0.7, gt=0, le=1)
    repetition_penalty: float = Field(1.2, gt=0)
    chunk_length: int = Field(200, ge=1)
    seed: int | None = None
    # torch.compile Fish's decoder: "auto" compiles on CUDA (about 30 -> 500 semantic tokens/s in
    # Fish's own figures; minutes of start-up, done before /ready) and not on CPU.
    compile: Literal["auto"] | bool = "auto"
    precision: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    max_input_chars: int = Field(4096, ge=1)
    scheduling: Literal["first-chunk-first", "fifo"] = "first-chunk-first"
    # Chunks the TTS device decodes together (Fish Speech's batched decode loop, the mock's model
    # of it); 1: one at a time. Engines that cannot batch (sherpa-onnx) render one at a time.
    max_batch: int = Field(1, ge=1, le=64)
    # sherpa-onnx voices (VITS/Piper, Matcha, Kokoro)
    num_threads: int = Field(2, ge=1)
    noise_scale: float = Field(0.667, ge=0)  # VITS/Matcha sampling noise (0: the same audio every time)
    noise_scale_w: float = Field(0.8, ge=0)
    length_scale: float = Field(1.0, gt=0)  # above 1: slower speech
    espeak_voice: str = ""  # espeak-ng voice for phonemes; empty: the model's own (its metadata)
    espeak_binary: str = "espeak-ng"
    fallback: Fallback = "mock"
    first_output_timeout_s: float = Field(30.0, gt=0)  # a chunk's first audio (after its queue turn)
    output_gap_timeout_s: float = Field(30.0, gt=0)
    mock: MockTTSConfig = MockTTSConfig()


class MockEmbeddingConfig(_Section):
    dimension: int = Field(384, ge=8)
    delay_ms: float = Field(5.0, ge=0)


class EmbeddingConfig(_Section):
    provider: Literal["sentence-transformers", "mock"] = "sentence-transformers"
    model: str = "weights/embedding/multilingual-e5-base"
    model_aliases: list[str] = Field(
        default_factory=lambda: ["text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"])
    # Token-id input (LangChain's OpenAIEmbeddings sends tiktoken ids by default): decoded with
    # OpenAI's embedding tokenizer (cl100k_base), with the served model's own tokenizer, or refused.
    token_ids: Literal["cl100k_base", "model", "reject"] = "cl100k_base"
    devices: DeviceSpec = [6]
    query_prefix: str = "query: "
    passage_prefix: str = "passage: "
    batch_size: int = Field(32, ge=1)
    max_batch_wait_ms: float = Field(5.0, ge=0)
    max_inputs: int = Field(256, ge=1)
    fallback: Fallback = "mock"
    first_output_timeout_s: float = Field(30.0, gt=0)
    output_gap_timeout_s: float = Field(30.0, gt=0)
    mock: MockEmbeddingConfig = MockEmbeddingConfig()


class RAGConfig(_Section):
    enabled: bool = True
    # faiss: a FAISS index file + a SQLite chunk store on this host, reloaded after an ingest.
    # pgvector: chunks, vectors and an HNSW index in PostgreSQL, read live (replicas share it).
    backend: Literal["faiss", "pgvector"] = "faiss"
    dsn: str = ""  # pgvector: libpq URI or key=value string (MONOLITH_RAG__DSN); never logged with its password
    pg_schema: str = Field("monolith_rag", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    index_path: str = "data/faiss/index.bin"
    store_path: str = "data/rag/chunks.sqlite3"
    index_type: Literal["flat", "hnsw", "ivf"] = "flat"
    hnsw_m: int = Field(32, ge=4, le=256)
    hnsw_ef_search: int = Field(64, ge=1, le=1000)
    hnsw_ef_construction: int = Field(64, ge=4, le=1000)  # pgvector's index build breadth (at least 2 * hnsw_m)
    ivf_nprobe: int = Field(8, ge=1)
    use_gpu: bool = False
    top_k: int = Field(3, ge=1, le=100)
    min_score: float = -1.0
    chunk_size: int = Field(400, ge=20)
    chunk_overlap: int = Field(80, ge=0)
    watch: bool = False
    watch_interval_s: float = Field(2.0, gt=0)

    @model_validator(mode="after")
    def _pgvector_settings(self) -> RAGConfig:
        if self.backend != "pgvector" or not self.enabled:
            return self
        if not self.dsn:
            raise ValueError('backend = "pgvector" needs `rag.dsn` (or MONOLITH_RAG__DSN): the PostgreSQL to use')
        if self.hnsw_m > 100:
            raise ValueError(f"pgvector's HNSW takes hnsw_m up to 100, not {self.hnsw_m}")
        if self.hnsw_ef_construction < 2 * self.hnsw_m:
            raise ValueError(
                f"pgvector needs hnsw_ef_construction ({self.hnsw_ef_construction}) at least twice hnsw_m ({self.hnsw_m})"
            )
        return self


class VoiceConfig(_Section):
    input_sample_rate: int = Field(16000, ge=8000, le=48000)
    max_sessions: int = Field(64, ge=1)
    idle_timeout_s: float = Field(300.0, gt=0)
    max_frame_bytes: int = Field(64000, ge=2)
    max_text_chars: int = Field(2000, ge=1)
    system_prompt: str = "You are a helpful voice assistant. Answer briefly, in the user's language."
    history_turns: int = Field(8, ge=0)
    use_rag: bool = False
    language: str = "ja"
    chunk_min_chars: int = Field(8, ge=1)
    chunk_max_chars: int = Field(120, ge=2)
    first_chunk_max_chars: int = Field(40, ge=2)
    barge_in_min_speech_ms: float = Field(200.0, ge=0)
    # Preemptive response: at a pause in the user's speech (end_of_turn_pause_ms of silence) the
    # answer starts on the transcript so far, unheard; the end of the turn releases it when the
    # final transcript says the same, and throws it away otherwise (or when the user goes on).
    preemptive: bool = False
    # The silence that ends a turn: "fixed" = [stt] vad_silence_ms after anything; "adaptive" =
    # end_of_turn_complete_ms after a complete sentence, end_of_turn_incomplete_ms after a
    # trailing particle, conjunction or filler (monolith/turn_end.py), the fixed silence otherwise.
    end_of_turn: Literal["fixed", "adaptive"] = "fixed"
    end_of_turn_pause_ms: float = Field(200.0, gt=0)
    end_of_turn_complete_ms: float = Field(300.0, gt=0)
    end_of_turn_incomplete_ms: float = Field(1000.0, gt=0)
    end_of_turn_complete_endings: list[str] = Field(default_factory=lambda: list(COMPLETE_ENDINGS))
    end_of_turn_incomplete_endings: list[str] = Field(default_factory=lambda: list(INCOMPLETE_ENDINGS))


class PlacementConfig(_Section):
    allow_shared: bool = False


class Settings(_Section):
    server: ServerConfig = ServerConfig()
    llm: LLMConfig = LLMConfig()
    stt: STTConfig = STTConfig()
    tts: TTSConfig = TTSConfig()
    embedding: EmbeddingConfig = EmbeddingConfig()
    rag: RAGConfig = RAGConfig()
    voice: VoiceConfig = VoiceConfig()
    placement: PlacementConfig = PlacementConfig()
    # Where relative paths (weights, index) are resolved: the config file's folder.
    base_dir: str = "."
    cpu_mock: bool = False

    def resolve(self, path: str) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else Path(self.base_dir) / p

    @model_validator(mode="after")
    def _aliases_name_one_model(self) -> Settings:
        owner: dict[str, str] = {}
        for section in ("llm", "stt", "tts", "embedding"):
            for alias in getattr(self, section).model_aliases:
                if alias in owner and owner[alias] != section:
                    raise ValueError(f"model alias {alias!r} is in both {owner[alias]}.model_aliases and "
                                     f"{section}.model_aliases: a name can stand for one model only")
                owner[alias] = section
        return self


PROVIDER_SECTIONS = ("llm", "stt", "tts", "embedding")


# --- legacy aliases: the docker-compose system's .env names --------------------------------

RawConfig = dict[str, Any]
AliasApply = Callable[[RawConfig, str], list[str]]


def _set(raw: RawConfig, dotted: str, value: Any) -> None:
    node = raw
    *parents, leaf = dotted.split(".")
    for part in parents:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"`{dotted}`: `{part}` is not a table")
        node = child
    node[leaf] = value


def _get(raw: RawConfig, dotted: str) -> Any:
    node: Any = raw
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def _to_key(dotted: str, convert: Callable[[str], Any] = str) -> AliasApply:
    def apply(raw: RawConfig, value: str) -> list[str]:
        _set(raw, dotted, convert(value))
        return [dotted]

    return apply


def _int(value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise ConfigError(f"expected an integer, got {value!r}") from None


def _tp_size(raw: RawConfig, value: str) -> list[str]:
    # The old system ran the model across its GPUs in tensor parallel only: one engine, no
    # pipeline or data parallel replicas.
    _set(raw, "llm.tensor_parallel_size", _int(value))
    _set(raw, "llm.pipeline_parallel_size", 1)
    _set(raw, "llm.data_parallel_size", 0)
    return ["llm.tensor_parallel_size", "llm.pipeline_parallel_size", "llm.data_parallel_size"]


def _gpu_count(raw: RawConfig, value: str) -> list[str]:
    _set(raw, "llm.devices", list(range(_int(value))))
    return ["llm.devices"]


def _device_kind(section: str) -> AliasApply:
    # The old STT_PROVIDER_RUNTIME / TTS_BACKEND said "cpu" or "cuda"; cuda keeps the GPU
    # that config.toml names, cpu moves the provider off the GPUs.
    def apply(raw: RawConfig, value: str) -> list[str]:
        kind = value.strip().lower()
        if kind not in ("cpu", "cuda"):
            raise ConfigError(f"expected `cpu` or `cuda`, got {value!r}")
        if section == "stt":
            _set(raw, "stt.onnx_provider", kind)
            return ["stt.onnx_provider"]
        if kind == "cpu":
            _set(raw, f"{section}.devices", "cpu")
        elif _get(raw, f"{section}.devices") == "cpu":
            raise ConfigError(f"says cuda but `{section}.devices` is cpu; name the GPU there")
        return [f"{section}.devices"]

    return apply


def _embedding_model(raw: RawConfig, value: str) -> list[str]:
    # TEI took a hub id ("intfloat/multilingual-e5-base"); monolith loads from weights/.
    looks_like_hub_id = value.count("/") == 1 and not value.startswith((".", "/", "~"))
    if looks_like_hub_id and not Path(value).exists():
        value = f"weights/embedding/{value.split('/')[1]}"
    _set(raw, "embedding.model", value)
    return ["embedding.model"]


LEGACY_ALIASES: dict[str, AliasApply] = {
    "LLM_MODEL_PATH": _to_key("llm.model"),
    "LLM_TP_SIZE": _tp_size,
    "LLM_GPU_COUNT": _gpu_count,
    "STT_MODEL_DIR": _to_key("stt.model"),
    "STT_PROVIDER_RUNTIME": _device_kind("stt"),
    "TTS_MODEL_DIR": _to_key("tts.model"),
    "TTS_BACKEND": _device_kind("tts"),
    "EMBEDDING_MODEL": _embedding_model,
    "RAG_INDEX_PATH": _to_key("rag.index_path"),
    "BACKEND_PORT": _to_key("server.port", _int),
}


def _parse_env_value(text: str) -> Any:
    """A TOML literal when it is one (`6`, `true`, `[0, 1]`, `"x"`), else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


@dataclass
class _Sources:
    """Remembers where each dotted key came from, to name it in errors."""

    default: str
    by_key: dict[str, str]

    def of(self, dotted: str) -> str:
        parts = dotted.split(".")
        for end in range(len(parts), 0, -1):
            found = self.by_key.get(".".join(parts[:end]))
            if found:
                return found
        return self.default


def _leaf_keys(raw: Mapping[str, Any], prefix: str = "") -> list[str]:
    keys: list[str] = []
    for key, value in raw.items():
        dotted = f"{prefix}{key}"
        is_table = isinstance(value, dict) and not dotted.endswith("engine_args")
        keys.extend(_leaf_keys(value, f"{dotted}.") if is_table else [dotted])
    return keys


def _read_toml(path: Path) -> RawConfig:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(
    path: Path | None,
    environ: Mapping[str, str] | None = None,
    *,
    cpu_mock: bool = False,
) -> Settings:
    """Read, merge and validate; raise ConfigError naming the key and its source."""
    env = os.environ if environ is None else environ
    raw: RawConfig = _read_toml(path) if path is not None else {}
    file_label = str(path) if path is not None else "defaults"
    sources = _Sources(file_label, {k: file_label for k in _leaf_keys(raw)})
    for name, apply in LEGACY_ALIASES.items():
        if name in env:
            try:
                keys = apply(raw, env[name])
            except ConfigError as exc:
                raise ConfigError(f"environment variable {name}: {exc}") from None
            sources.by_key.update({k: f"environment variable {name}" for k in keys})
    env_text: dict[str, str] = {}
    for name, text in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        dotted = name[len(ENV_PREFIX) :].lower().replace("__", ".")
        try:
            _set(raw, dotted, _parse_env_value(text))
        except ConfigError as exc:
            raise ConfigError(f"environment variable {name}: {exc}") from None
        sources.by_key[dotted] = f"environment variable {name}"
        env_text[dotted] = text
    for reserved in ("base_dir", "cpu_mock"):
        if reserved in raw:
            raise ConfigError(f"{sources.of(reserved)}: unknown key `{reserved}`")
    raw["base_dir"] = str(path.parent if path is not None else Path.cwd())
    raw["cpu_mock"] = cpu_mock
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        # A string key given a value that reads as another TOML literal (a token `123456`, a
        # name `true`): the variable's text is what was meant.
        retry = [d for d in (".".join(str(p) for p in e["loc"]) for e in exc.errors() if e["type"] == "string_type")
                 if d in env_text]
        if not retry:
            raise ConfigError(_describe(exc, sources)) from None
    for dotted in retry:
        _set(raw, dotted, env_text[dotted])
    try:
        return Settings.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, sources)) from None


def _describe(exc: ValidationError, sources: _Sources) -> str:
    lines = []
    for err in exc.errors():
        # Drop pydantic's union-branch labels ("list[int]", "literal['cpu']") from the key.
        loc = [str(p) for p in err["loc"] if not str(p).startswith(("list[", "literal["))]
        loc = [p for p in loc if not p.isdigit()] if err["type"] != "extra_forbidden" else loc
        dotted = ".".join(loc)
        what = "unknown key" if err["type"] == "extra_forbidden" else "invalid value for"
        detail = "" if err["type"] == "extra_forbidden" else f": {err['msg']}"
        secret = any(word in dotted for word in ("token", "key", "dsn", "password", "url"))
        # A whole table's check (a section's own validator) would print every value in it, secrets included.
        whole_table = isinstance(err.get("input"), dict | BaseModel)
        got = "" if err["type"] == "extra_forbidden" or secret or whole_table else f" (got {err.get('input')!r})"
        lines.append(f"{sources.of(dotted)}: {what} `{dotted}`{detail}{got}")
    return "\n".join(dict.fromkeys(lines))
