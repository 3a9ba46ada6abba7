"""Content hashes: xxh3-64 per piece, xxh3-128 per whole file.

xxh3 runs at about 13 GB/s on the development machine (DESIGN.md), so hashing
costs far less than compressing; it guards against corruption, not against a
malicious peer (the token and TLS do that).
"""

from __future__ import annotations

import xxhash

from common.extents import read_extents

# Zeros fed for holes, in slices of this buffer, so a hole costs no allocation.
_ZEROS = bytes(1 << 20)


def piece_hash(data: bytes | memoryview) -> int:
    """The xxh3-64 of one piece's raw bytes."""
    return xxhash.xxh3_64_intdigest(data)


class FileDigest:
    """The xxh3-128 of a file's content, holes read as zeros, fed in order."""

    def __init__(self) -> None:
        self._hash = xxhash.xxh3_128()
        self.position = 0

    def update_at(self, offset: int, data: bytes | memoryview) -> None:
        """Feed `data` found at `offset`; the gap since the last call is a hole."""
        if offset < self.position:
            raise ValueError(f"content at offset {offset} is before {self.position}")
        self.zero_fill_to(offset)
        self._hash.update(data)
        self.position += len(data)

    def zero_fill_to(self, offset: int) -> None:
        """Feed zeros up to `offset` (a hole, or the tail after the last data)."""
        while self.position < offset:
            step = min(offset - self.position, len(_ZEROS))
            self._hash.update(memoryview(_ZEROS)[:step])
            self.position += step

    def digest(self) -> bytes:
        return self._hash.digest()


def file_digest(fd: int, size: int) -> bytes:
    """The FileDigest of an open file's first `size` bytes, holes skipped on disk."""
    digest = FileDigest()
    for position, data in read_extents(fd, 0, size, 1 << 20):
        digest.update_at(position, data)
    digest.zero_fill_to(size)
    return digest.digest()
