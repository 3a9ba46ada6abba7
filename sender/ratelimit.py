"""--bwlimit: a token bucket on wire bytes, shared by every stream of a run.

go2tencentcloud's Client.Rsync.BandwidthLimit is in KBytes/s (rsync's unit,
1 KByte = 1024 bytes); so is --bwlimit.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

# A quarter of a second of traffic may go at once: smooth enough that any 10 s
# window stays within a few percent of the rate, loose enough not to stall a
# 1 MiB frame on a slow limit (a frame larger than the burst just waits longer).
_BURST_S = 0.25


class TokenBucket:
    def __init__(
        self,
        bytes_per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if bytes_per_s <= 0:
            raise ValueError("the rate must be positive")
        self.rate = bytes_per_s
        self._burst = bytes_per_s * _BURST_S
        self._clock = clock
        self._sleep = sleep
        self._tokens = self._burst
        self._updated = clock()
        self._lock = threading.Lock()

    def take(self, size: int) -> None:
        """Wait until `size` bytes may go. Takes go in turn: a large one makes a debt
        that the callers after it wait out, so the average rate holds."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self._burst, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= size
            wait = -self._tokens / self.rate if self._tokens < 0 else 0.0
        if wait > 0:
            self._sleep(wait)


def from_kbytes_per_s(kbytes_per_s: float) -> TokenBucket | None:
    """The bucket for --bwlimit; None (no limit) for 0."""
    return TokenBucket(kbytes_per_s * 1024) if kbytes_per_s > 0 else None
