"""The receiver's one stats object: counters, gauges and latency histograms.

Everything the receiver reports — the Prometheus metrics, the Status call —
is a view of this object, never a set of counters of its own. Updates are a
lock and an addition; they happen per frame, per sync group and per batch,
never per byte.
"""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from dataclasses import dataclass, field

# Seconds. A frame write of 1 MiB takes about 2.5 ms at 400 MB/s; a sync group
# of 32 MiB about 80 ms (DESIGN.md disk figures); the buckets span 0.1 ms to 10 s.
LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0,
)  # fmt: skip


@dataclass
class Histogram:
    """Cumulative-ready bucket counts, as Prometheus histograms expose them."""

    bounds: tuple[float, ...] = LATENCY_BUCKETS
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value

    def cumulative(self) -> list[tuple[str, int]]:
        """(le, count) pairs, "+Inf" last."""
        pairs, running = [], 0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass
class SessionGauges:
    """The current session's size and progress, for progress and ETA in PromQL."""

    planned_files: int = 0
    planned_bytes: int = 0
    done_files: int = 0
    done_bytes: int = 0


class ReceiverStats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counters: Counter[str] = Counter()
        self.errors: Counter[str] = Counter()  # by gRPC status code name
        self.active_streams: Counter[str] = Counter()  # by method
        self.sessions_open = 0
        self.session = SessionGauges()
        self.frame_write = Histogram()
        self.sync = Histogram()

    def count(self, **amounts: int) -> None:
        with self._lock:
            self.counters.update(amounts)

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def stream_started(self, method: str) -> None:
        with self._lock:
            self.active_streams[method] += 1

    def stream_ended(self, method: str) -> None:
        with self._lock:
            self.active_streams[method] -= 1

    def session_opened(self) -> None:
        with self._lock:
            self.sessions_open += 1
            self.session = SessionGauges()

    def session_closed(self) -> None:
        with self._lock:
            self.sessions_open -= 1

    def planned(self, files: int, size: int) -> None:
        with self._lock:
            self.session.planned_files += files
            self.session.planned_bytes += size

    def progressed(self, files: int, size: int) -> None:
        with self._lock:
            self.session.done_files += files
            self.session.done_bytes += size

    def frame_written(self, seconds: float) -> None:
        with self._lock:
            self.frame_write.observe(seconds)

    def synced(self, seconds: float) -> None:
        with self._lock:
            self.sync.observe(seconds)

    def snapshot(self) -> ReceiverStats:
        """A consistent copy to read from another thread (a scrape, a Status call)."""
        copy = ReceiverStats()
        with self._lock:
            copy.counters = Counter(self.counters)
            copy.errors = Counter(self.errors)
            copy.active_streams = Counter(self.active_streams)
            copy.sessions_open = self.sessions_open
            copy.session = SessionGauges(**vars(self.session))
            copy.frame_write = Histogram(
                counts=list(self.frame_write.counts), total=self.frame_write.total
            )
            copy.sync = Histogram(counts=list(self.sync.counts), total=self.sync.total)
        return copy
