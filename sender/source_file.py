"""Reading one source file: holes skipped, changes detected, content hashed.

The file is checked before and after reading against the fingerprint it was
planned with, so content that changed underneath is never committed under
stale metadata. The whole-file hash covers every byte, holes as zeros,
whatever part of the file is actually sent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from common.content_hash import FileDigest
from common.extents import data_extents, read_extents

# O_NONBLOCK: a FIFO swapped in since the walk must not block the read.
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_HASH_STEP = 1 << 20


class SourceChanged(Exception):
    """The file is not what was planned any more (size, mtime or ctime)."""


@dataclass(frozen=True)
class Fingerprint:
    """What must not change between planning a file and finishing reading it."""

    size: int
    mtime_ns: int
    ctime_ns: int

    @classmethod
    def of(cls, st: os.stat_result) -> Fingerprint:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def open_source(abspath: bytes) -> int:
    """Open without following a symlink swapped in, and without touching atime."""
    try:
        return os.open(abspath, _OPEN_FLAGS | os.O_NOATIME)
    except PermissionError:
        # O_NOATIME needs ownership or CAP_FOWNER.
        return os.open(abspath, _OPEN_FLAGS)


# Files are announced to the kernel's readahead this far at most: their start
# is what an uploader reads first, and a whole big file would crowd the cache.
_PREFETCH_BYTES = 1 << 20


def prefetch(abspath: bytes, size: int) -> None:
    """Ask the kernel to start reading a file planned for sending, without waiting.

    Uploaders read one file at a time; cold small files would each cost a disk
    round trip in turn. Announced when planned, they are read in parallel by the
    kernel and are in the page cache when their turn comes.
    """
    try:
        fd = os.open(abspath, _OPEN_FLAGS)
    except OSError:
        return  # the uploader will say what is wrong with it
    try:
        os.posix_fadvise(fd, 0, min(size, _PREFETCH_BYTES), os.POSIX_FADV_WILLNEED)
    finally:
        os.close(fd)


class SourceReader:
    """Reads a planned file, hashing the whole content on the way."""

    def __init__(self, fd: int, planned: Fingerprint) -> None:
        self.fd = fd
        self.planned = planned
        self.digest = FileDigest()
        if Fingerprint.of(os.fstat(fd)) != planned:
            raise SourceChanged("changed since it was planned")

    def hash_prefix(self, end: int) -> None:
        """Hash [0, end) without sending it: the receiver holds it already."""
        for position, data in read_extents(self.fd, 0, end, _HASH_STEP):
            self.digest.update_at(position, data)
        self.digest.zero_fill_to(end)

    def pieces(self, start: int, room: Callable[[], int]) -> Iterator[tuple[int, bytes]]:
        """(offset, data) runs of data from `start`, each at most `room()` bytes."""
        for run_start, run_end in data_extents(self.fd, start, self.planned.size):
            position = run_start
            while position < run_end:
                data = self._read(position, min(run_end - position, room()))
                yield position, data
                position += len(data)

    def blocks(self, block_size: int) -> Iterator[tuple[int, bytes]]:
        """Every block of the file in order, holes read as zeros."""
        for offset in range(0, self.planned.size, block_size):
            yield offset, self._read(offset, min(block_size, self.planned.size - offset))

    def _read(self, offset: int, length: int) -> bytes:
        data = os.pread(self.fd, length, offset)
        if len(data) != length:
            raise SourceChanged("shrank while read")
        self.digest.update_at(offset, data)
        return data

    def finish(self) -> bytes:
        """The whole-file hash, once the file is known not to have changed."""
        if Fingerprint.of(os.fstat(self.fd)) != self.planned:
            raise SourceChanged("changed while read")
        self.digest.zero_fill_to(self.planned.size)
        return self.digest.digest()
