"""Reading one source file as pieces: holes skipped, changes detected.

Holes are found with SEEK_DATA/SEEK_HOLE and never read or sent. The file is
checked before and after reading against what was planned, so content that
changed underneath is never committed under the planned size and mtime.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from common.content_hash import FileDigest

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC


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


def data_extents(fd: int, size: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of data below `size`; the gaps are holes."""
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                return
            if exc.errno == errno.EINVAL:  # no SEEK_DATA here: all data
                yield position, size
                return
            raise
        if start >= size:
            return
        end = min(os.lseek(fd, start, os.SEEK_HOLE), size)
        yield start, end
        position = end


class SourceReader:
    """Reads a planned file piece by piece, hashing the whole content on the way."""

    def __init__(self, fd: int, planned: Fingerprint) -> None:
        self.fd = fd
        self.planned = planned
        self.digest = FileDigest()
        if Fingerprint.of(os.fstat(fd)) != planned:
            raise SourceChanged("changed since it was planned")

    def pieces(self, room: Callable[[], int]) -> Iterator[tuple[int, bytes]]:
        """(offset, data) runs, each at most `room()` bytes when it is read."""
        for start, end in data_extents(self.fd, self.planned.size):
            position = start
            while position < end:
                length = min(end - position, room())
                data = os.pread(self.fd, length, position)
                if len(data) != length:
                    raise SourceChanged("shrank while read")
                self.digest.update_at(position, data)
                yield position, data
                position += length

    def finish(self) -> bytes:
        """The whole-file hash, once the file is known not to have changed."""
        if Fingerprint.of(os.fstat(self.fd)) != self.planned:
            raise SourceChanged("changed while read")
        self.digest.zero_fill_to(self.planned.size)
        return self.digest.digest()
