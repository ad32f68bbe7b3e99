"""Providers import their libraries one at a time: a lazily-initialised module imported from
several loader threads at once is the race that once put Fish Speech on its mock."""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from monolith.config import Settings
from monolith.providers.base import Provider, import_names
from monolith.providers.mock_embedding import MockEmbedding
from monolith.providers.mock_stt import MockSTT
from monolith.providers.mock_tts import MockTTS
from monolith.registry import Registry
from monolith.scheduler.placement import Inventory, build_plan

from ..conftest import make_settings
from ..fakes import FakeRealLLM

# Like transformers' lazy namespace: a name resolves on first access, by importing a submodule;
# a second thread asking while the first is still importing finds it missing.
LAZY_INIT = '''
import importlib, threading, time
_loading = threading.Event()

def __getattr__(name):
    if name != "Thing":
        raise AttributeError(name)
    if _loading.is_set():
        raise ImportError("cannot import name 'Thing' from partially initialised module 'lazypkg'")
    _loading.set()
    time.sleep(0.2)
    thing = importlib.import_module("lazypkg._thing").Thing
    globals()["Thing"] = thing
    return thing
'''


@pytest.fixture
def lazypkg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    package = tmp_path / "lazypkg"
    package.mkdir()
    (package / "__init__.py").write_text(LAZY_INIT)
    (package / "_thing.py").write_text("Thing = object()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "lazypkg"
    for name in [n for n in sys.modules if n.startswith("lazypkg")]:
        del sys.modules[name]


def _importing(base: type[Provider]) -> type[Provider]:
    class Importing(base):  # type: ignore[valid-type,misc]
        backend = f"lazy-{base.kind}"
        is_mock = False

        def import_libraries(self) -> None:
            import_names("lazypkg", "Thing")

    return Importing


def _all_real_settings() -> Settings:
    env = {f"MONOLITH_{n}__DEVICES": '"cpu"' for n in ("LLM", "STT", "TTS", "EMBEDDING")}
    return make_settings({**env, "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1"}, cpu_mock=False)


def _builders() -> dict[str, object]:
    llm_cls = _importing(FakeRealLLM)
    stt_cls, tts_cls, emb_cls = _importing(MockSTT), _importing(MockTTS), _importing(MockEmbedding)
    return {
        "llm": lambda s, n: llm_cls(),
        "stt": lambda s, n: stt_cls(s.stt, model_id="stt"),
        "tts": lambda s, n: tts_cls(s.tts.mock, model_id="tts"),
        "embedding": lambda s, n: emb_cls(s.embedding.mock, model_id="embedding"),
    }


def test_the_fixture_really_races_when_imports_run_at_once(lazypkg: str) -> None:
    failures: list[BaseException] = []
    start = threading.Barrier(4)

    def load() -> None:
        start.wait()
        try:
            import_names(lazypkg, "Thing")
        except ImportError as exc:
            failures.append(exc)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures, "without the gate, concurrent imports of a lazy module fail"


async def test_four_providers_importing_the_same_lazy_module_all_load(lazypkg: str) -> None:
    settings = _all_real_settings()
    registry = Registry(settings, build_plan(settings, Inventory()), builders=_builders())  # type: ignore[arg-type]
    await registry.load_all()
    try:
        serving = {name: slot.serving for name, slot in registry.slots.items()}
        assert serving == {"llm": "engine", "stt": "engine", "tts": "engine", "embedding": "engine"}
        assert all(slot.failure is None for slot in registry.slots.values())
    finally:
        await registry.close()


class FlakyImportLLM(FakeRealLLM):
    """Its load raises ImportError the first time, as a name found missing mid-import would."""

    attempts = 0

    async def load(self) -> None:
        FlakyImportLLM.attempts += 1
        if FlakyImportLLM.attempts == 1:
            raise ImportError("cannot import name 'AutoTokenizer' from 'transformers'")


class SlowImportTTS(MockTTS):
    backend = "slow-import-tts"
    is_mock = False

    def import_libraries(self) -> None:
        threading.Event().wait(0.3)  # still importing when the LLM's load fails


async def test_an_import_error_while_another_provider_imports_is_retried_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    FlakyImportLLM.attempts = 0
    builders = {
        "llm": lambda s, n: FlakyImportLLM(),
        "tts": lambda s, n: SlowImportTTS(s.tts.mock, model_id="tts"),
    }
    env = {"MONOLITH_STT__PROVIDER": '"mock"', "MONOLITH_EMBEDDING__PROVIDER": '"mock"'}
    settings = make_settings({**env, "MONOLITH_LLM__DEVICES": '"cpu"', "MONOLITH_LLM__TENSOR_PARALLEL_SIZE": "1",
                              "MONOLITH_TTS__DEVICES": '"cpu"'}, cpu_mock=False)
    registry = Registry(settings, build_plan(settings, Inventory()), builders=builders)  # type: ignore[arg-type]
    caplog.set_level(logging.WARNING)
    await registry.load_all()
    try:
        assert FlakyImportLLM.attempts == 2
        assert registry.slots["llm"].serving == "engine" and registry.slots["llm"].failure is None
        assert any("ImportError" in r.getMessage() and "retrying once" in r.getMessage() for r in caplog.records)
    finally:
        await registry.close()


async def test_an_import_error_with_no_other_import_running_is_a_plain_failure() -> None:
    FlakyImportLLM.attempts = 0
    from ..conftest import real_llm_settings

    settings = real_llm_settings()
    registry = Registry(settings, build_plan(settings, Inventory()), builders={"llm": lambda s, n: FlakyImportLLM()})
    await registry.load_all()
    try:
        assert FlakyImportLLM.attempts == 1
        assert registry.slots["llm"].serving == "fallback_mock"
        assert "ImportError" in (registry.slots["llm"].failure or "")
    finally:
        await registry.close()
