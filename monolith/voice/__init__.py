"""The voice session: turn loop, text chunking for TTS, barge-in, per-turn latency."""
