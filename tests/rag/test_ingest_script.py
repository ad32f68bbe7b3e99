"""`python scripts/ingest.py`: the command line the old ingest job's users will type."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

from ..conftest import REPO
from .conftest import CORPUS


def run_ingest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ingest.py"), *args],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )


def test_ingest_prints_a_summary_and_is_incremental(tmp_path: Path, tiny_root: Path) -> None:
    docs = tmp_path / "docs"
    shutil.copytree(CORPUS, docs)
    index_file = tmp_path / "faiss" / "index.bin"
    store = tmp_path / "rag" / "chunks.sqlite3"
    # The old job's flags: --source, --index, and --providers (accepted, unused).
    args = ("--source", str(docs), "--index", str(index_file), "--store", str(store),
            "--config", str(tiny_root / "config.toml"), "--providers", "config/providers.yaml")
    first = run_ingest(*args)
    assert first.returncode == 0, first.stderr
    assert "files: 5 added, 0 changed, 0 removed, 0 unchanged (skipped), 1 unreadable" in first.stdout
    assert "unreadable: latin1.txt: not UTF-8" in first.stdout
    assert "embedding:" in first.stderr and "chunk" in first.stderr  # tqdm's progress bar
    assert "embedding with all-minilm-l6-v2 (sentence-transformers, 384 dims)" in first.stderr
    assert index_file.is_file() and store.is_file()

    (docs / "tokyo.md").write_text("東京タワーは赤と白の電波塔です。", encoding="utf-8")
    second = run_ingest(*args, "--quiet")
    assert second.returncode == 0, second.stderr
    assert "files: 0 added, 1 changed, 0 removed, 4 unchanged (skipped), 1 unreadable" in second.stdout
    assert "chunks: 1 embedded" in second.stdout


def test_switching_models_without_rebuild_exits_2_with_the_reason(tmp_path: Path, tiny_root: Path) -> None:
    base = ("--source", str(CORPUS), "--index", str(tmp_path / "index.bin"), "--store", str(tmp_path / "chunks.sqlite3"),
            "--config", str(tiny_root / "config.toml"), "--quiet")
    assert run_ingest(*base, "--cpu-mock").returncode == 0
    refused = run_ingest(*base)
    assert refused.returncode == 2
    assert "built with all-minilm-l6-v2 (mock, 384 dims)" in refused.stderr and "--rebuild" in refused.stderr
    rebuilt = run_ingest(*base, "--rebuild")
    assert rebuilt.returncode == 0 and "files: 5 added" in rebuilt.stdout


def test_missing_source_folder_exits_2(tmp_path: Path) -> None:
    result = run_ingest("--source", str(tmp_path / "nope"), "--cpu-mock", "--index", str(tmp_path / "i.bin"),
                        "--store", str(tmp_path / "s.sqlite3"))
    assert result.returncode == 2 and "does not exist" in result.stderr
