"""Fixed-size blocks for delta transfer: one definition for both ends.

The receiver hashes the blocks of the version it holds; the sender hashes
the same blocks of the source and sends only those that differ. Blocks are
aligned to offsets, not rolling (rsync's): what a system migration rewrites
in place (databases, images, logs appended to) keeps its offsets.
"""

from __future__ import annotations

import os

from common.content_hash import piece_hash

# Blocks of at least 64 KiB keep the per-block overhead (a hash on the wire,
# a read and compare on each side) far below the data; at most this many
# blocks per file keep the hash list of a decision small (128 KiB).
MIN_BLOCK_BYTES = 64 << 10
MAX_BLOCKS = 16384


def block_size_for(size: int) -> int:
    """The block size used for a file of `size` bytes: a power of two."""
    block = MIN_BLOCK_BYTES
    while block * MAX_BLOCKS < size:
        block *= 2
    return block


def block_hashes(fd: int, size: int, block_size: int) -> list[int]:
    """xxh3-64 of each block of the open file's first `size` bytes."""
    hashes = []
    for offset in range(0, size, block_size):
        data = os.pread(fd, min(block_size, size - offset), offset)
        hashes.append(piece_hash(data))
    return hashes
