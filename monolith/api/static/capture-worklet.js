// capture-worklet.js - microphone -> PCM16 mono frames at a fixed target rate (24 kHz).
//
// Runs on the audio rendering thread. `sampleRate` (an AudioWorkletGlobalScope global) is the
// AudioContext's rate. When it equals the target rate (Chromium, which resamples the microphone
// into a 24 kHz context) samples pass straight through. When it differs (Firefox refuses to
// connect a microphone to a context of another rate, so the page runs the context at the
// device rate there), the worklet resamples itself: a windowed-sinc low-pass FIR against
// aliasing when downsampling, then linear interpolation with a fractional read position carried
// across render quanta. Either way every frame posted to the main thread is 24 kHz.
//
// processorOptions: { targetRate = 24000, frameMs = 20 }
// Posts: { type: "frame", pcm: ArrayBuffer (Int16, little-endian on every platform browsers
//          run on), rms: number (0..1, of the frame), peak: number,
//          inputSamples: context-rate samples consumed so far (output/input = 24000/sampleRate) }

const FIR_TAPS = 63; // ~3 M multiply-adds per second at 48 kHz: nothing for an audio thread

function designLowpass(cutoff /* cycles per input sample, < 0.5 */, taps) {
  const h = new Float32Array(taps);
  const mid = (taps - 1) / 2;
  let sum = 0;
  for (let i = 0; i < taps; i++) {
    const n = i - mid;
    const sinc = n === 0 ? 2 * cutoff : Math.sin(2 * Math.PI * cutoff * n) / (Math.PI * n);
    const w = 0.42 - 0.5 * Math.cos((2 * Math.PI * i) / (taps - 1)) + 0.08 * Math.cos((4 * Math.PI * i) / (taps - 1));
    h[i] = sinc * w; // Blackman window
    sum += h[i];
  }
  for (let i = 0; i < taps; i++) h[i] /= sum; // unity gain at DC
  return h;
}

class Pcm16CaptureProcessor extends AudioWorkletProcessor {
  constructor(options) {
    super();
    const opts = (options && options.processorOptions) || {};
    this.targetRate = opts.targetRate || 24000;
    this.frameSamples = Math.round((this.targetRate * (opts.frameMs || 20)) / 1000);
    this.step = sampleRate / this.targetRate; // input samples per output sample
    this.passthrough = Math.abs(this.step - 1) < 1e-9;
    // Anti-alias filter only when downsampling; cutoff a little under the target Nyquist.
    this.fir = this.step > 1 ? designLowpass((0.45 * this.targetRate) / sampleRate, FIR_TAPS) : null;
    this.hist = new Float32Array(FIR_TAPS - 1 + 128); // filter history + one quantum
    this.filtered = new Float32Array(128);
    this.pos = 0; // fractional read position relative to the current block (may be in [-1, 0))
    this.prev = 0; // last sample of the previous block (index -1)
    this.frame = new Int16Array(this.frameSamples);
    this.fill = 0;
    this.sumSq = 0;
    this.peak = 0;
    this.inputSamples = 0;
    this.port.postMessage({ type: "info", contextRate: sampleRate, targetRate: this.targetRate,
      resampling: !this.passthrough, frameSamples: this.frameSamples });
  }

  push(v) {
    if (v > 1) v = 1; else if (v < -1) v = -1;
    this.sumSq += v * v;
    const a = v < 0 ? -v : v;
    if (a > this.peak) this.peak = a;
    this.frame[this.fill++] = v < 0 ? v * 0x8000 : v * 0x7fff;
    if (this.fill === this.frameSamples) {
      const rms = Math.sqrt(this.sumSq / this.frameSamples);
      const buf = this.frame.buffer;
      this.port.postMessage({ type: "frame", pcm: buf, rms, peak: this.peak, inputSamples: this.inputSamples }, [buf]);
      this.frame = new Int16Array(this.frameSamples);
      this.fill = 0;
      this.sumSq = 0;
      this.peak = 0;
    }
  }

  lowpass(x) {
    const n = x.length;
    const taps = FIR_TAPS;
    if (this.hist.length !== taps - 1 + n) {
      const h = new Float32Array(taps - 1 + n);
      h.set(this.hist.subarray(0, taps - 1));
      this.hist = h;
      this.filtered = new Float32Array(n);
    }
    this.hist.set(x, taps - 1);
    const h = this.fir, src = this.hist, out = this.filtered;
    for (let i = 0; i < n; i++) {
      let acc = 0;
      for (let k = 0; k < taps; k++) acc += h[k] * src[i + k];
      out[i] = acc;
    }
    this.hist.copyWithin(0, n, n + taps - 1); // keep the last taps-1 inputs
    return out;
  }

  process(inputs) {
    const input = inputs[0];
    if (!input || input.length === 0 || !input[0]) return true; // not connected (yet)
    const ch0 = input[0]; // the page asks for channelCount 1; extra channels are ignored
    this.inputSamples += ch0.length;
    if (this.passthrough) {
      for (let i = 0; i < ch0.length; i++) this.push(ch0[i]);
      return true;
    }
    const x = this.fir ? this.lowpass(ch0) : ch0;
    const n = x.length;
    let t = this.pos;
    while (t <= n - 1) {
      const i = Math.floor(t);
      const f = t - i;
      const a = i < 0 ? this.prev : x[i];
      const b = i + 1 < n ? x[i + 1] : a;
      this.push(a + (b - a) * f);
      t += this.step;
    }
    this.pos = t - n;
    this.prev = x[n - 1];
    return true;
  }
}

registerProcessor("pcm16-capture", Pcm16CaptureProcessor);
