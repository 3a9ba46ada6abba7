"""Where a file has data: SEEK_DATA/SEEK_HOLE, so holes are never read or sent."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator


def data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each run of data within [start, end); the gaps are holes."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # only a hole is left
                return
            if exc.errno == errno.EINVAL:  # no SEEK_DATA here: all data
                yield position, end
                return
            raise
        if data >= end:
            return
        hole = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, hole
        position = hole


def read_extents(fd: int, start: int, end: int, step: int) -> Iterator[tuple[int, bytes]]:
    """(offset, data) of the data in [start, end), in runs of at most `step` bytes."""
    for run_start, run_end in data_extents(fd, start, end):
        position = run_start
        while position < run_end:
            data = os.pread(fd, min(step, run_end - position), position)
            if not data:
                return  # the file shrank under us; the caller's size check says so
            yield position, data
            position += len(data)
