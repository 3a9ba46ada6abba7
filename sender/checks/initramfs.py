"""The names in an initramfs, read as the kernel reads it, without extracting anything.

An initramfs is cpio "newc" archives one after another: often an uncompressed
one first (early microcode), then the main one compressed with gzip, xz, lzma,
zstd, bzip2 or lz4. Member data is skipped as it streams past, so memory stays
at one read buffer whatever the image's size.

dracut, initramfs-tools and mkinitcpio write at most one compressed archive,
last; reading stops at the end of the first compressed one.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO, Protocol

import zstandard

_NEWC_MAGICS = (b"070701", b"070702")  # newc, and newc with checksums
_HEADER_BYTES = 110
_TRAILER = "TRAILER!!!"
# Longer names than PATH_MAX mean we are not reading a cpio archive.
_MAX_NAME_BYTES = 4096
_READ_BYTES = 1 << 16
_LZ4_LEGACY_MAGIC = b"\x02\x21\x4c\x18"
# lz4 -l (the kernel's format) cuts its input into blocks of 8 MiB.
_LZ4_LEGACY_BLOCK_BYTES = 8 << 20


# What a decompressor raises on corrupt or truncated input (gzip's BadGzipFile is an OSError).
_DECOMPRESSION_ERRORS = (OSError, EOFError, lzma.LZMAError, zstandard.ZstdError)


class InitramfsUnreadable(Exception):
    """Why the image cannot be listed; str() says it for a user."""


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


class _Stream:
    """Reads exact sizes and skips bytes over a non-seekable reader."""

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._buffer = b""
        self._at = 0  # how much of the buffer is consumed

    def _fill(self, size: int) -> None:
        """At least `size` unconsumed bytes in the buffer, unless the stream ends first."""
        while len(self._buffer) - self._at < size:
            chunk = self._raw.read(max(_READ_BYTES, size))
            if not chunk:
                return
            self._buffer = self._buffer[self._at :] + chunk
            self._at = 0

    @property
    def buffered(self) -> int:
        """Bytes read from the underlying reader but not yet consumed."""
        return len(self._buffer) - self._at

    def peek(self, size: int) -> bytes:
        self._fill(size)
        return self._buffer[self._at : self._at + size]

    def read(self, size: int) -> bytes:
        data = self.peek(size)
        if len(data) < size:
            raise InitramfsUnreadable("the image ends inside a cpio member")
        self._at += size
        return data

    def skip(self, size: int) -> None:
        """Skip `size` bytes (member data) without keeping more than one chunk of them."""
        while size > 0:
            if not self.buffered:
                self._fill(1)
                if not self.buffered:
                    raise InitramfsUnreadable("the image ends inside a cpio member")
            step = min(size, self.buffered)
            self._at += step
            size -= step

    def skip_zeros(self) -> bool:
        """Skip padding between archives; False at the end of the stream."""
        while True:
            self._fill(1)
            if not self.buffered:
                return False
            rest = self._buffer[self._at :]
            stripped = rest.lstrip(b"\0")
            self._at += len(rest) - len(stripped)
            if stripped:
                return True


def _pad4(n: int) -> int:
    return (4 - n % 4) % 4


def _archive_names(stream: _Stream) -> Iterator[str]:
    """The members of one newc archive, up to and without its trailer."""
    while True:
        header = stream.read(_HEADER_BYTES)
        if header[:6] not in _NEWC_MAGICS:
            raise InitramfsUnreadable(f"not a newc cpio header: {header[:6]!r}")
        try:
            fields = [int(header[6 + 8 * i : 14 + 8 * i], 16) for i in range(13)]
        except ValueError:
            raise InitramfsUnreadable("a cpio header with non-hex fields") from None
        file_size, name_size = fields[6], fields[11]
        if not 0 < name_size <= _MAX_NAME_BYTES:
            raise InitramfsUnreadable(f"a cpio name of {name_size} bytes")
        name = stream.read(name_size).rstrip(b"\0").decode("utf-8", "surrogateescape")
        stream.skip(_pad4(_HEADER_BYTES + name_size))
        if name == _TRAILER:
            return
        stream.skip(file_size + _pad4(file_size))
        yield name


def _archives(stream: _Stream) -> Iterator[str]:
    """Members of the archives that follow one another in `stream`, to its end.

    What cannot be decompressed after a complete archive (trailing garbage) ends
    the listing instead of failing it.
    """
    complete = False
    while True:
        try:
            more = stream.skip_zeros() and stream.peek(6) in _NEWC_MAGICS
        except _DECOMPRESSION_ERRORS:
            if complete:
                return
            raise
        if not more:
            return
        yield from _archive_names(stream)
        complete = True


def _lz4_reader(raw: BinaryIO) -> _Readable:
    try:
        import lz4.block
        import lz4.frame
    except ImportError:
        raise InitramfsUnreadable(
            "cannot read an lz4 initramfs (the Python lz4 module is not installed)"
        ) from None
    if raw.read(4) != _LZ4_LEGACY_MAGIC:
        raw.seek(-4, 1)
        frames: _Readable = lz4.frame.LZ4FrameFile(raw)
        return frames
    return _ChunkReader(_lz4_legacy_blocks(raw, lz4.block.decompress))


def _lz4_legacy_blocks(raw: BinaryIO, decompress: Callable[..., bytes]) -> Iterator[bytes]:
    """lz4's legacy format: blocks of (little-endian size, data), 8 MiB each unpacked."""
    while len(prefix := raw.read(4)) == 4:
        if prefix == _LZ4_LEGACY_MAGIC:  # a concatenated stream starts
            continue
        (size,) = struct.unpack("<I", prefix)
        if size == 0:  # zero padding after the stream
            return
        try:
            block = decompress(raw.read(size), uncompressed_size=_LZ4_LEGACY_BLOCK_BYTES)
        except Exception as exc:  # lz4.block.LZ4BlockError, not importable up here
            raise OSError(f"corrupt lz4 block: {exc}") from exc
        yield block


class _ChunkReader:
    """A read() over an iterator of byte strings."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks

    def read(self, size: int = -1) -> bytes:
        return next(self._chunks, b"")


def _decompressor(raw: BinaryIO, magic: bytes) -> _Readable | None:
    """A reader of the decompressed stream that starts in `raw`; None if not compressed."""
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if magic.startswith(b"\xfd7zXZ\x00") or magic.startswith(b"\x5d\x00\x00"):
        return lzma.LZMAFile(raw)  # xz, or the older .lzma format
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        # One frame, as zstd -T0 writes it; reading across frames would fail on the zero
        # padding after it and lose what the same read had decompressed.
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=False)
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(raw)
    if magic.startswith(_LZ4_LEGACY_MAGIC) or magic.startswith(b"\x04\x22\x4d\x18"):
        return _lz4_reader(raw)
    return None


def _names(image: BinaryIO) -> Iterator[str]:
    """Uncompressed archives first, then at most one compressed segment."""
    stream = _Stream(image)
    while stream.skip_zeros():
        magic = stream.peek(6)
        if magic in _NEWC_MAGICS:
            yield from _archive_names(stream)
            continue
        # Hand the rest, from the compressed segment on, to its decompressor.
        image.seek(-stream.buffered, 1)
        reader = _decompressor(image, magic)
        if reader is None:
            raise InitramfsUnreadable(f"neither cpio nor a known compression: {magic!r}")
        yield from _archives(_Stream(reader))
        return


def initramfs_names(path: Path) -> Iterator[str]:
    """Every member name (e.g. "usr/lib/modules/6.1.0/kernel/.../virtio_blk.ko.xz")."""
    try:
        with path.open("rb") as image:
            yield from _names(image)
    except InitramfsUnreadable:
        raise
    except _DECOMPRESSION_ERRORS as exc:
        raise InitramfsUnreadable(f"cannot read {path}: {exc}") from exc
