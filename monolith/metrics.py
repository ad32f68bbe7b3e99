"""Every Prometheus metric monolith exports, defined once in the default registry.

vLLM registers its `vllm:*` metrics in the same default registry, so one /metrics shows both.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

HTTP_REQUESTS = Counter(
    "monolith_http_requests", "HTTP requests served", ["method", "route", "status"]
)
ERRORS = Counter("monolith_errors", "Errors returned to clients", ["kind"])
FALLBACKS = Counter("monolith_provider_fallbacks", "Requests served by a fallback mock", ["provider"])
PROVIDER_LOADED = Gauge("monolith_provider_loaded", "1 when the provider is loaded", ["provider"])
PROVIDER_IS_MOCK = Gauge("monolith_provider_is_mock", "1 when a mock serves", ["provider"])
VOICE_SESSIONS = Gauge("monolith_voice_sessions_active", "Open voice sessions (every voice transport)")
VOICE_SESSIONS_CAPACITY = Gauge("monolith_voice_sessions_capacity", "Voice sessions this server accepts at once")
VOICE_SESSIONS_REJECTED = Counter("monolith_voice_sessions_rejected", "Voice sessions refused", ["reason"])
SLOW_CLIENTS_DROPPED = Counter("monolith_slow_clients_dropped", "Connections closed for sending their headers too slowly")
PROVIDER_RESTARTS = Counter("monolith_provider_restarts", "Engine restarts after it died or kept failing", ["provider"])
PROVIDER_TIMEOUTS = Counter("monolith_provider_timeouts", "Provider calls that produced nothing in time", ["provider"])
DRAINING = Gauge("monolith_draining", "1 while the server drains after SIGTERM")
TURNS = Counter("monolith_voice_turns", "Voice turns by outcome", ["outcome"])
PREEMPTIVE = Counter(
    "monolith_preemptive_responses",
    "Answers started at a pause in the user's speech: used (released at the end of the turn) or "
    "discarded (reason: transcript_changed, user_went_on, failed, other)",
    ["outcome", "reason"],
)
PREEMPTIVE_DISCARDED_LLM_CHARS = Counter(
    "monolith_preemptive_discarded_llm_chars", "Characters the LLM generated for preemptive answers thrown away"
)
PREEMPTIVE_DISCARDED_TTS_SECONDS = Counter(
    "monolith_preemptive_discarded_tts_seconds", "Seconds of audio TTS rendered for preemptive answers thrown away"
)
TURNS_ENDED = Counter("monolith_turns_ended", "User turns the server ended, by end-of-turn rule", ["rule"])
TURNS_ENDED_EARLY = Counter(
    "monolith_turns_ended_early", "User turns ended too early: the user spoke again within 1 s", ["rule"]
)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 3, 5, 10)
TURN_LATENCY = Histogram(
    "monolith_turn_latency_seconds",
    "Per-turn latency from end of user speech (partial: from speech start)",
    ["stage"],
    buckets=_LATENCY_BUCKETS,
)
BARGE_IN_LATENCY = Histogram(
    "monolith_barge_in_seconds",
    "From barge-in detection to response.cancelled sent",
    buckets=_LATENCY_BUCKETS,
)
LOOP_LAG = Histogram(
    "monolith_event_loop_lag_seconds",
    "How late the event loop woke up for a 10 ms timer",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1),
)
LOOP_LAG_MAX = Gauge("monolith_event_loop_lag_max_seconds", "Largest event loop lag seen")
STT_DECODE_SECONDS = Histogram(
    "monolith_stt_decode_seconds",
    "One batched sherpa-onnx decode call (all ready streams at once)",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1),
)
STT_BATCH_STREAMS = Histogram(
    "monolith_stt_batch_streams",
    "Streams decoded together in one batched sherpa-onnx call",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
EMBEDDING_BATCH_TEXTS = Histogram(
    "monolith_embedding_batch_texts",
    "Texts encoded together in one micro-batched forward pass",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
TTS_QUEUE_WAIT = Histogram(
    "monolith_tts_queue_wait_seconds",
    "Time a TTS chunk waited for its device (first: a response's first chunk)",
    ["chunk"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5),
)
TTS_BATCH_CHUNKS = Histogram(
    "monolith_tts_batch_chunks",
    "Chunks advanced together by one step of the batched TTS decoder ([tts] max_batch above 1)",
    buckets=(1, 2, 4, 8, 16, 32, 64),
)
