"""--compress-level auto: the zstd level of a stream, chosen the way `zstd --adapt` does.

A stream's frames are made by one thread and sent by gRPC's; between them is a
small queue. Time the maker spends waiting to hand a frame over (queue full) or
waiting on --bwlimit says the link is the bottleneck: compressing harder costs
nothing and saves wire bytes. Time gRPC spends waiting for a frame (queue empty)
while the maker was busy says the maker is the bottleneck: compress less, but
only while compressing is a good part of the maker's work. A maker held up by
its disk (cold small files: about 6k files/s, DESIGN.md) would not go faster at a
lower level and would only send more bytes. Waiting for the receiver's
acknowledgements is neither and is not fed in. The controller is pure: it is fed
the waits and answers the level.
"""

from __future__ import annotations

from dataclasses import dataclass

AUTO = -1  # RunOptions.compress_level for --compress-level auto

# The old fixed default; a stream starts here and moves one level at a time.
START_LEVEL = 3
# Level 0 sends raw and spends no CPU on zstd, for links faster than a core can
# compress (loopback: a 512 MiB half-text file in 1.4 s raw, 3.1 s at level 3).
LOWEST_LEVEL = 0
# Streaming zstd on one core, 1 MiB frames of the benchmark's system tree (a
# loaded 2-core machine): level 6 about 107-161 MB/s, level 7 about 91 MB/s, and
# each level above 7 slower still; past level 9 one core no longer fills a
# 200 Mbit link (25 MB/s) after compression, for a few percent of wire bytes.
HIGHEST_LEVEL = 9


@dataclass(frozen=True)
class Judgement:
    """How the level is judged: over `frames` frames, by waits of at least `min_wait_s`
    where one side's waits are `dominance` times the other's, `streak` times in a
    row before the level moves (so two levels on either side of the link's speed do
    not swap every few frames: each change starts a new zstd context). Lighter only
    while compressing took at least `compress_share` of the time gRPC starved.

    A change costs one frame compressed without the context's history (about 13%
    more bytes for it on a system tree), so one per 8 frames costs under 2%.
    Measured on the benchmark's system tree, 2 streams, --bwlimit 4096: judged
    over 8 frames the level climbed from 3 to 6 within the 128 frames a stream
    sends; over 4 frames, to 9."""

    frames: int = 4
    min_wait_s: float = 0.01
    dominance: float = 2.0
    streak: int = 2
    compress_share: float = 0.5


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
        self._compress_s = 0.0
        self._verdict = 0  # +1 harder, -1 lighter, 0 hold
        self._streak = 0

    def observe(self, link_wait_s: float, starved_s: float, compress_s: float) -> int:
        """Since the last frame: the maker's wait for the link (queue full, --bwlimit),
        gRPC's wait for the maker (queue empty while the maker worked), and the time
        the maker spent compressing. The level for the next frame."""
        self._frames += 1
        self._link_wait_s += link_wait_s
        self._maker_wait_s += starved_s
        self._compress_s += compress_s
        if self._frames >= self._judgement.frames:
            self._judge()
        return self.level

    def _judge(self) -> None:
        j = self._judgement
        link, maker, compress = self._link_wait_s, self._maker_wait_s, self._compress_s
        self._frames, self._link_wait_s, self._maker_wait_s, self._compress_s = 0, 0.0, 0.0, 0.0
        if link >= j.min_wait_s and link > j.dominance * maker:
            verdict = 1 if self.level < self._highest else 0
        elif (
            maker >= j.min_wait_s
            and maker > j.dominance * link
            and compress >= j.compress_share * maker
        ):
            verdict = -1 if self.level > self._lowest else 0
        else:
            verdict = 0
        self._streak = self._streak + 1 if verdict == self._verdict else 1
        self._verdict = verdict
        if verdict and self._streak >= j.streak:
            self.level += verdict
            self._streak = 0
