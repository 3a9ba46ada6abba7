"""Encoding of DataFrame payloads: zstd blocks of a context per stream, or raw.

A sender keeps one zstd context per Transfer stream and flushes it after each
frame, so a frame compresses against the frames before it: on the benchmark's
system tree (265 MB, 1 MiB frames, level 3) that is 73.3 MB on the wire against
84.6 MB for independent frames, at the same 415 MB/s.
The receiver keeps the matching context per stream (one FrameDecoder each);
a new stream starts a new one, so resume never depends on an old context.
"""

from __future__ import annotations

from typing import IO, cast

import zstandard

from common.pb.migrate.v1 import receiver_pb2 as pb

# Level 3 compresses text-like data to a ratio of about 4.8-6 at 200-225 MB/s
# per core, level 1 to about 4.2 at 280-315 MB/s (DESIGN.md, 1 MiB chunks).
DEFAULT_LEVEL = 3

# A compressed frame must save at least this fraction of the raw size to be
# worth the receiver's decompression; otherwise the frame goes raw.
_MIN_SAVING = 1 / 32

# A streaming context's window, at most: what a receiver holds per stream besides
# the frame. zstd's own choice is at most this for levels 1-19 (window log 19-23);
# levels 20-22 would want 32-128 MiB, so their window is cut to this.
MAX_WINDOW_LOG = 23

# What zstandard.frame_content_size answers for a frame without a size.
_SIZE_NOT_IN_HEADER = -1


class FrameError(ValueError):
    """A frame that cannot be decoded to exactly its declared size."""


# After this many frames of one file in a row that did not shrink (media,
# archives, encrypted data), its next _SKIP_FRAMES go raw without trying, then
# one is tried again. Trying costs about 1 ms per MiB of CPU for nothing
# (DESIGN.md: incompressible data at >= 0.9 GB/s). Only frames of that same
# file are skipped: the files after it may well compress.
_MISSES_BEFORE_SKIPPING = 2
_SKIP_FRAMES = 16


def _compressor(level: int) -> zstandard.ZstdCompressor:
    window_log = min(
        zstandard.ZstdCompressionParameters.from_level(level).window_log, MAX_WINDOW_LOG
    )
    params = zstandard.ZstdCompressionParameters.from_level(level, window_log=window_log)
    return zstandard.ZstdCompressor(compression_params=params)


class FrameEncoder:
    """Compresses the frames of one stream; one per thread (zstd contexts are not
    thread-safe), and one per stream (the receiver keeps the matching context).

    A raw frame never touches the context. A frame that went into the context and
    did not shrink is sent raw all the same, so the receiver's context lacks it:
    the encoder then drops its context and the next compressed frame starts a
    new one (ENCODING_ZSTD_STREAM_START). So does a change of level.
    """

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        self._level = level
        # Only the current level's compressor is kept: each holds its match
        # tables (about 16 MiB at level 9), and a stream that climbs through
        # every level, times eight streams, would otherwise hold hundreds.
        self._compressor: tuple[int, zstandard.ZstdCompressor] | None = None
        self._context: zstandard.ZstdCompressionObj | None = None
        self._missed_source: int | None = None
        self._misses = 0
        self._skipping = 0

    @property
    def level(self) -> int:
        return self._level

    def set_level(self, level: int) -> None:
        """Compress the next frames at `level` (0: raw); a change starts a new context."""
        if level != self._level:
            self._level = level
            self._context = None

    def encode(self, raw: bytes, source: int | None = None) -> tuple[pb.Encoding, bytes]:
        """(encoding, payload) for `raw`; raw when level is 0 or it does not shrink.

        `source` names the one file a frame holds (None for a frame of several).
        """
        if self._level <= 0 or not raw:
            return pb.ENCODING_RAW, raw
        same_source = source is not None and source == self._missed_source
        if same_source and self._skipping:
            self._skipping -= 1
            return pb.ENCODING_RAW, raw
        starts = self._context is None
        if self._context is None:
            if self._compressor is None or self._compressor[0] != self._level:
                self._compressor = None  # the old tables go before the new ones come
                self._compressor = (self._level, _compressor(self._level))
            self._context = self._compressor[1].compressobj()
        compressed = self._context.compress(raw) + self._context.flush(
            zstandard.COMPRESSOBJ_FLUSH_BLOCK
        )
        if len(compressed) > len(raw) * (1 - _MIN_SAVING):
            self._context = None  # the receiver will not see this frame in its context
            self._misses = self._misses + 1 if same_source else 1
            self._missed_source = source
            if source is not None and self._misses >= _MISSES_BEFORE_SKIPPING:
                self._skipping = _SKIP_FRAMES
            return pb.ENCODING_RAW, raw
        self._missed_source, self._misses, self._skipping = None, 0, 0
        return (
            pb.ENCODING_ZSTD_STREAM_START if starts else pb.ENCODING_ZSTD_STREAM_NEXT
        ), compressed


class _Overflow(Exception):
    pass


class _BoundedSink:
    """Collects decompressed output and refuses any past the frame's declared size."""

    def __init__(self) -> None:
        self.limit = 0
        self.size = 0
        self.chunks: list[bytes] = []

    def start(self, limit: int) -> None:
        self.limit, self.size, self.chunks = limit, 0, []

    def write(self, data: bytes) -> int:
        if self.size + len(data) > self.limit:
            raise _Overflow
        self.chunks.append(bytes(data))
        self.size += len(data)
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks = []
        return out


class _StreamContext:
    """The receiving end of one sender's streaming context.

    python-zstandard's decompressobj() returns all the output of its input at
    once, however large, so it is no bound. A stream_writer hands its output to a
    sink in pieces of at most write_size, so a sink that refuses past the declared
    size bounds it. But its write() stops once the input is consumed, and zstd
    keeps back the output that did not fit a full output buffer (measured: a
    1 MiB frame of zeros came out as 917504 bytes with the default write_size).
    An output buffer larger than any legal frame never fills on a legal frame, so
    nothing is kept back; one that fills is over the frame's size and refused.
    The buffer is allocated per write and only the bytes written are touched.
    """

    def __init__(self, max_raw_size: int) -> None:
        self._sink = _BoundedSink()
        decompressor = zstandard.ZstdDecompressor(max_window_size=1 << MAX_WINDOW_LOG)
        # The writer only ever calls the sink's write().
        sink = cast(IO[bytes], self._sink)
        self._writer = decompressor.stream_writer(sink, write_size=max_raw_size + 1)

    def decode(self, payload: bytes, raw_size: int) -> bytes:
        self._sink.start(raw_size)
        try:
            self._writer.write(payload)
        except _Overflow:
            raise FrameError(
                f"zstd blocks decode to more than the declared {raw_size} bytes"
            ) from None
        except zstandard.ZstdError as exc:
            raise FrameError(f"corrupt zstd blocks: {exc}") from exc
        return self._sink.take()


class FrameDecoder:
    """Decodes the frames of one stream with a hard bound on the output; one per
    Transfer stream, as it holds the stream's zstd context."""

    def __init__(self, max_raw_size: int) -> None:
        self.max_raw_size = max_raw_size
        self._decompressor = zstandard.ZstdDecompressor()
        self._stream: _StreamContext | None = None

    def decode(self, encoding: int, payload: bytes, raw_size: int) -> bytes:
        if raw_size > self.max_raw_size:
            raise FrameError(f"frame declares {raw_size} raw bytes, over {self.max_raw_size}")
        if encoding == pb.ENCODING_RAW:
            raw = payload
        elif encoding == pb.ENCODING_ZSTD:
            raw = self._decompress(payload, raw_size)
        elif encoding in (pb.ENCODING_ZSTD_STREAM_START, pb.ENCODING_ZSTD_STREAM_NEXT):
            raw = self._decode_streaming(encoding, payload, raw_size)
        else:
            raise FrameError(f"unknown frame encoding {encoding}")
        if len(raw) != raw_size:
            raise FrameError(f"frame decodes to {len(raw)} bytes, declared {raw_size}")
        return raw

    def _decode_streaming(self, encoding: int, payload: bytes, raw_size: int) -> bytes:
        if encoding == pb.ENCODING_ZSTD_STREAM_START:
            self._stream = None  # the old context's memory goes before the new one comes
            self._stream = _StreamContext(self.max_raw_size)
        elif self._stream is None:
            raise FrameError("zstd blocks continue a context this stream has not started")
        stream = self._stream
        # A context that failed once is out of step with the sender's for good.
        self._stream = None
        raw = stream.decode(payload, raw_size)
        if len(raw) == raw_size:
            self._stream = stream
        return raw

    def _decompress(self, payload: bytes, raw_size: int) -> bytes:
        # python-zstandard trusts a content size written in the frame header and
        # ignores max_output_size then, so the header must agree first.
        try:
            header_size = zstandard.frame_content_size(payload)
            if header_size not in (raw_size, _SIZE_NOT_IN_HEADER):
                raise FrameError(f"zstd header says {header_size} bytes, frame declares {raw_size}")
            return self._decompressor.decompress(payload, max_output_size=raw_size)
        except zstandard.ZstdError as exc:
            raise FrameError(f"corrupt zstd frame: {exc}") from exc
