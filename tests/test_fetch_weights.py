"""scripts/fetch_weights.py against a local fake repository: verified, atomic, never half-written."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import pytest

from .conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))

import fetch_weights  # noqa: E402
from fetch_weights import FetchError, RemoteFile, fetch  # noqa: E402


class LocalHub:
    """A 'repository' that is a local folder; `corrupt` damages one file as it is downloaded."""

    def __init__(self, source: Path, corrupt: str | None = None, sizes: dict[str, int] | None = None) -> None:
        self.source, self.corrupt, self.sizes = source, corrupt, sizes or {}
        self.downloads = 0

    def files(self, repo: str, revision: str) -> list[RemoteFile]:
        out = []
        for path in sorted(p for p in self.source.rglob("*") if p.is_file()):
            rel = path.relative_to(self.source).as_posix()
            digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.suffix == ".safetensors" else None
            out.append(RemoteFile(rel, self.sizes.get(rel, path.stat().st_size), digest))
        return out

    def download(self, repo: str, revision: str, into: Path) -> None:
        self.downloads += 1
        shutil.copytree(self.source, into)
        (into / ".cache").mkdir()
        if self.corrupt:
            data = bytearray((into / self.corrupt).read_bytes())
            data[0] ^= 0xFF
            (into / self.corrupt).write_bytes(bytes(data))


@pytest.fixture
def embedding_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "remote" / "multilingual-e5-base"
    repo.mkdir(parents=True)
    (repo / "config.json").write_text("{}")
    (repo / "modules.json").write_text("[]")
    (repo / "model.safetensors").write_bytes(b"weights" * 1000)
    return repo


def test_fetch_verifies_and_renames_into_place(tmp_path: Path, embedding_repo: Path) -> None:
    target = tmp_path / "weights" / "embedding" / "multilingual-e5-base"
    fetch("embedding", "intfloat/multilingual-e5-base", target, LocalHub(embedding_repo))
    assert (target / "model.safetensors").read_bytes() == b"weights" * 1000
    assert not (target / ".cache").exists()
    assert [p.name for p in target.parent.iterdir()] == ["multilingual-e5-base"]  # no leftovers


def test_a_corrupt_file_leaves_no_folder_and_keeps_the_old_model(tmp_path: Path, embedding_repo: Path) -> None:
    target = tmp_path / "weights" / "embedding" / "multilingual-e5-base"
    target.mkdir(parents=True)
    (target / "model.safetensors").write_text("the old, working model")
    with pytest.raises(FetchError, match="SHA-256"):
        fetch("embedding", "x/y", target, LocalHub(embedding_repo, corrupt="model.safetensors"))
    assert (target / "model.safetensors").read_text() == "the old, working model"
    assert [p.name for p in target.parent.iterdir()] == ["multilingual-e5-base"]


def test_size_mismatch_and_incomplete_models_are_refused(tmp_path: Path, embedding_repo: Path) -> None:
    target = tmp_path / "w" / "e"
    with pytest.raises(FetchError, match="expected 999"):
        fetch("embedding", "x/y", target, LocalHub(embedding_repo, sizes={"config.json": 999}))
    (embedding_repo / "model.safetensors").unlink()
    with pytest.raises(FetchError, match="does not look like a embedding model"):
        fetch("embedding", "x/y", target, LocalHub(embedding_repo))
    assert not target.exists()


def test_not_enough_disk_stops_before_downloading(tmp_path: Path, embedding_repo: Path) -> None:
    hub = LocalHub(embedding_repo, sizes={"model.safetensors": 10**15})  # a petabyte
    with pytest.raises(FetchError, match="GiB free"):
        fetch("embedding", "x/y", tmp_path / "w" / "e", hub)
    assert hub.downloads == 0


def test_the_command_fetches_what_config_names(tmp_path: Path, embedding_repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[embedding]\nmodel = "weights/embedding/e5"\n')
    code = fetch_weights.main(["--config", str(config), "--only", "embedding"], hub=LocalHub(embedding_repo))
    assert code == 0 and (tmp_path / "weights" / "embedding" / "e5" / "modules.json").exists()
    assert "embedding: done" in capsys.readouterr().out
