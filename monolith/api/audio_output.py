"""Encode PCM16 chunks into a streamable audio format, chunk by chunk.

wav and pcm are written by hand (a WAV header with "unknown length" sizes, as streaming servers
do); mp3, opus (in Ogg) and aac (ADTS) go through PyAV's encoders, muxed into an in-memory file
whose new bytes are sent as they appear. flac too, but sent whole at the end: its header holds
the sample count, known only then."""

from __future__ import annotations

import importlib.util
import io
import struct
from typing import Any

import numpy as np

from monolith.errors import InvalidRequest

FORMATS = {"wav": "audio/wav", "pcm": "audio/pcm", "mp3": "audio/mpeg", "opus": "audio/ogg",
           "aac": "audio/aac", "flac": "audio/flac"}
_AV = {"mp3": ("mp3", "libmp3lame"), "opus": ("ogg", "libopus"), "aac": ("adts", "aac"), "flac": ("flac", "flac")}


def wav_header(sample_rate: int) -> bytes:
    """A PCM16 mono WAV header whose sizes say "unknown" (0xFFFFFFFF): the length is not known yet."""
    unknown = 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", unknown) + b"WAVE" + b"fmt " + struct.pack("<IHHIIHH", 16, 1, 1, sample_rate,
            sample_rate * 2, 2, 16) + b"data" + struct.pack("<I", unknown))


class Encoder:
    def __init__(self, fmt: str, sample_rate: int) -> None:
        self.fmt = fmt
        self.sample_rate = sample_rate

    def start(self) -> bytes:
        return wav_header(self.sample_rate) if self.fmt == "wav" else b""

    def encode(self, pcm: bytes) -> bytes:
        return pcm

    def finish(self) -> bytes:
        return b""


class AVEncoder(Encoder):
    def __init__(self, fmt: str, sample_rate: int) -> None:
        import av

        super().__init__(fmt, sample_rate)
        container_format, codec = _AV[fmt]
        self.buffer = io.BytesIO()
        self.sent = 0
        self.container: Any = av.open(self.buffer, mode="w", format=container_format)
        rate = 48000 if codec == "libopus" else sample_rate  # Opus runs at 48 kHz
        stream: Any = self.container.add_stream(codec, rate=rate)
        stream.layout = "mono"
        fmt_name = stream.codec_context.format.name if stream.codec_context.format else "s16"
        self.stream = stream
        self.resampler = av.AudioResampler(format=fmt_name, layout="mono", rate=rate)
        self.pts = 0

    def _drain(self, final: bool = False) -> bytes:
        # FLAC's STREAMINFO (total samples, MD5) is written into its header when the stream ends:
        # bytes sent earlier would carry a header that says "0 samples", which libsndfile refuses.
        # So FLAC goes out whole, at the end.
        if self.fmt == "flac" and not final:
            return b""
        data = self.buffer.getvalue()[self.sent :]
        self.sent += len(data)
        return data

    def _mux(self, frame: Any) -> None:
        for piece in self.resampler.resample(frame):
            for packet in self.stream.encode(piece):
                self.container.mux(packet)

    def encode(self, pcm: bytes) -> bytes:
        import av

        samples = np.frombuffer(pcm, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = self.sample_rate
        frame.pts = self.pts
        self.pts += samples.shape[1]
        self._mux(frame)
        return self._drain()

    def finish(self) -> bytes:
        self._mux(None)
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
        return self._drain(final=True)


def encoder_for(fmt: str, sample_rate: int) -> Encoder:
    if fmt not in FORMATS:
        raise InvalidRequest(f"response_format {fmt!r} is not supported; use one of {', '.join(FORMATS)}",
                             param="response_format")
    if fmt in _AV:
        if importlib.util.find_spec("av") is None:
            raise InvalidRequest(f"response_format {fmt!r} needs PyAV (pip install av); wav and pcm work without it",
                                 param="response_format")
        return AVEncoder(fmt, sample_rate)
    return Encoder(fmt, sample_rate)
