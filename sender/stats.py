"""One stats object per run: the summary (and later the progress display and
the metrics) are views of it, never counters of their own."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

log = logging.getLogger("cvm-migrate")

# Warnings kept for the summary; past this they are only counted.
MAX_WARNINGS_KEPT = 1000


@dataclass
class RunStats:
    clock: Callable[[], float] = time.monotonic
    entries_total: int = 0
    files_total: int = 0  # regular files in the plan, one per inode
    files_transferred: int = 0
    files_skipped: int = 0
    files_failed: int = 0
    files_resumed: int = 0
    deleted: int = 0
    hardlinks: int = 0
    sockets_skipped: int = 0
    bytes_total: int = 0  # apparent size of the regular files in the plan
    bytes_sent_raw: int = 0  # file bytes carried in this run, uncompressed
    bytes_sent_wire: int = 0  # frame payload bytes on the wire
    bytes_resumed: int = 0  # file bytes the receiver already held from an earlier run
    # Data frames sent, by the zstd level in force for each (0: raw); with
    # --compress-level auto the levels a stream moved through.
    frames_per_level: dict[int, int] = field(default_factory=dict)
    attempts: int = 1
    sessions_opened: int = 0
    # Progress: the totals from the pre-scan, and what is done in file bytes (files
    # already current, committed, or durable on the receiver so far).
    scan_files: int = 0
    scan_bytes: int = 0
    scan_complete: bool = False
    done_files: int = 0
    done_bytes: int = 0
    current_file: str = ""
    warnings_count: int = 0
    warnings: list[str] = field(default_factory=list)
    started: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self.started = self.clock()

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def count_frame(self, level: int) -> None:
        with self._lock:
            self.frames_per_level[level] = self.frames_per_level.get(level, 0) + 1

    def frame_levels(self) -> dict[int, int]:
        """Data frames sent so far by zstd level, a copy."""
        with self._lock:
            return dict(self.frames_per_level)

    def mean_level(self) -> float | None:
        """The mean zstd level over the data frames sent; None before the first."""
        levels = self.frame_levels()
        frames = sum(levels.values())
        return sum(level * n for level, n in levels.items()) / frames if frames else None

    def warn(self, message: str) -> None:
        log.warning("%s", message)
        with self._lock:
            self.warnings_count += 1
            if len(self.warnings) < MAX_WARNINGS_KEPT:
                self.warnings.append(message)

    def set_scan(self, files: int, size: int, *, complete: bool) -> None:
        with self._lock:
            self.scan_files, self.scan_bytes, self.scan_complete = files, size, complete

    def start_again(self) -> None:
        """A new attempt plans the tree afresh: what it counts replaces the last one's,
        so files committed before count as skipped by it (the receiver has them) and
        transferred + skipped + failed still add up to the plan. The bytes carried stay:
        they did cross the link.
        """
        with self._lock:
            self.attempts += 1
            self.entries_total = self.files_total = self.bytes_total = 0
            self.files_skipped = self.files_failed = self.hardlinks = self.sockets_skipped = 0
            self.files_transferred = 0
            self.done_files = self.done_bytes = 0
            self.warnings_count = 0
            self.warnings = []

    def elapsed_s(self) -> float:
        return self.clock() - self.started

    def summary(self, exit_code: int) -> dict[str, object]:
        mean_level = self.mean_level()
        with self._lock:
            return {
                "files_total": self.files_total,
                "files_transferred": self.files_transferred,
                "files_skipped": self.files_skipped,
                "files_failed": self.files_failed,
                "files_resumed": self.files_resumed,
                "deleted": self.deleted,
                "entries_total": self.entries_total,
                "hardlinks": self.hardlinks,
                "sockets_skipped": self.sockets_skipped,
                "bytes_total": self.bytes_total,
                "bytes_sent_raw": self.bytes_sent_raw,
                "bytes_sent_wire": self.bytes_sent_wire,
                "bytes_resumed": self.bytes_resumed,
                "frames_per_level": {str(k): n for k, n in sorted(self.frames_per_level.items())},
                "compress_level_mean": None if mean_level is None else round(mean_level, 2),
                "elapsed_s": round(self.elapsed_s(), 3),
                "exit_code": exit_code,
                "attempts": self.attempts,
                "warnings_count": self.warnings_count,
                "warnings": list(self.warnings),
            }
