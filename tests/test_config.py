"""Config: one TOML file, env overrides, the old system's env names, and every rejection."""

from __future__ import annotations

from pathlib import Path

import pytest

from monolith.config import ConfigError, load_settings

from .conftest import REPO


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_shipped_config_is_the_8_gpu_layout() -> None:
    s = load_settings(REPO / "config.toml", {})
    assert s.llm.devices == [0, 1, 2, 3, 4, 5]
    assert s.llm.layout(6) == (2, 1, 3)  # tensor parallel 2 x data parallel 3
    assert (s.stt.devices, s.embedding.devices, s.tts.devices) == ([6], [6], [7])
    assert s.llm.reasoning_effort == "low"


def test_no_file_means_defaults() -> None:
    s = load_settings(None, {})
    assert s.server.port == 8000


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, '[llm]\nmodel = "llm"\n'), {})
    assert s.resolve(s.llm.model) == tmp_path / "llm"
    assert s.resolve("/abs/path") == Path("/abs/path")


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm]\ntensor_paralel_size = 6\n")
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    assert str(path) in str(err.value)
    assert "unknown key `llm.tensor_paralel_size`" in str(err.value)


def test_unknown_section_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key `gpu`"):
        load_settings(write(tmp_path, "[gpu]\nx = 1\n"), {})


def test_wrong_type_names_key_and_value(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\ntensor_parallel_size = "six"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    message = str(err.value)
    assert f"{path}: invalid value for `llm.tensor_parallel_size`" in message
    assert "'six'" in message


def test_wrong_device_spec_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`tts.devices`"):
        load_settings(write(tmp_path, '[tts]\ndevices = "gpu7"\n'), {})


def test_out_of_range_value_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="`server.port`"):
        load_settings(write(tmp_path, "[server]\nport = 70000\n"), {})


def test_broken_toml_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", {})


def test_env_overrides_file_with_typed_values(tmp_path: Path) -> None:
    path = write(tmp_path, "[llm]\ntensor_parallel_size = 6\n")
    env = {
        "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "2",
        "MONOLITH_LLM__DEVICES": "[0, 1]",
        "MONOLITH_LLM__MODEL": "weights/llm/other",
        "MONOLITH_LLM__MOCK__TOKENS_PER_SECOND": "55.5",
        "MONOLITH_RAG__WATCH": "true",
        "MONOLITH_TTS__DEVICES": '"cpu"',
        "MONOLITH_CONFIG": "ignored.toml",  # not a key: no double underscore
    }
    s = load_settings(path, env)
    assert s.llm.tensor_parallel_size == 2
    assert s.llm.devices == [0, 1]
    assert s.llm.model == "weights/llm/other"
    assert s.llm.mock.tokens_per_second == 55.5
    assert s.rag.watch is True
    assert s.tts.devices == "cpu"


def test_env_error_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(None, {"MONOLITH_LLM__MAX_TOKENS": "many"})
    assert "environment variable MONOLITH_LLM__MAX_TOKENS" in str(err.value)
    assert "`llm.max_tokens`" in str(err.value)


def test_env_unknown_key_names_the_variable() -> None:
    with pytest.raises(ConfigError, match="MONOLITH_LLM__NOPE: unknown key `llm.nope`"):
        load_settings(None, {"MONOLITH_LLM__NOPE": "1"})


def test_legacy_aliases_carry_an_old_env_over() -> None:
    env = {
        "LLM_MODEL_PATH": "/models/gpt-oss-120b",
        "LLM_TP_SIZE": "8",
        "LLM_GPU_COUNT": "8",
        "STT_MODEL_DIR": "/models/stt",
        "STT_PROVIDER_RUNTIME": "cuda",
        "TTS_MODEL_DIR": "/models/tts",
        "TTS_BACKEND": "cpu",
        "EMBEDDING_MODEL": "intfloat/multilingual-e5-base",
        "RAG_INDEX_PATH": "/data/faiss/index.bin",
        "BACKEND_PORT": "9000",
    }
    s = load_settings(REPO / "config.toml", env)
    assert s.llm.model == "/models/gpt-oss-120b"
    assert s.llm.tensor_parallel_size == 8
    assert s.llm.devices == list(range(8))
    assert s.stt.model == "/models/stt"
    assert s.stt.onnx_provider == "cuda"
    assert s.tts.model == "/models/tts"
    assert s.tts.devices == "cpu"
    assert s.embedding.model == "weights/embedding/multilingual-e5-base"
    assert s.rag.index_path == "/data/faiss/index.bin"
    assert s.server.port == 9000


def test_monolith_env_beats_legacy_alias() -> None:
    s = load_settings(None, {"BACKEND_PORT": "9000", "MONOLITH_SERVER__PORT": "9100"})
    assert s.server.port == 9100


def test_embedding_alias_keeps_a_real_path(tmp_path: Path) -> None:
    s = load_settings(None, {"EMBEDDING_MODEL": str(tmp_path)})
    assert s.embedding.model == str(tmp_path)


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("LLM_TP_SIZE", "six", "environment variable LLM_TP_SIZE: expected an integer"),
        ("BACKEND_PORT", "eighty", "environment variable BACKEND_PORT"),
        ("TTS_BACKEND", "tpu", "environment variable TTS_BACKEND: expected `cpu` or `cuda`"),
        ("STT_PROVIDER_RUNTIME", "rocm", "environment variable STT_PROVIDER_RUNTIME"),
        ("LLM_GPU_COUNT", "0x", "environment variable LLM_GPU_COUNT"),
    ],
)
def test_bad_legacy_values_name_the_variable(name: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError, match=expected):
        load_settings(REPO / "config.toml", {name: value})


def test_tts_backend_cuda_with_cpu_devices_is_a_contradiction(tmp_path: Path) -> None:
    path = write(tmp_path, '[tts]\ndevices = "cpu"\n')
    with pytest.raises(ConfigError, match="TTS_BACKEND: says cuda"):
        load_settings(path, {"TTS_BACKEND": "cuda"})


def test_reserved_internal_keys_are_not_settable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown key `cpu_mock`"):
        load_settings(write(tmp_path, "cpu_mock = true\n"), {})


def test_a_remote_llm_needs_a_url_and_the_error_says_which_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\nbackend = "remote"\n')
    with pytest.raises(ConfigError) as err:
        load_settings(path, {})
    assert f"{path}: invalid value for `llm.backend`" in str(err.value)
    assert "a remote LLM needs llm.remote.base_url" in str(err.value)
    with pytest.raises(ConfigError, match="environment variable MONOLITH_LLM__BACKEND"):
        load_settings(None, {"MONOLITH_LLM__BACKEND": '"remote"'})
    assert not load_settings(None, {"MONOLITH_LLM__BACKEND": '"remote"', "MONOLITH_LLM__PROVIDER": '"mock"'}).llm.is_remote


def test_remote_keys_from_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(tmp_path, '[llm]\nbackend = "remote"\n[llm.remote]\nbase_url = "https://llm.internal:8443/v1/"\n'
                           'model = "openai/gpt-oss-120b"\n')
    s = load_settings(path, {"MONOLITH_LLM__REMOTE__API_KEY": "12345"})  # a number-looking key stays a string
    assert s.llm.is_remote and s.llm.remote.api_key == "12345"
    assert s.llm.remote.base_url == "https://llm.internal:8443/v1" and s.llm.remote.endpoint == s.llm.remote.base_url
    from monolith.registry.factories import served_id

    assert served_id(s, "llm") == "openai/gpt-oss-120b"  # clients ask for the name the server knows
    assert load_settings(None, {}).llm.backend == "local"


@pytest.mark.parametrize("url", ["llm-host:8000/v1", "ftp://me:pw@host/v1", "http://"])
def test_a_remote_url_must_be_http_and_is_not_echoed(url: str) -> None:
    with pytest.raises(ConfigError, match="invalid value for `llm.remote.base_url`.*expected an http:// or https:// URL") as err:
        load_settings(None, {"MONOLITH_LLM__REMOTE__BASE_URL": url})
    assert "(got" not in str(err.value)  # a URL may carry a password


def test_a_password_in_the_url_and_an_api_key_are_one_credential_too_many() -> None:
    env = {"MONOLITH_LLM__REMOTE__BASE_URL": "http://me:pw@host/v1", "MONOLITH_LLM__REMOTE__API_KEY": "sk-sekrit"}
    with pytest.raises(ConfigError, match="one Authorization header") as err:
        load_settings(None, env)
    assert "sk-sekrit" not in str(err.value) and "pw" not in str(err.value).replace("pw@", "")


def test_redact_url_keeps_scheme_host_port_and_path_only() -> None:
    from monolith.config import redact_url

    assert redact_url("http://me:pw@host:8000/v1/?key=k#x") == "http://host:8000/v1"
    assert redact_url("https://[::1]/v1") == "https://[::1]/v1"
