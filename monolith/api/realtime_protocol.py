"""OpenAI's Realtime API (GA event names) over a voice session: the session's configuration as
the API describes it, and each typed session event as the Realtime events a client expects.

Audio is base64 PCM16 mono at 24 kHz both ways. Ids: a user item per spoken (or typed) turn, an
assistant message item per response (`item_<response id>`, added with the response's first text),
a `function_call` item per tool call (`item_<response id>_<output index>`), events numbered per
connection. What monolith adds rides along as `monolith.*` events (clients ignore unknown
events): RAG sources and each turn's latency figures."""

from __future__ import annotations

import base64
import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from monolith.api.errors import ws_error
from monolith.errors import InvalidRequest
from monolith.voice.events import (
    ResponseAudio,
    ResponseAudioStarted,
    ResponseCancelled,
    ResponseDone,
    ResponseFunctionCall,
    ResponseFunctionCallDelta,
    ResponseStarted,
    ResponseTextDelta,
    ServerEvent,
    SessionClosing,
    SessionCreated,
    SessionError,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptFinal,
    TranscriptPartial,
    TurnMetrics,
)
from monolith.voice.options import OptionsUpdate
from monolith.voice.tools import FunctionChoice, SessionTool, SessionToolChoice, check_tools

RATE = 24000  # the protocol's audio rate, in and out
PCM = {"type": "audio/pcm", "rate": RATE}
CANCEL_REASONS = {"barge_in": "turn_detected", "interrupted": "turn_detected", "client_cancel": "client_cancelled",
                  "truncated": "client_cancelled"}
TRANSCRIPTION_MODELS = ("default", "whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")


def deep_merge(base: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    """`change` over `base`, objects merged key by key (a partial session.update), None kept."""
    out = dict(base)
    for key, value in change.items():
        out[key] = deep_merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


@dataclass
class ServerVad:
    """The one voice-activity setting the server has (stt.vad_*): what it can honour."""

    threshold: float
    silence_duration_ms: int


def session_config(options: dict[str, Any], *, model: str, vad: ServerVad, transcription_model: str) -> dict[str, Any]:
    """The session as the Realtime API describes it, from the session's options."""
    turn_detection = None
    if options["turn_detection"]:
        turn_detection = {"type": "server_vad", "threshold": vad.threshold, "prefix_padding_ms": 300,
                          "silence_duration_ms": vad.silence_duration_ms, "create_response": options["create_response"],
                          "interrupt_response": options["interrupt_response"], "idle_timeout_ms": None}
    return {
        "type": "realtime", "object": "realtime.session", "model": model,
        "output_modalities": ["audio"] if options["output_audio"] else ["text"],
        "instructions": options["system_prompt"],
        "audio": {
            "input": {"format": dict(PCM), "transcription": {"model": transcription_model, "language": None},
                      "turn_detection": turn_detection, "noise_reduction": None},
            "output": {"format": dict(PCM), "voice": options["voice"], "speed": options["speed"]},
        },
        "tools": list(options.get("tools", [])), "tool_choice": options.get("tool_choice", "auto"),
        "parallel_tool_calls": options.get("parallel_tool_calls", True), "max_output_tokens": "inf",
    }


def options_from_session(session: dict[str, Any], *, vad: ServerVad) -> OptionsUpdate:
    """A (merged) GA session object -> the session's options; anything monolith cannot honour is
    an error naming it, and nothing changes."""
    known = {"type", "object", "id", "model", "output_modalities", "instructions", "audio", "tools", "tool_choice",
             "parallel_tool_calls", "max_output_tokens", "include", "tracing", "truncation", "prompt", "expires_at"}
    unknown = sorted(set(session) - known)
    if unknown:
        raise InvalidRequest(f"session.{unknown[0]} is not a session field", code="unknown_field", param=f"session.{unknown[0]}")
    if session.get("type", "realtime") != "realtime":
        raise InvalidRequest("only realtime sessions are served here (session.type = \"realtime\")",
                             code="unsupported_value", param="session.type")
    tools, tool_choice = parse_tools(session.get("tools") or [], session.get("tool_choice") or "auto", "session")
    modalities = session.get("output_modalities") or ["audio"]
    if not isinstance(modalities, list) or not set(modalities) <= {"audio", "text"} or len(modalities) != 1:
        raise InvalidRequest('session.output_modalities is ["audio"] or ["text"]', code="invalid_value",
                             param="session.output_modalities")
    audio = session.get("audio") or {}
    inp, out = audio.get("input") or {}, audio.get("output") or {}
    for where, fmt in (("input", inp.get("format")), ("output", out.get("format"))):
        if fmt is not None and (fmt.get("type") != "audio/pcm" or fmt.get("rate", RATE) != RATE):
            raise InvalidRequest(f"session.audio.{where}.format: only audio/pcm at 24000 Hz is served",
                                 code="unsupported_value", param=f"session.audio.{where}.format")
    transcription = inp.get("transcription")
    if transcription and transcription.get("model") not in (None, *TRANSCRIPTION_MODELS):
        raise InvalidRequest(f"session.audio.input.transcription.model {transcription.get('model')!r} is not served; "
                             f"use one of {', '.join(TRANSCRIPTION_MODELS)} (all are this server's recognizer)",
                             code="unsupported_value", param="session.audio.input.transcription.model")
    if inp.get("noise_reduction"):
        raise InvalidRequest("session.audio.input.noise_reduction is not supported", code="unsupported_value",
                             param="session.audio.input.noise_reduction")
    changes: dict[str, Any] = {"output_audio": modalities == ["audio"], "tools": tools, "tool_choice": tool_choice}
    if "turn_detection" in inp:
        detection = inp["turn_detection"]
        if detection is None:
            changes["turn_detection"] = False
        else:
            changes.update(_server_vad(detection, vad))
    if "instructions" in session and session["instructions"] is not None:
        changes["system_prompt"] = session["instructions"]
    if out.get("voice") is not None:
        voice = out["voice"]
        changes["voice"] = voice if isinstance(voice, str) else voice.get("id", "default")
    if out.get("speed") is not None:
        changes["speed"] = float(out["speed"])
    if session.get("parallel_tool_calls") is not None:
        changes["parallel_tool_calls"] = session["parallel_tool_calls"]
    try:
        return OptionsUpdate(**changes)
    except Exception as exc:
        raise InvalidRequest(f"session: {exc}", code="invalid_value") from None


def parse_tools(tools: Any, choice: Any, where: str) -> tuple[list[SessionTool], SessionToolChoice]:
    """`tools` and `tool_choice` (of `session` or of `response.create`'s `response`), checked, each
    error naming the field; function tools only."""
    if not isinstance(tools, Sequence) or isinstance(tools, str):
        raise InvalidRequest(f"{where}.tools is a list of function tools", code="invalid_value", param=f"{where}.tools")
    parsed = []
    for i, tool in enumerate(tools):
        if isinstance(tool, dict) and tool.get("type") not in (None, "function"):
            raise InvalidRequest(f"{where}.tools.{i}: {tool.get('type')!r} tools are not supported; only function tools",
                                 code="unsupported_value", param=f"{where}.tools.{i}.type")
        try:
            parsed.append(SessionTool.model_validate(tool))
        except ValidationError as exc:
            first = exc.errors()[0]
            param = ".".join([f"{where}.tools.{i}", *(str(p) for p in first["loc"])])
            raise InvalidRequest(f"{param}: {first['msg']}", code="invalid_value", param=param) from None
    parsed_choice: SessionToolChoice
    if choice in ("auto", "none", "required") or isinstance(choice, FunctionChoice):
        parsed_choice = choice
    elif isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        parsed_choice = FunctionChoice(type="function", name=choice["name"])
    else:
        raise InvalidRequest(f'{where}.tool_choice is "auto", "none", "required" or {{"type": "function", "name": ...}}',
                             code="unsupported_value" if isinstance(choice, dict) and choice.get("type") == "mcp"
                             else "invalid_value", param=f"{where}.tool_choice")
    check_tools(parsed, parsed_choice, prefix=f"{where}.")
    return parsed, parsed_choice


def _server_vad(detection: dict[str, Any], vad: ServerVad) -> dict[str, Any]:
    if detection.get("type") != "server_vad":
        raise InvalidRequest(f"turn_detection.type {detection.get('type')!r} is not supported; use server_vad or null",
                             code="unsupported_value", param="session.audio.input.turn_detection.type")
    threshold = detection.get("threshold")
    if threshold is not None and abs(threshold - vad.threshold) > 1e-6:
        raise InvalidRequest(f"turn_detection.threshold: this server's voice activity threshold is {vad.threshold} "
                             "(stt.vad_threshold); other values are not supported", code="unsupported_value",
                             param="session.audio.input.turn_detection.threshold")
    silence = detection.get("silence_duration_ms")
    if silence is not None and silence != vad.silence_duration_ms:
        raise InvalidRequest(f"turn_detection.silence_duration_ms: this server ends a turn after "
                             f"{vad.silence_duration_ms} ms of silence (stt.vad_silence_ms); other values are not "
                             "supported", code="unsupported_value",
                             param="session.audio.input.turn_detection.silence_duration_ms")
    if detection.get("idle_timeout_ms") is not None:
        raise InvalidRequest("turn_detection.idle_timeout_ms is not supported", code="unsupported_value",
                             param="session.audio.input.turn_detection.idle_timeout_ms")
    out: dict[str, Any] = {"turn_detection": True}
    for key in ("create_response", "interrupt_response"):
        if detection.get(key) is not None:
            out[key] = bool(detection[key])
    return out


@dataclass
class _Output:
    """What one response has put out so far: its items in output order, where its message is."""

    items: list[dict[str, Any]] = field(default_factory=list)
    message: int | None = None  # the output index of the assistant message, once it has text
    calls: dict[str, int] = field(default_factory=dict)  # call id -> output index
    open_calls: set[str] = field(default_factory=set)  # added, not done yet


@dataclass
class RealtimeEncoder:
    """Turns session events into Realtime events, keeping the ids that link them."""

    model: str
    vad: ServerVad
    transcription_model: str = "default"
    options: dict[str, Any] = field(default_factory=dict)
    _events: itertools.count[int] = field(default_factory=itertools.count)
    user_item: str | None = None
    last_item: str | None = None
    partial: str = ""
    transcripts: dict[str, str] = field(default_factory=dict)
    items: dict[str, str] = field(default_factory=dict)  # assistant item id -> response id
    outputs: dict[str, _Output] = field(default_factory=dict)  # response id -> what it put out

    def event(self, type_: str, **fields: Any) -> dict[str, Any]:
        return {"type": type_, "event_id": f"event_{next(self._events)}", **fields}

    def session(self) -> dict[str, Any]:
        return session_config(self.options, model=self.model, vad=self.vad,
                              transcription_model=self.transcription_model)

    def new_user_item(self) -> str:
        self.user_item = f"item_{uuid.uuid4().hex[:20]}"
        self.partial = ""
        return self.user_item

    def user_message(self, item_id: str, text: str, *, typed: bool) -> list[dict[str, Any]]:
        """A user item added and done (typed text, or a committed audio turn's transcript)."""
        content = {"type": "input_text", "text": text} if typed else {"type": "input_audio", "transcript": text}
        item = {"id": item_id, "object": "realtime.item", "type": "message", "role": "user", "status": "completed",
                "content": [content]}
        added = {**item, "content": [{**content, "transcript": None}] if not typed else [content]}
        return self._added_and_done(added, item)

    def function_output(self, item_id: str, call_id: str, output: str) -> list[dict[str, Any]]:
        """A tool's result the client added (`conversation.item.create`, `function_call_output`)."""
        item = {"id": item_id, "object": "realtime.item", "type": "function_call_output", "status": "completed",
                "call_id": call_id, "output": output}
        return self._added_and_done(item, item)

    def _added_and_done(self, added: dict[str, Any], done: dict[str, Any]) -> list[dict[str, Any]]:
        previous, self.last_item = self.last_item, done["id"]
        return [self.event("conversation.item.added", previous_item_id=previous, item=added),
                self.event("conversation.item.done", previous_item_id=previous, item=done)]

    def encode(self, ev: ServerEvent) -> list[dict[str, Any]]:  # noqa: C901 - one case per event, like the protocol
        match ev:
            case SessionCreated() | SessionUpdated():
                self.options = dict(ev.options)
                name = "session.created" if isinstance(ev, SessionCreated) else "session.updated"
                return [self.event(name, session=self.session())]
            case SpeechStarted():
                if not self.options.get("turn_detection", True):
                    return []
                return [self.event("input_audio_buffer.speech_started", audio_start_ms=int(ev.audio_ms),
                                   item_id=self.new_user_item())]
            case SpeechStopped():
                if not self.options.get("turn_detection", True) or self.user_item is None:
                    return []
                return [self.event("input_audio_buffer.speech_stopped", audio_end_ms=int(ev.audio_ms),
                                   item_id=self.user_item)]
            case TranscriptPartial():
                item = self.user_item or self.new_user_item()
                delta = ev.text[len(self.partial):] if ev.text.startswith(self.partial) else ""
                self.partial = ev.text if delta or not self.partial else self.partial
                return [self.event("conversation.item.input_audio_transcription.delta", item_id=item,
                                   content_index=0, delta=delta)] if delta else []
            case TranscriptFinal():
                item = self.user_item or self.new_user_item()
                self.user_item = None
                previous = self.last_item
                out = [self.event("input_audio_buffer.committed", item_id=item, previous_item_id=previous)]
                added, done = self.user_message(item, ev.text, typed=False)
                transcribed = self.event("conversation.item.input_audio_transcription.completed", item_id=item,
                                         content_index=0, transcript=ev.text,
                                         usage={"type": "duration", "seconds": round(ev.audio_ms / 1000, 3)})
                return [*out, added, transcribed, done]
            case ResponseStarted():
                self.outputs[ev.response_id] = _Output()
                return [self.event("response.created",
                                   response=self._response(ev.response_id, "in_progress", [], None))]
            case ResponseTextDelta():
                self.transcripts[ev.response_id] = self.transcripts.get(ev.response_id, "") + ev.delta
                kind = "response.output_audio_transcript.delta" if self._audio else "response.output_text.delta"
                opened = self._open_message(ev.response_id)
                return [*opened, self.event(kind, **self._where(ev.response_id), delta=ev.delta)]
            case ResponseAudioStarted():
                return []
            case ResponseAudio():
                opened = self._open_message(ev.response_id)
                return [*opened, self.event("response.output_audio.delta", **self._where(ev.response_id),
                                            delta=base64.b64encode(ev.pcm).decode("ascii"))]
            case ResponseFunctionCallDelta():
                opened = self._open_call(ev.response_id, ev.call_id, ev.name)
                if not ev.delta:
                    return opened
                return [*opened, self.event("response.function_call_arguments.delta",
                                            **self._call_where(ev.response_id, ev.call_id), delta=ev.delta)]
            case ResponseFunctionCall():
                return [*self._open_call(ev.response_id, ev.call_id, ev.name),
                        *self._call_done(ev.response_id, ev.call_id, ev.name, ev.arguments)]
            case ResponseDone():
                extra = []
                if ev.sources:
                    extra.append(self.event("monolith.rag.sources", response_id=ev.response_id, sources=[
                        {"source": p.source, "score": round(p.score, 4), "text": p.text} for p in ev.sources]))
                return [*extra, *self._response_done(ev.response_id, ev.text, "completed", None)]
            case ResponseCancelled():
                cancelled = {"type": "cancelled", "reason": CANCEL_REASONS.get(ev.reason, "client_cancelled")}
                return self._response_done(ev.response_id, ev.spoken_text, "cancelled", cancelled)
            case TurnMetrics():
                return [self.event("monolith.turn.metrics", response_id=ev.response_id, metrics=dict(ev.figures))]
            case SessionError():
                error = ws_error(ev.error)["error"]
                out = [self.event("error", error={**error, "event_id": None})]
                if ev.response_id is not None:
                    failed = {"type": "failed", "error": {"type": error["type"], "code": error["code"]}}
                    transcript = self.transcripts.get(ev.response_id, "")
                    out = [*self._response_done(ev.response_id, transcript, "failed", failed), *out]
                return out
            case SessionClosing():
                return [self.event("monolith.session.closing", reason=ev.reason, within_s=ev.within_s)]
        return []

    @property
    def _audio(self) -> bool:
        return bool(self.options.get("output_audio", True))

    def _output(self, response_id: str) -> _Output:
        return self.outputs.setdefault(response_id, _Output())

    def _where(self, response_id: str) -> dict[str, Any]:
        return {"response_id": response_id, "item_id": f"item_{response_id}",
                "output_index": self._output(response_id).message or 0, "content_index": 0}

    def _call_where(self, response_id: str, call_id: str) -> dict[str, Any]:
        index = self._output(response_id).calls[call_id]
        return {"response_id": response_id, "item_id": f"item_{response_id}_{index}", "output_index": index,
                "call_id": call_id}

    def _response(self, response_id: str, status: str, output: list[dict[str, Any]],
                  details: dict[str, Any] | None) -> dict[str, Any]:
        return {"id": response_id, "object": "realtime.response", "status": status, "status_details": details,
                "output": output, "output_modalities": ["audio" if self._audio else "text"],
                "conversation_id": None, "max_output_tokens": "inf", "metadata": None, "usage": None,
                "audio": {"output": {"format": dict(PCM), "voice": self.options.get("voice", "default")}}}

    def _item(self, response_id: str, status: str, transcript: str | None) -> dict[str, Any]:
        content = [] if transcript is None else [
            {"type": "output_audio", "transcript": transcript} if self._audio else {"type": "output_text", "text": transcript}]
        return {"id": f"item_{response_id}", "object": "realtime.item", "type": "message", "role": "assistant",
                "status": status, "content": content}

    def _part(self, transcript: str) -> dict[str, Any]:
        return {"type": "audio", "transcript": transcript} if self._audio else {"type": "text", "text": transcript}

    def _item_added(self, response_id: str, index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        previous, self.last_item = self.last_item, item["id"]
        return [self.event("response.output_item.added", response_id=response_id, output_index=index, item=item),
                self.event("conversation.item.added", previous_item_id=previous, item=item)]

    def _open_message(self, response_id: str) -> list[dict[str, Any]]:
        """The assistant message item, added with the response's first text (none for a response
        that only calls tools)."""
        out = self._output(response_id)
        if out.message is not None:
            return []
        out.message = len(out.items)
        item = self._item(response_id, "in_progress", None)
        out.items.append(item)
        self.items[item["id"]] = response_id
        return [*self._item_added(response_id, out.message, item),
                self.event("response.content_part.added", **self._where(response_id), part=self._part(""))]

    def _open_call(self, response_id: str, call_id: str, name: str) -> list[dict[str, Any]]:
        out = self._output(response_id)
        if call_id in out.calls:
            return []
        index = out.calls[call_id] = len(out.items)
        out.open_calls.add(call_id)
        item = {"id": f"item_{response_id}_{index}", "object": "realtime.item", "type": "function_call",
                "status": "in_progress", "call_id": call_id, "name": name, "arguments": ""}
        out.items.append(item)
        return self._item_added(response_id, index, item)

    def _call_done(self, response_id: str, call_id: str, name: str, arguments: str) -> list[dict[str, Any]]:
        out = self._output(response_id)
        where = self._call_where(response_id, call_id)
        index = where["output_index"]
        out.open_calls.discard(call_id)
        item = out.items[index] = {**out.items[index], "status": "completed", "name": name, "arguments": arguments}
        return [self.event("response.function_call_arguments.done", **where, name=name, arguments=arguments),
                *self._item_done(response_id, index, item)]

    def _item_done(self, response_id: str, index: int, item: dict[str, Any]) -> list[dict[str, Any]]:
        return [self.event("response.output_item.done", response_id=response_id, output_index=index, item=item),
                self.event("conversation.item.done", previous_item_id=None, item=item)]

    def _response_done(self, response_id: str, transcript: str, status: str,
                       details: dict[str, Any] | None) -> list[dict[str, Any]]:
        self.transcripts.pop(response_id, None)
        out = self.outputs.pop(response_id, _Output())
        events: list[dict[str, Any]] = []
        for call_id in sorted(out.open_calls, key=out.calls.__getitem__):  # cut off mid-call: never complete
            index = out.calls[call_id]
            out.items[index] = {**out.items[index], "status": "incomplete"}
            events += self._item_done(response_id, index, out.items[index])
        if out.message is not None:
            where = {"response_id": response_id, "item_id": f"item_{response_id}", "output_index": out.message,
                     "content_index": 0}
            item = out.items[out.message] = self._item(
                response_id, "completed" if status == "completed" else "incomplete", transcript)
            closing = [self.event("response.output_audio.done", **where),
                       self.event("response.output_audio_transcript.done", **where, transcript=transcript)] \
                if self._audio else [self.event("response.output_text.done", **where, text=transcript)]
            events += [*closing, self.event("response.content_part.done", **where, part=self._part(transcript)),
                       *self._item_done(response_id, out.message, item)]
        return [*events, self.event("response.done", response=self._response(response_id, status, out.items, details))]


def decode_audio_append(audio: Any) -> bytes:
    if not isinstance(audio, str):
        raise InvalidRequest("input_audio_buffer.append: audio is a base64 string", code="invalid_value", param="audio")
    try:
        pcm = base64.b64decode(audio, validate=True)
    except ValueError:
        raise InvalidRequest("input_audio_buffer.append: audio is not valid base64", code="invalid_value",
                             param="audio") from None
    if len(pcm) % 2:
        raise InvalidRequest("input_audio_buffer.append: PCM16 audio has an even number of bytes",
                             code="invalid_audio", param="audio")
    return pcm
