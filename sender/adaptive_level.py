"""--compress-level auto: the zstd level of a stream, chosen the way `zstd --adapt` does.

A stream's frames are made by one thread and sent by gRPC's; between them is a
small queue. Time the maker spends waiting to hand a frame over (queue full) or
waiting on --bwlimit says the link is the bottleneck: compressing harder costs
nothing and saves wire bytes. Time gRPC spends waiting for a frame (queue empty)
while the maker was busy says reading and compressing is the bottleneck:
compress less. Waiting for the receiver's acknowledgements is neither and is not
fed in. The controller is pure: it is fed the waits and answers the level.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = -1  # RunOptions.compress_level for --compress-level auto

# The old fixed default; a stream starts here and moves one level at a time.
START_LEVEL = 3
# Level 0 sends raw and spends no CPU on zstd, for links faster than a core can
# compress (loopback: a 512 MiB half-text file in 1.4 s raw, 3.1 s at level 3).
LOWEST_LEVEL = 0
# Streaming zstd on one core, 1 MiB frames of a system tree (/tmp/zlevels.py, a
# loaded 2-core machine): level 6 about 107-161 MB/s, level 7 about 91 MB/s, and
# each level above 7 slower still; past level 9 one core no longer fills a
# 200 Mbit link (25 MB/s) after compression, for a few percent of wire bytes.
HIGHEST_LEVEL = 9


@dataclass(frozen=True)
class Judgement:
    """How the level is judged: over `frames` frames, by waits of at least `min_wait_s`
    where one side's waits are `dominance` times the other's, `streak` times in a
    row before the level moves (so two levels on either side of the link's speed do
    not swap every few frames: each change starts a new zstd context)."""

    frames: int = 8
    min_wait_s: float = 0.01
    dominance: float = 2.0
    streak: int = 2


class AdaptiveLevel:
    def __init__(
        self,
        start: int = START_LEVEL,
        lowest: int = LOWEST_LEVEL,
        highest: int = HIGHEST_LEVEL,
        judgement: Judgement = Judgement(),
    ) -> None:
        if not lowest <= start <= highest:
            raise ValueError(f"start level {start} is outside {lowest}..{highest}")
        self.level = start
        self._lowest, self._highest = lowest, highest
        self._judgement = judgement
        self._frames = 0
        self._link_wait_s = 0.0
        self._maker_wait_s = 0.0
        self._verdict = 0  # +1 harder, -1 lighter, 0 hold
        self._streak = 0

    def observe(self, link_wait_s: float, starved_s: float) -> int:
        """Waits since the last frame: the maker's for the link (queue full, --bwlimit)
        and gRPC's for the maker (queue empty while the maker worked). The level for
        the next frame."""
        self._frames += 1
        self._link_wait_s += link_wait_s
        self._maker_wait_s += starved_s
        if self._frames >= self._judgement.frames:
            self._judge()
        return self.level

    def _judge(self) -> None:
        j = self._judgement
        link, maker = self._link_wait_s, self._maker_wait_s
        self._frames, self._link_wait_s, self._maker_wait_s = 0, 0.0, 0.0
        if link >= j.min_wait_s and link > j.dominance * maker:
            verdict = 1 if self.level < self._highest else 0
        elif maker >= j.min_wait_s and maker > j.dominance * link:
            verdict = -1 if self.level > self._lowest else 0
        else:
            verdict = 0
        self._streak = self._streak + 1 if verdict == self._verdict else 1
        self._verdict = verdict
        if verdict and self._streak >= j.streak:
            self.level += verdict
            self._streak = 0
