"""Fish Speech TTS: import-time stand-ins (compat) and the provider."""

from monolith.providers.fish_tts.provider import FishTTS

__all__ = ["FishTTS"]
