"""Download the production models into weights/, on a machine with internet access.

    python scripts/fetch_weights.py [--config config.toml] [--only llm stt tts embedding]
                                    [--repo stt=OWNER/NAME] [--revision main] [--skip-hash]
                                    [--small --into weights/small]

For each provider it downloads the model repository with huggingface_hub into the folder that
`[<provider>] model` names. Before it downloads, it checks that the disk has room. Each file is
verified (size, and SHA-256 for LFS files), and the folder must be complete as `--check` sees
it. Files go to a temporary folder beside the target, which is renamed into place only when all
of that holds, so a failed or interrupted download never leaves a half-written model folder. A
model already there is replaced in one rename (the old one is removed after).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monolith.config import ConfigError, load_settings  # noqa: E402
from monolith.registry.weights import missing_files  # noqa: E402

# provider -> the production model's Hugging Face repository (weights/README.md has the list)
PRODUCTION = {
    "llm": "openai/gpt-oss-120b",
    "stt": "csukuangfj/sherpa-onnx-streaming-zipformer-ar_en_id_ja_ru_th_vi_zh-2025-02-10",
    "tts": "fishaudio/openaudio-s1-mini",
    "embedding": "intfloat/multilingual-e5-base",
}
# Small real models with the production ones' architecture, for a quick GPU check
# (scripts/gpu_check.py): gpt-oss-20b has gpt-oss-120b's 64/8 attention heads; a 20M-parameter
# streaming zipformer; multilingual-e5-small. S1-mini is already small. `--small --into DIR`
# puts each in DIR/<provider>/<repository name>.
SMALL = {
    "llm": "openai/gpt-oss-20b",
    "stt": "csukuangfj/sherpa-onnx-streaming-zipformer-en-20M-2023-02-17",
    "tts": "fishaudio/openaudio-s1-mini",
    "embedding": "intfloat/multilingual-e5-small",
}
BACKENDS = {"llm": "vllm", "stt": "sherpa-onnx", "tts": "fish-speech", "embedding": "sentence-transformers"}
DISK_MARGIN = 1.05  # keep 5% beyond the download's own size


class FetchError(Exception):
    pass


@dataclass(frozen=True)
class RemoteFile:
    path: str
    size: int
    sha256: str | None  # LFS files carry one


class Hub(Protocol):
    """What is used of huggingface_hub (tests pass a local fake)."""

    def files(self, repo: str, revision: str) -> list[RemoteFile]: ...

    def download(self, repo: str, revision: str, into: Path) -> None: ...


class HuggingFaceHub:
    def __init__(self) -> None:
        from huggingface_hub import HfApi

        self.api = HfApi()

    def files(self, repo: str, revision: str) -> list[RemoteFile]:
        info: Any = self.api.model_info(repo, revision=revision, files_metadata=True)
        return [
            RemoteFile(s.rfilename, int(s.size or 0), s.lfs.sha256 if getattr(s, "lfs", None) else None)
            for s in info.siblings or []
        ]

    def download(self, repo: str, revision: str, into: Path) -> None:
        from huggingface_hub import snapshot_download

        snapshot_download(repo_id=repo, revision=revision, local_dir=str(into))


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def verify(folder: Path, files: list[RemoteFile], *, check_hash: bool) -> None:
    for remote in files:
        local = folder / remote.path
        if not local.is_file():
            raise FetchError(f"{remote.path} is missing after the download")
        if remote.size and local.stat().st_size != remote.size:
            raise FetchError(f"{remote.path} is {local.stat().st_size} bytes, expected {remote.size}")
        if check_hash and remote.sha256 and _sha256(local) != remote.sha256:
            raise FetchError(f"{remote.path}: SHA-256 does not match the repository's")


def fetch(provider: str, repo: str, target: Path, hub: Hub, *, revision: str = "main", check_hash: bool = True) -> Path:
    files = hub.files(repo, revision)
    if not files:
        raise FetchError(f"{repo} has no files (wrong repository or revision?)")
    needed = sum(f.size for f in files)
    target.parent.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(target.parent).free
    if needed * DISK_MARGIN > free:
        raise FetchError(f"{repo} needs {needed / 2**30:.1f} GiB; {target.parent} has {free / 2**30:.1f} GiB free")
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        hub.download(repo, revision, partial)
        shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's bookkeeping
        verify(partial, files, check_hash=check_hash)
        missing = missing_files(provider, BACKENDS[provider], partial)
        if missing:
            raise FetchError(f"{repo} does not look like a {provider} model: missing {', '.join(missing)}")
        old = target.with_name(f".{target.name}.old-{int(time.time())}")
        if target.exists():
            os.replace(target, old)
        os.replace(partial, target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return target


def main(argv: list[str] | None = None, hub: Hub | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "config.toml")
    parser.add_argument("--only", nargs="+", choices=sorted(PRODUCTION), default=sorted(PRODUCTION))
    parser.add_argument("--repo", action="append", default=[], metavar="PROVIDER=OWNER/NAME",
                        help="another repository for a provider")
    parser.add_argument("--revision", default="main")
    parser.add_argument("--skip-hash", action="store_true", help="check sizes only (hashing 65 GB takes minutes)")
    parser.add_argument("--small", action="store_true", help="the small models of scripts/gpu_check.py")
    parser.add_argument("--into", type=Path, help="put each model in INTO/<provider>/<name>, not where the config says")
    args = parser.parse_args(argv)
    repos = dict(SMALL if args.small else PRODUCTION)
    for item in args.repo:
        name, _, repo = item.partition("=")
        if name not in PRODUCTION or not repo:
            parser.error(f"--repo wants PROVIDER=OWNER/NAME with PROVIDER one of {sorted(PRODUCTION)}")
        repos[name] = repo
    try:
        settings = load_settings(args.config, {})
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    hub = hub or HuggingFaceHub()
    failed = 0
    for provider in args.only:
        target = (args.into / provider / repos[provider].split("/")[-1] if args.into
                  else settings.resolve(getattr(settings, provider).model))
        print(f"{provider}: {repos[provider]} -> {target}")
        try:
            fetch(provider, repos[provider], target, hub, revision=args.revision, check_hash=not args.skip_hash)
            print(f"{provider}: done")
        except FetchError as exc:
            failed += 1
            print(f"{provider}: failed: {exc}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
