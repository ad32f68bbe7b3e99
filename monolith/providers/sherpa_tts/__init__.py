"""sherpa-onnx text to speech: VITS/Piper, Matcha and Kokoro voices through OfflineTts."""

from monolith.providers.sherpa_tts.provider import SherpaTTS

__all__ = ["SherpaTTS"]
