// playback-worklet.js - a queue of PCM16 mono chunks at the source rate (24 kHz) played out.
//
// Messages in (port):
//   { type: "chunk", pcm: ArrayBuffer (Int16), id?: string }  append to the queue
//   { type: "flush" }                                           drop everything queued (barge-in)
// Messages out:
//   { type: "progress", played, queued, time }   every ~50 ms while playing, and once when idle
//   { type: "flushed", dropped, played, time }   answer to "flush"
//   { type: "info", contextRate, sourceRate, resampling }
// `played` counts source-rate (24 kHz) samples actually rendered since the node started; it is
// what a client needs for conversation.item.truncate's audio_end_ms. Underruns render silence
// and are not counted.
//
// When the context runs at another rate (Firefox path) the worklet resamples by linear
// interpolation, carrying the fractional position across chunks and render quanta.

class Pcm16PlaybackProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.sourceRate = opts.sourceRate || 24000;
    this.step = this.sourceRate / sampleRate; // source samples per output sample
    this.passthrough = Math.abs(this.step - 1) < 1e-9;
    this.queue = []; // Float32Array chunks
    this.head = 0; // read offset into queue[0]
    this.queued = 0; // source samples waiting
    this.played = 0;
    // interpolation state (resampling path)
    this.cur = 0;
    this.next = 0;
    this.frac = 0;
    this.primed = false;
    this.reportEvery = Math.round(sampleRate * 0.05);
    this.sinceReport = 0;
    this.wasPlaying = false;
    this.port.onmessage = (e) => this.onMessage(e.data);
    this.port.postMessage({ type: "info", contextRate: sampleRate, sourceRate: this.sourceRate,
      resampling: !this.passthrough });
  }

  onMessage(msg) {
    if (msg.type === "chunk") {
      const i16 = new Int16Array(msg.pcm);
      if (i16.length === 0) return;
      const f32 = new Float32Array(i16.length);
      for (let i = 0; i < i16.length; i++) f32[i] = i16[i] / 32768;
      this.queue.push(f32);
      this.queued += f32.length;
    } else if (msg.type === "flush") {
      const dropped = this.queued; // samples already pulled for interpolation count as played
      this.queue = [];
      this.head = 0;
      this.queued = 0;
      this.primed = false;
      this.frac = 0;
      this.port.postMessage({ type: "flushed", dropped, played: this.played, time: currentTime });
    }
  }

  pull() { // next source sample, or null when the queue is empty
    while (this.queue.length) {
      const c = this.queue[0];
      if (this.head < c.length) {
        this.queued--;
        this.played++;
        return c[this.head++];
      }
      this.queue.shift();
      this.head = 0;
    }
    return null;
  }

  process(_inputs, outputs) {
    const out = outputs[0];
    const ch = out[0];
    const n = ch.length;
    let rendered = 0;
    if (this.passthrough) {
      for (let i = 0; i < n; i++) {
        const v = this.pull();
        if (v === null) { ch.fill(0, i); break; }
        ch[i] = v;
        rendered++;
      }
    } else {
      for (let i = 0; i < n; i++) {
        if (!this.primed) {
          if (this.queued < 2) { ch.fill(0, i); break; }
          this.cur = this.pull();
          this.next = this.pull();
          this.frac = 0;
          this.primed = true;
        }
        ch[i] = this.cur + (this.next - this.cur) * this.frac;
        rendered++;
        this.frac += this.step;
        let starved = false;
        while (this.frac >= 1) {
          const v = this.pull();
          if (v === null) { starved = true; break; }
          this.frac -= 1;
          this.cur = this.next;
          this.next = v;
        }
        if (starved) { // out of data: stop cleanly, the last sample pair is dropped
          this.primed = false;
          ch.fill(0, i + 1);
          break;
        }
      }
    }
    for (let c = 1; c < out.length; c++) out[c].set(ch); // mono to every output channel
    const playing = rendered > 0;
    this.sinceReport += n;
    if ((playing && this.sinceReport >= this.reportEvery) || (!playing && this.wasPlaying)) {
      this.sinceReport = 0;
      this.port.postMessage({ type: "progress", played: this.played, queued: this.queued,
        playing, time: currentTime });
    }
    this.wasPlaying = playing;
    return true;
  }
}

registerProcessor("pcm16-playback", Pcm16PlaybackProcessor);
