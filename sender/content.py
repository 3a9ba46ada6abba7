"""What of a file's content goes on the wire: all of it past the resume
offset, or, against a version the receiver holds, only the blocks that differ.

Each generator yields (offset, data) runs and returns whether the receiver's
version is already identical (only a delta can tell).
"""

from __future__ import annotations

from collections.abc import Callable, Generator

from common.content_hash import piece_hash
from common.pb.migrate.v1 import receiver_pb2 as pb
from sender.source_file import SourceReader

Runs = Generator[tuple[int, bytes], None, bool]


def whole_runs(reader: SourceReader, start: int, room: Callable[[], int]) -> Runs:
    """The data past `start` (holes skipped); the prefix is only hashed."""
    reader.hash_prefix(start)
    yield from reader.pieces(start, room)
    return False


def delta_runs(reader: SourceReader, decision: pb.Decision, start: int) -> Runs:
    """The blocks past `start` whose hash differs from the receiver's version."""
    block_size, base_size = decision.block_size, decision.base_size
    hashes = decision.block_hashes
    identical = reader.planned.size == base_size
    for offset, data in reader.blocks(block_size):
        index = offset // block_size
        same = (
            index < len(hashes)
            and len(data) == min(block_size, base_size - offset)
            and piece_hash(data) == hashes[index]
        )
        identical = identical and same
        if same or offset + len(data) <= start:
            continue
        skip = max(0, start - offset)
        yield offset + skip, data[skip:]
    return identical
