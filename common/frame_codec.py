"""Encoding of DataFrame payloads: one independent zstd frame, or raw.

Each frame is compressed on its own so a receiver can decode any frame without
the ones before it: resume and parallel streams need no shared dictionary.
"""

from __future__ import annotations

import zstandard

from common.pb.migrate.v1 import receiver_pb2 as pb

# Level 3 compresses text-like data to a ratio of about 4.8-6 at 200-225 MB/s
# per core, level 1 to about 4.2 at 280-315 MB/s (DESIGN.md, 1 MiB chunks).
DEFAULT_LEVEL = 3

# A compressed frame must save at least this fraction of the raw size to be
# worth the receiver's decompression; otherwise the frame goes raw.
_MIN_SAVING = 1 / 32


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


class FrameEncoder:
    """Compresses frames; one per thread (a ZstdCompressor is not thread-safe)."""

    def __init__(self, level: int = DEFAULT_LEVEL) -> None:
        self.level = level
        self._compressor = zstandard.ZstdCompressor(level=level) if level > 0 else None
        self._missed_source: int | None = None
        self._misses = 0
        self._skipping = 0

    def encode(self, raw: bytes, source: int | None = None) -> tuple[pb.Encoding, bytes]:
        """(encoding, payload) for `raw`; raw when level is 0 or it does not shrink.

        `source` names the one file a frame holds (None for a frame of several).
        """
        if self._compressor is None or not raw:
            return pb.ENCODING_RAW, raw
        same_source = source is not None and source == self._missed_source
        if same_source and self._skipping:
            self._skipping -= 1
            return pb.ENCODING_RAW, raw
        compressed = self._compressor.compress(raw)
        if len(compressed) > len(raw) * (1 - _MIN_SAVING):
            self._misses = self._misses + 1 if same_source else 1
            self._missed_source = source
            if source is not None and self._misses >= _MISSES_BEFORE_SKIPPING:
                self._skipping = _SKIP_FRAMES
            return pb.ENCODING_RAW, raw
        self._missed_source, self._misses, self._skipping = None, 0, 0
        return pb.ENCODING_ZSTD, compressed


class FrameDecoder:
    """Decodes frames with a hard bound on the output; one per thread."""

    def __init__(self, max_raw_size: int) -> None:
        self.max_raw_size = max_raw_size
        self._decompressor = zstandard.ZstdDecompressor()

    def decode(self, encoding: int, payload: bytes, raw_size: int) -> bytes:
        if raw_size > self.max_raw_size:
            raise FrameError(f"frame declares {raw_size} raw bytes, over {self.max_raw_size}")
        if encoding == pb.ENCODING_RAW:
            raw = payload
        elif encoding == pb.ENCODING_ZSTD:
            raw = self._decompress(payload, raw_size)
        else:
            raise FrameError(f"unknown frame encoding {encoding}")
        if len(raw) != raw_size:
            raise FrameError(f"frame decodes to {len(raw)} bytes, declared {raw_size}")
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
