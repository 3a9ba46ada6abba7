"""Making written data durable in groups, not per file.

One fsync per small file caps creation at about 500 files/s on the
development machine, against about 10,000 files/s without (DESIGN.md), so the
receiver flushes the whole filesystem once per sync group with syncfs(2),
which Python does not wrap.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Callable

_libc = ctypes.CDLL(None, use_errno=True)

# A sync group closes after this many raw bytes or this much time, whichever
# comes first. The sender's window must stay above the byte bound (plus one
# frame), or it would wait for an acknowledgement the receiver never sends.
GROUP_BYTES = 32 << 20
GROUP_SECONDS = 0.5
# Small files pile up commits faster than bytes; bound those too so a crash
# loses little and acknowledgements keep flowing.
GROUP_FILES = 4096


_SYNC_FILE_RANGE_WRITE = 2
_libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Start writing a range to disk now, without waiting for it.

    The kernel would otherwise hold gigabytes dirty (dirty_background_ratio of
    RAM) until the group's syncfs, which would then wait for all of it while
    nothing is received. Started early, the writes overlap the transfer and
    the syncfs finds little left to do.
    """
    _libc.sync_file_range(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


def syncfs(fd: int) -> None:
    """Flush every dirty page and inode of the filesystem holding `fd`."""
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class SyncGroup:
    """What has been written since the last sync, and when that was."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.raw_bytes = 0
        self.files = 0
        self.started = clock()

    def add(self, raw_bytes: int = 0, files: int = 0) -> None:
        self.raw_bytes += raw_bytes
        self.files += files

    def due(self) -> bool:
        if not (self.raw_bytes or self.files):
            return False
        return (
            self.raw_bytes >= GROUP_BYTES
            or self.files >= GROUP_FILES
            or self._clock() - self.started >= GROUP_SECONDS
        )

    def overdue(self) -> bool:
        """Twice the bounds: sealing must now wait for the group before it, not go on
        growing (what a crash loses, and the batch held in memory, stay bounded)."""
        return self.raw_bytes >= 2 * GROUP_BYTES or self.files >= 2 * GROUP_FILES

    def reset(self) -> None:
        self.raw_bytes = 0
        self.files = 0
        self.started = self._clock()


class SharedSync:
    """syncfs of one filesystem, shared: one call serves everyone waiting for it.

    Each stream commits its own sync groups; when several ask at once, a
    syncfs that started after a caller asked covers that caller's writes, so
    callers that arrive while one runs wait for the next one and share it:
    streams committing at once cost one sync, not one each (each sync makes the
    filesystem write its journal and metadata blocks once more).
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._changed = threading.Condition()
        self._started = 0  # syncs begun
        self._finished = 0  # the latest sync to end well
        self._running = False

    def sync(self) -> None:
        """Return once a syncfs that began after this call has succeeded."""
        with self._changed:
            needed = self._started + 1
            while self._finished < needed:
                if self._running:
                    self._changed.wait()
                    continue
                self._running = True
                self._started += 1
                mine = self._started
                self._changed.release()
                try:
                    syncfs(self._fd)
                finally:
                    self._changed.acquire()
                    self._running = False
                    self._changed.notify_all()
                # Only a sync that succeeded counts; after a failure the
                # next caller tries again, and sees its own error.
                self._finished = mine
