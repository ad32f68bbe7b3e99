// app.js - browser voice client for monolith's OpenAI-Realtime-compatible endpoint (GA events).
//
// Flow: Start -> getUserMedia (echo cancellation, noise suppression, mono) -> AudioContext at
// 24 kHz (or at the device rate where the browser refuses to mix rates, e.g. Firefox) ->
// capture worklet (PCM16 24 kHz, 20 ms frames) -> `input_audio_buffer.append` over a WebSocket to
// /v1/realtime on this host. Server audio (`response.output_audio.delta`, PCM16 24 kHz base64)
// goes to the playback worklet's queue; that queue is flushed on barge-in.
//
// URL parameters:
//   ?autostart=1   start without a click (browsers need a user gesture or an autoplay policy
//                  for audio; without it the page asks for a click to resume audio)
//   ?key=...       prefill the API key field
//   ?voice=NAME    preselect (and if needed add) a voice; ?voices=a,b,c replaces the voice list
//   ?prompt=...    prefill the system prompt
//   ?model=NAME    appended to the socket URL as ?model= (OpenAI style; monolith may ignore it)
//   ?ws=URL        socket URL override (default ws[s]://<this host>/v1/realtime)
//   ?nativeRate=1  run the AudioContext at the device rate and resample in the worklets (the
//                  Firefox path; lets Chromium exercise it)
//   ?truncate=0    do not send conversation.item.truncate on barge-in
//
// window.monolith - the page's whole state, for people, scripts and tests (read-only by intent):
//   connected       bool     socket open
//   status          string   the status line's text
//   sessionId       string|null  from session.created
//   session         object|null  last session object from session.created/updated
//   transcripts     string[] the user's final transcripts, in order
//   partial         string   the user's current partial transcript ("" when none)
//   answers         string[] the assistant's final texts (one per finished response with text;
//                            interrupted ones hold what had arrived)
//   responses       object[] {id, status, text, audioSamples, sources, metrics, startedAt, doneAt}
//   currentResponseId string|null  the response in progress
//   samplesPlayed   number   24 kHz samples the playback worklet has rendered (cumulative)
//   samplesReceived number   24 kHz samples queued from output_audio.delta (cumulative)
//   samplesFlushed  number   24 kHz samples dropped unplayed by flushes (cumulative)
//   playing         bool     playback queue is sounding
//   flushes         number   playback flushes (barge-in / cancelled responses)
//   lastMetrics     object|null  last monolith.turn.metrics `metrics` (figures in ms)
//   lastSources     object[] last monolith.rag.sources `sources` [{source, score, text}]
//   speaking        bool     between speech_started and speech_stopped
//   events          number   server events received;  eventCounts: {type: count}
//   sent            number   client events sent;      framesSent: audio frames sent
//   micFrames, micRms, micPeak   capture worklet frames seen (20 ms, 480 samples at 24 kHz),
//                   the last frame's RMS and the peak so far (0..1)
//   micInputSamples number   context-rate samples the capture worklet consumed (this start)
//   framesDropped   number   audio frames dropped (socket not open or backed up)
//   contextRate     number   AudioContext sample rate; resampling: bool (worklets resample)
//   audioTime       number   AudioContext.currentTime, refreshed at each mic frame and every
//                            250 ms (the audio clock)
//   errors          object[] {type, code, message, at} from `error` events and client failures
//   closeCode, closeReason   of the last socket close
// Methods (non-enumerable): start(), stop(), send(event).

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const SOURCE_RATE = 24000;
const FRAME_MS = 20;
const MAX_BUFFERED = 1 << 20; // bytes queued in the socket before mic frames are dropped
const DEFAULT_VOICES = ["default", "alloy", "ash", "ballad", "cedar", "coral", "echo", "marin", "sage", "shimmer", "verse"];

const state = {
  connected: false, status: "idle", sessionId: null, session: null,
  transcripts: [], partial: "", answers: [], responses: [], currentResponseId: null,
  samplesPlayed: 0, samplesReceived: 0, samplesFlushed: 0, playing: false, flushes: 0,
  lastMetrics: null, lastSources: [], speaking: false,
  events: 0, eventCounts: {}, sent: 0, framesSent: 0,
  micFrames: 0, micRms: 0, micPeak: 0, micInputSamples: 0, framesDropped: 0,
  contextRate: null, resampling: false, audioTime: 0,
  errors: [], closeCode: null, closeReason: null,
};
window.monolith = state;

let ws = null, ctx = null, stream = null, captureNode = null, playbackNode = null, micSource = null;
let clockTimer = null, running = false;
const partials = new Map(); // item_id -> partial text
const byId = new Map(); // response_id -> {record, el}
let audioItem = null; // {item_id, content_index, startPlayed} of the audio now playing
let flushInFlight = false; // a flush was posted and the worklet has not answered yet
let truncateItem = null; // the audio item cut by that flush
const muted = new Set(); // response ids interrupted by barge-in: their late audio is dropped

// ---------------------------------------------------------------- UI helpers

function setStatus(text, isError = false) {
  state.status = text;
  const el = $("status");
  el.textContent = text;
  el.classList.toggle("error", isError);
}

function addError(type, code, message) {
  const e = { type, code: code || null, message: String(message || ""), at: Date.now() };
  state.errors.push(e);
  const div = document.createElement("div");
  div.textContent = `${type}${code ? ` [${code}]` : ""}: ${e.message}`;
  $("errors").append(div);
  return e;
}

function addTurn(cls, who) {
  const el = document.createElement("div");
  el.className = `turn ${cls}`;
  const w = document.createElement("div");
  w.className = "who";
  w.textContent = who;
  const t = document.createElement("div");
  t.className = "text";
  el.append(w, t);
  $("log").append(el);
  el.scrollIntoView({ block: "end" });
  return el;
}

function fmtMetrics(m) {
  return Object.entries(m || {})
    .map(([k, v]) => `${k.replace(/_ms$/, "")} ${typeof v === "number" ? Math.round(v) : v ?? "-"}`)
    .join(" · ") + " ms";
}

function setupForm() {
  const sel = $("voice");
  const list = params.get("voices") ? params.get("voices").split(",").map((s) => s.trim()).filter(Boolean) : DEFAULT_VOICES;
  const want = params.get("voice");
  if (want && !list.includes(want)) list.unshift(want);
  for (const v of list) sel.append(new Option(v, v, false, v === want));
  if (params.get("key")) $("key").value = params.get("key");
  if (params.get("prompt")) $("prompt").value = params.get("prompt");
  $("settings-form").addEventListener("submit", (e) => e.preventDefault()); // Enter in a field
  $("start").addEventListener("click", () => (running ? stop() : start()));
  // Voice/prompt edits while connected go out as a new session.update.
  sel.addEventListener("change", () => state.connected && sendSessionUpdate());
  $("prompt").addEventListener("change", () => state.connected && sendSessionUpdate());
}

// ---------------------------------------------------------------- base64 <-> PCM16

function bytesToBase64(bytes) {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  return btoa(s);
}

function base64ToBytes(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

let oddByte = null; // a delta with an odd byte count leaves one byte for the next
function audioDeltaToPcm(b64) {
  let bytes = base64ToBytes(b64);
  if (oddByte !== null) {
    const joined = new Uint8Array(bytes.length + 1);
    joined[0] = oddByte;
    joined.set(bytes, 1);
    bytes = joined;
    oddByte = null;
  }
  if (bytes.length % 2) { oddByte = bytes[bytes.length - 1]; bytes = bytes.subarray(0, bytes.length - 1); }
  return bytes.slice().buffer; // own buffer, transferable; PCM16 LE = Int16Array on LE hosts
}

// ---------------------------------------------------------------- socket

function send(event) {
  if (!ws || ws.readyState !== WebSocket.OPEN) return false;
  ws.send(JSON.stringify(event));
  state.sent++;
  return true;
}

function sendSessionUpdate() {
  send({
    type: "session.update",
    session: {
      type: "realtime",
      instructions: $("prompt").value,
      output_modalities: ["audio"],
      audio: {
        input: {
          format: { type: "audio/pcm", rate: SOURCE_RATE },
          turn_detection: { type: "server_vad" },
          transcription: { model: "default" },
        },
        output: { format: { type: "audio/pcm", rate: SOURCE_RATE }, voice: $("voice").value },
      },
    },
  });
}

function socketUrl() {
  if (params.get("ws")) return params.get("ws");
  const u = new URL("/v1/realtime", location.href);
  u.protocol = location.protocol === "https:" ? "wss:" : "ws:";
  if (params.get("model")) u.searchParams.set("model", params.get("model"));
  return u.href;
}

function connect() {
  const key = $("key").value.trim();
  const protocols = key ? ["realtime", `openai-insecure-api-key.${key}`] : ["realtime"];
  return new Promise((resolve, reject) => {
    let opened = false;
    ws = new WebSocket(socketUrl(), protocols);
    ws.onopen = () => {
      opened = true;
      state.connected = true;
      state.closeCode = state.closeReason = null;
      setStatus("connected");
      sendSessionUpdate();
      resolve();
    };
    ws.onmessage = (e) => {
      let ev;
      try { ev = JSON.parse(e.data); } catch { addError("client", "invalid_json", "server sent non-JSON"); return; }
      state.events++;
      state.eventCounts[ev.type] = (state.eventCounts[ev.type] || 0) + 1;
      try { handle(ev); } catch (err) { addError("client", "handler", `${ev.type}: ${err}`); }
    };
    ws.onerror = () => { /* details arrive in onclose */ };
    ws.onclose = (e) => {
      state.connected = false;
      state.closeCode = e.code;
      state.closeReason = e.reason;
      if (!opened) {
        reject(new Error(`socket failed (code ${e.code}${e.reason ? `, ${e.reason}` : ""})`));
        return;
      }
      if (running) {
        addError("client", `close_${e.code}`, e.reason || "connection closed");
        stop(`disconnected (code ${e.code}${e.reason ? `: ${e.reason}` : ""})`);
      }
    };
  });
}

// ---------------------------------------------------------------- server events

function responseEntry(id) {
  if (!id) id = state.currentResponseId || "unknown";
  let r = byId.get(id);
  if (!r) {
    const record = { id, status: "in_progress", text: "", audioSamples: 0, sources: [], metrics: null,
      startedAt: performance.now(), doneAt: null };
    const el = addTurn("assistant", "assistant");
    r = { record, el, finalText: null };
    byId.set(id, r);
    state.responses.push(record);
  }
  return r;
}

function renderAnswer(r) {
  r.el.querySelector(".text").textContent = r.finalText ?? r.record.text;
}

function flushPlayback(reason) {
  if (!playbackNode) return;
  playbackNode.port.postMessage({ type: "flush" });
  flushInFlight = true;
  // The worklet answers "flushed" with the exact played count; conversation.item.truncate (how
  // much of the item the user heard, as OpenAI's API expects) goes out then.
  truncateItem = params.get("truncate") !== "0" ? audioItem : null;
  state.flushes++;
  state.playing = false;
  audioItem = null;
  setStatus(`playback flushed (${reason})`);
}

function onFlushed(played) {
  flushInFlight = false;
  const item = truncateItem;
  truncateItem = null;
  if (!item) return;
  const heard = Math.max(0, played - item.startPlayed);
  send({ type: "conversation.item.truncate", item_id: item.item_id, content_index: item.content_index || 0,
    audio_end_ms: Math.round((heard * 1000) / SOURCE_RATE) });
}

function audioPending() { // anything sounding or queued in the playback worklet
  if (flushInFlight) return false;
  return state.playing || state.samplesReceived - state.samplesFlushed - state.samplesPlayed > 2;
}

function handle(ev) {
  switch (ev.type) {
    case "session.created":
      state.sessionId = (ev.session && ev.session.id) || null;
      state.session = ev.session || null;
      setStatus("session created");
      break;
    case "session.updated":
      state.session = ev.session || state.session;
      setStatus("listening");
      break;
    case "input_audio_buffer.speech_started": {
      state.speaking = true;
      const cur = state.currentResponseId && byId.get(state.currentResponseId);
      if (audioPending() || (cur && cur.record.audioSamples > 0)) {
        // Barge-in: stop talking now. The server cancels the response (response.done with
        // status cancelled); until then its remaining audio deltas are dropped here.
        if (state.currentResponseId) muted.add(state.currentResponseId);
        flushPlayback("barge-in");
      }
      setStatus("hearing you…");
      break;
    }
    case "input_audio_buffer.speech_stopped":
      state.speaking = false;
      setStatus("thinking…");
      break;
    case "input_audio_buffer.committed":
    case "conversation.item.added":
    case "conversation.item.created":
    case "conversation.item.done":
    case "response.output_item.added":
    case "response.output_item.done":
    case "response.content_part.added":
    case "response.content_part.done":
    case "rate_limits.updated":
      break; // nothing to show
    case "conversation.item.input_audio_transcription.delta": {
      const t = (partials.get(ev.item_id) || "") + (ev.delta || "");
      partials.set(ev.item_id, t);
      state.partial = t;
      $("partial").textContent = t;
      break;
    }
    case "conversation.item.input_audio_transcription.completed": {
      partials.delete(ev.item_id);
      state.partial = "";
      $("partial").textContent = "";
      const text = ev.transcript || "";
      state.transcripts.push(text);
      addTurn("user", "you").querySelector(".text").textContent = text;
      break;
    }
    case "conversation.item.input_audio_transcription.failed":
      partials.delete(ev.item_id);
      state.partial = "";
      $("partial").textContent = "";
      addError(ev.type, ev.error && ev.error.code, (ev.error && ev.error.message) || "transcription failed");
      break;
    case "response.created": {
      const id = ev.response && ev.response.id;
      state.currentResponseId = id || null;
      responseEntry(id);
      setStatus("answering…");
      break;
    }
    case "response.output_audio_transcript.delta":
    case "response.output_text.delta": {
      const r = responseEntry(ev.response_id);
      r.record.text += ev.delta || "";
      renderAnswer(r);
      break;
    }
    case "response.output_audio_transcript.done":
    case "response.output_text.done": {
      const r = responseEntry(ev.response_id);
      const text = ev.type.endsWith("transcript.done") ? ev.transcript : ev.text;
      if (typeof text === "string") { r.finalText = text; r.record.text = text; }
      renderAnswer(r);
      break;
    }
    case "response.output_audio.delta": {
      if (!playbackNode || !ev.delta || muted.has(ev.response_id)) break;
      const r = responseEntry(ev.response_id);
      if (!audioItem || audioItem.item_id !== ev.item_id) {
        audioItem = { item_id: ev.item_id, content_index: ev.content_index || 0,
          startPlayed: state.samplesReceived - state.samplesFlushed };
      }
      const pcm = audioDeltaToPcm(ev.delta);
      const n = pcm.byteLength / 2;
      r.record.audioSamples += n;
      state.samplesReceived += n;
      playbackNode.port.postMessage({ type: "chunk", pcm }, [pcm]);
      break;
    }
    case "response.output_audio.done":
      break;
    case "response.done": {
      const resp = ev.response || {};
      const r = responseEntry(resp.id);
      r.record.status = resp.status || "completed";
      r.record.doneAt = performance.now();
      if (r.finalText == null && !r.record.text) { // no deltas: take the text from the output items
        for (const item of resp.output || []) for (const c of item.content || []) r.record.text += c.transcript || c.text || "";
      }
      renderAnswer(r);
      r.el.classList.add(r.record.status);
      const text = r.finalText ?? r.record.text;
      if (text) state.answers.push(text);
      if (r.record.status === "cancelled" && !muted.has(resp.id)) flushPlayback("response cancelled");
      muted.delete(resp.id);
      if (r.record.status === "failed") {
        const d = resp.status_details || {};
        addError("response.failed", d.error && d.error.code, (d.error && d.error.message) || d.reason || "response failed");
      }
      if (state.currentResponseId === resp.id) state.currentResponseId = null;
      setStatus(state.playing ? "speaking…" : "listening");
      break;
    }
    case "monolith.rag.sources": {
      const r = responseEntry(ev.response_id);
      r.record.sources = ev.sources || [];
      state.lastSources = r.record.sources;
      let ul = r.el.querySelector(".sources");
      if (!ul) { ul = document.createElement("ol"); ul.className = "sources"; r.el.append(ul); }
      ul.replaceChildren(...r.record.sources.map((s) => {
        const li = document.createElement("li");
        const score = typeof s.score === "number" ? s.score.toFixed(3) : s.score;
        li.textContent = `${s.source} (${score}): ${String(s.text || "").slice(0, 200)}`;
        return li;
      }));
      break;
    }
    case "monolith.turn.metrics": {
      state.lastMetrics = ev.metrics || {};
      const r = responseEntry(ev.response_id);
      r.record.metrics = state.lastMetrics;
      let m = r.el.querySelector(".metrics");
      if (!m) { m = document.createElement("div"); m.className = "metrics"; r.el.append(m); }
      m.textContent = fmtMetrics(state.lastMetrics);
      break;
    }
    case "error": {
      const e = ev.error || {};
      addError("error", e.code || e.type, e.message || JSON.stringify(e));
      break;
    }
    default:
      break; // unknown events are counted in eventCounts and otherwise ignored
  }
}

// ---------------------------------------------------------------- audio

async function makeContext() {
  // Chromium resamples the microphone into a 24 kHz context itself. Firefox throws
  // NotSupportedError when a MediaStreamSource and its context differ in rate; then the context
  // runs at the device rate and both worklets resample.
  if (params.get("nativeRate") !== "1") {
    const c = new AudioContext({ sampleRate: SOURCE_RATE, latencyHint: "interactive" });
    try {
      return { c, src: c.createMediaStreamSource(stream) };
    } catch (err) {
      console.info("24 kHz context refused the microphone, using the device rate:", err);
      await c.close();
    }
  }
  const c = new AudioContext({ latencyHint: "interactive" });
  return { c, src: c.createMediaStreamSource(stream) };
}

async function startAudio() {
  stream = await navigator.mediaDevices.getUserMedia({
    audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true, channelCount: 1 },
  });
  const made = await makeContext();
  ctx = made.c;
  micSource = made.src;
  state.contextRate = ctx.sampleRate;
  state.resampling = ctx.sampleRate !== SOURCE_RATE;
  await ctx.audioWorklet.addModule("/static/capture-worklet.js");
  await ctx.audioWorklet.addModule("/static/playback-worklet.js");

  playbackNode = new AudioWorkletNode(ctx, "pcm16-playback", {
    numberOfInputs: 0, numberOfOutputs: 1, outputChannelCount: [1],
    processorOptions: { sourceRate: SOURCE_RATE },
  });
  playbackNode.port.onmessage = ({ data }) => {
    if (data.type === "flushed") {
      state.samplesFlushed += data.dropped;
      onFlushed(data.played);
    }
    if (data.type === "progress" || data.type === "flushed") {
      state.samplesPlayed = data.played;
      state.playing = data.type === "progress" ? data.playing : false;
      if (data.type === "progress" && !data.playing && !state.currentResponseId && !state.speaking) setStatus("listening");
      else if (state.playing) setStatus("speaking…");
    }
  };
  playbackNode.connect(ctx.destination);

  captureNode = new AudioWorkletNode(ctx, "pcm16-capture", {
    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
    processorOptions: { targetRate: SOURCE_RATE, frameMs: FRAME_MS },
  });
  const bar = $("meter").firstElementChild;
  captureNode.port.onmessage = ({ data }) => {
    if (data.type !== "frame") return;
    state.micFrames++;
    state.micInputSamples = data.inputSamples;
    state.audioTime = ctx.currentTime;
    state.micRms = data.rms;
    state.micPeak = Math.max(state.micPeak, data.peak);
    if (state.micFrames % 3 === 0) bar.style.width = `${Math.min(100, Math.sqrt(data.rms) * 200)}%`;
    if (!ws || ws.readyState !== WebSocket.OPEN || ws.bufferedAmount > MAX_BUFFERED) { state.framesDropped++; return; }
    ws.send(JSON.stringify({ type: "input_audio_buffer.append", audio: bytesToBase64(new Uint8Array(data.pcm)) }));
    state.framesSent++;
  };
  micSource.connect(captureNode);

  clockTimer = setInterval(() => { if (ctx) state.audioTime = ctx.currentTime; }, 250);
  if (ctx.state !== "running") {
    try { await ctx.resume(); } catch { /* needs a gesture */ }
  }
  if (ctx.state !== "running") {
    setStatus("click anywhere to enable audio");
    const resume = () => ctx && ctx.resume();
    document.addEventListener("click", resume, { once: true });
  }
}

async function start() {
  if (running) return;
  running = true;
  $("start").textContent = "Stop";
  if (!window.isSecureContext || !navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    addError("client", "insecure_context",
      "the microphone needs a secure context: open the page at http://localhost or http://127.0.0.1, or serve it over HTTPS");
    stop("microphone unavailable: not a secure context (use localhost or HTTPS)", true);
    return;
  }
  try {
    setStatus("starting microphone…");
    await startAudio();
    if (!running) return;
    setStatus("connecting…");
    await connect();
  } catch (err) {
    addError("client", err && err.name, (err && err.message) || err);
    stop(`failed: ${(err && err.message) || err}`, true);
  }
}

function stop(reason = "stopped", isError = false) {
  running = false;
  $("start").textContent = "Start";
  if (ws) {
    const w = ws;
    ws = null;
    w.onclose = null;
    if (w.readyState <= WebSocket.OPEN) w.close(1000, "client stop");
  }
  state.connected = false;
  state.playing = false;
  state.speaking = false;
  state.currentResponseId = null;
  audioItem = null;
  clearInterval(clockTimer);
  if (stream) stream.getTracks().forEach((t) => t.stop());
  if (ctx) ctx.close().catch(() => {});
  stream = ctx = captureNode = playbackNode = micSource = null;
  $("meter").firstElementChild.style.width = "0";
  setStatus(reason, isError);
}

Object.defineProperties(state, {
  start: { value: start }, stop: { value: stop }, send: { value: send },
});

setupForm();
if (params.get("autostart") === "1") start();
