"""Audio encoders for the speech server: whole clips, and streams that grow one chunk at a time."""

from __future__ import annotations

import io
import struct
from typing import Any, Protocol

import numpy as np
import soundfile

from kokoro_engine import SAMPLE_RATE, pcm16

# response_format → (media type, libsndfile format, subtype); None: no libsndfile container.
FORMATS: dict[str, tuple[str, str | None, str | None]] = {
    "mp3": ("audio/mpeg", "MP3", "MPEG_LAYER_III"),
    "opus": ("audio/ogg", "OGG", "OPUS"),
    "flac": ("audio/flac", "FLAC", "PCM_16"),
    "wav": ("audio/wav", "WAV", "PCM_16"),
    "pcm": ("audio/pcm", None, None),
}
# libsndfile commands (sndfile.h) that python-soundfile does not wrap.
_SET_COMPRESSION_LEVEL = 0x1301
_SET_OGG_PAGE_LATENCY_MS = 0x1302
_SET_BITRATE_MODE = 0x1305
_BITRATE_CONSTANT = 0
# Streamed MP3 is constant bit rate: without a Xing header (written last, so never sent)
# decoders estimate the length from the first frame's bit rate, which truncates VBR audio.
_MP3_STREAM_LEVEL = 0.6  # ≈ 64 kbit/s at 24 kHz mono
# FLAC is not streamed: libsndfile cannot read a FLAC stream of unknown length back, and
# the length only goes into the header at the end. It is sent whole once synthesized.
STREAMABLE = frozenset({"pcm", "wav", "mp3", "opus"})
# An Ogg page holds at most this much audio before it is written out (libsndfile's floor).
_OPUS_PAGE_MS = 50.0
# ≈ 56 kbit/s. libsndfile's default (≈ 35 kbit/s) puts libopus in its hybrid speech mode,
# which costs three times the CPU here (≈ 5 % of real time on one core) for less quality.
_OPUS_LEVEL = 0.8
# Streamed MP3 and Opus are encoded in slices this long, so the first bytes wait for a
# quarter second of encoding rather than for a whole piece's.
SLICE_SAMPLES = SAMPLE_RATE // 4


def command(file: soundfile.SoundFile, code: int, ctype: str, value: float) -> None:
    """An sf_command python-soundfile does not wrap; settings must precede the first write."""
    ffi = soundfile._ffi
    data = ffi.new(f"{ctype}*", value)
    soundfile._snd.sf_command(file._file, code, data, ffi.sizeof(ctype))


class WholeEncoder:
    """A complete file whose header states the exact length, encoded chunk by chunk as the
    chunks arrive, so only the last chunk's encoding is left once synthesis ends."""

    def __init__(self, fmt: str) -> None:
        self._parts: list[bytes] = []
        self._out = io.BytesIO()
        self._file: soundfile.SoundFile | None = None
        _, container, subtype = FORMATS[fmt]
        if container is not None:
            self._file = soundfile.SoundFile(
                self._out, "w", SAMPLE_RATE, 1, subtype, format=container
            )
            if fmt == "opus":
                command(self._file, _SET_COMPRESSION_LEVEL, "double", _OPUS_LEVEL)

    def add(self, samples: np.ndarray) -> None:
        if self._file is None:
            self._parts.append(pcm16(samples))
        else:
            self._file.write(np.asarray(samples, dtype=np.float32))

    def finish(self) -> bytes:
        if self._file is None:
            return b"".join(self._parts)
        self._file.close()  # writes the header fields that need the length
        return self._out.getvalue()

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()


class StreamEncoder(Protocol):
    """Turns successive chunks into bytes that, concatenated, form one valid file."""

    def encode(self, samples: np.ndarray) -> bytes: ...

    def finish(self) -> bytes: ...


class PcmStream:
    """Raw s16le samples: nothing to frame."""

    def encode(self, samples: np.ndarray) -> bytes:
        return pcm16(samples)

    def finish(self) -> bytes:
        return b""


class WavStream:
    """One RIFF header with unknown sizes (0xFFFFFFFF, read as "until the end"), then PCM."""

    def __init__(self) -> None:
        self._started = False

    def encode(self, samples: np.ndarray) -> bytes:
        head = b"" if self._started else wav_stream_header()
        self._started = True
        return head + pcm16(samples)

    def finish(self) -> bytes:
        return b"" if self._started else wav_stream_header()


def wav_stream_header(sample_rate: int = SAMPLE_RATE) -> bytes:
    unknown = 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", 1, 1, sample_rate, sample_rate * 2, 2, 16)
    return (
        b"RIFF"
        + struct.pack("<I", unknown)
        + b"WAVEfmt "
        + struct.pack("<I", len(fmt))
        + fmt
        + b"data"
        + struct.pack("<I", unknown)
    )


class _Sink:
    """A file for libsndfile's virtual I/O that hands on each byte once, as it is appended.

    The MP3 encoder seeks back at close to patch its Xing frame: those bytes were already
    sent, so the patch is dropped (and the placeholder frame with it, see below).
    """

    def __init__(self) -> None:
        self._pending = bytearray()
        self._sent = 0  # absolute offset of _pending[0]
        self._pos = 0
        self._end = 0

    def write(self, data: Any) -> int:
        data = bytes(data)
        start, end = self._pos, self._pos + len(data)
        if end > self._sent:
            skip = max(self._sent - start, 0)
            at = start + skip - self._sent
            self._pending[at : at + len(data) - skip] = data[skip:]
        self._pos, self._end = end, max(self._end, end)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._end}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def read(self, size: int = -1) -> bytes:
        return b""  # write-only: nothing here reads back what it wrote

    def take(self) -> bytes:
        out = bytes(self._pending)
        self._sent += len(out)
        self._pending.clear()
        return out


class SoundfileStream:
    """MP3 frames or Ogg/Opus pages from libsndfile, as the encoder emits them."""

    def __init__(self, fmt: str) -> None:
        _, container, subtype = FORMATS[fmt]
        self._sink = _Sink()
        self._file = soundfile.SoundFile(self._sink, "w", SAMPLE_RATE, 1, subtype, format=container)
        self._mp3 = fmt == "mp3"
        self._head = b""  # MP3 bytes held until the placeholder frame can be told apart
        self._head_done = False
        if self._mp3:
            command(self._file, _SET_BITRATE_MODE, "int", _BITRATE_CONSTANT)
            command(self._file, _SET_COMPRESSION_LEVEL, "double", _MP3_STREAM_LEVEL)
        elif fmt == "opus":
            command(self._file, _SET_OGG_PAGE_LATENCY_MS, "double", _OPUS_PAGE_MS)
            command(self._file, _SET_COMPRESSION_LEVEL, "double", _OPUS_LEVEL)

    def encode(self, samples: np.ndarray) -> bytes:
        self._file.write(np.asarray(samples, dtype=np.float32))
        return self._emit(self._sink.take(), final=False)

    def finish(self) -> bytes:
        self._file.close()
        return self._emit(self._sink.take(), final=True)

    def _emit(self, data: bytes, final: bool) -> bytes:
        if not self._mp3 or self._head_done:
            return data
        self._head += data
        body = _drop_placeholder_frame(self._head)
        if body is None and not final:
            return b""
        out, self._head, self._head_done = body or self._head, b"", True
        return out

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


def _drop_placeholder_frame(data: bytes) -> bytes | None:
    """MP3 minus LAME's zero-filled first frame (the Xing tag's seat), or None if undecided.

    Decoders would play the placeholder as a frame of silence; the real tag is only
    written at close, after the stream has gone out.
    """
    if len(data) < 4 or data[0] != 0xFF or (data[1] & 0xE0) != 0xE0:
        return data if len(data) >= 4 else None
    rest = data[4:].lstrip(b"\0")
    if len(rest) < 2:
        return None
    zero_filled = len(data) - 4 - len(rest) >= 16
    next_frame = rest[0] == 0xFF and (rest[1] & 0xE0) == 0xE0
    return rest if zero_filled and next_frame else data


def stream_encoder(fmt: str) -> StreamEncoder:
    """An encoder for a STREAMABLE format."""
    if fmt == "pcm":
        return PcmStream()
    if fmt == "wav":
        return WavStream()
    return SoundfileStream(fmt)
