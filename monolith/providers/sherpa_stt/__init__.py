"""sherpa-onnx STT: model discovery, VAD, batched engines, the live decode loop, the provider."""

from monolith.providers.sherpa_stt.provider import SherpaSTT

__all__ = ["SherpaSTT"]
