"""Where a run stands, shown three ways, all read from the one RunStats.

On a terminal, a live progress display (rich); without one (docker logs), a
structured line every few seconds; with --json-progress, a JSON object per
line for machines. Done bytes count files already current on the receiver,
files committed and durable offsets of files in flight, so a resumed run does
not start from 0%.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import IO, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from sender.report import human_size
from sender.stats import RunStats

# The rate is smoothed over roughly this many seconds.
_RATE_WINDOW_S = 10.0


@dataclass(frozen=True)
class Snapshot:
    files_done: int
    files_total: int
    bytes_done: int
    bytes_total: int
    total_known: bool  # the pre-scan has finished
    bytes_per_s: float
    eta_s: float | None
    bytes_sent_wire: int
    current_file: str
    elapsed_s: float

    @property
    def fraction(self) -> float:
        return min(1.0, self.bytes_done / self.bytes_total) if self.bytes_total else 0.0


class RateMeter:
    """An exponentially weighted rate of done bytes, measured from the meter's making.

    The first measurement is taken as it is: smoothing it towards a rate of
    nothing would show a run half done at 0 B/s, and then an ETA far too long.
    """

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._last = (clock(), 0)
        self._measured = False
        self.rate = 0.0

    def update(self, done: int) -> float:
        now = self._clock()
        elapsed = now - self._last[0]
        if elapsed <= 0:
            return self.rate
        instant = (done - self._last[1]) / elapsed
        weight = min(1.0, elapsed / _RATE_WINDOW_S) if self._measured else 1.0
        self.rate += (instant - self.rate) * weight
        self._measured = True
        self._last = (now, done)
        return self.rate


def take_snapshot(stats: RunStats, meter: RateMeter) -> Snapshot:
    done, total = stats.done_bytes, max(stats.scan_bytes, stats.done_bytes)
    rate = meter.update(done)
    eta = (total - done) / rate if rate > 0 and stats.scan_complete else None
    return Snapshot(
        files_done=stats.done_files,
        files_total=max(stats.scan_files, stats.done_files),
        bytes_done=done,
        bytes_total=total,
        total_known=stats.scan_complete,
        bytes_per_s=rate,
        eta_s=eta,
        bytes_sent_wire=stats.bytes_sent_wire,
        current_file=stats.current_file,
        elapsed_s=stats.elapsed_s(),
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class View(Protocol):
    def show(self, snapshot: Snapshot) -> None: ...
    def close(self) -> None: ...


class TerminalView:
    """A live bar: bytes and files, rate, ETA, the current file."""

    def __init__(self, console: Console) -> None:
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[detail]}"),
            console=console,
            transient=False,
        )
        self._task = self._progress.add_task("migrating", total=1.0, detail="")
        self._progress.start()

    def show(self, snapshot: Snapshot) -> None:
        total = human_size(snapshot.bytes_total) + ("" if snapshot.total_known else "+ (scanning)")
        detail = (
            f"{human_size(snapshot.bytes_done)}/{total}  "
            f"{snapshot.files_done}/{snapshot.files_total} files  "
            f"{human_size(snapshot.bytes_per_s)}/s  ETA {_duration(snapshot.eta_s)}  "
            f"{snapshot.current_file[-60:]}"
        )
        self._progress.update(self._task, completed=snapshot.fraction, detail=detail)

    def close(self) -> None:
        self._progress.stop()


class LineView:
    """One line every few seconds: key=value pairs, or a JSON object."""

    def __init__(self, stream: IO[str], *, as_json: bool) -> None:
        self._stream = stream
        self._as_json = as_json

    def show(self, snapshot: Snapshot) -> None:
        if self._as_json:
            line = json.dumps({"event": "progress", **asdict(snapshot)})
        else:
            line = (
                f"progress pct={snapshot.fraction * 100:.1f} "
                f"bytes={snapshot.bytes_done}/{snapshot.bytes_total} "
                f"files={snapshot.files_done}/{snapshot.files_total} "
                f"rate={human_size(snapshot.bytes_per_s).replace(' ', '')}/s "
                f"eta={_duration(snapshot.eta_s)} total_known={str(snapshot.total_known).lower()}"
            )
        print(line, file=self._stream, flush=True)

    def close(self) -> None:
        pass


class ProgressReporter:
    """Shows snapshots from a thread until stopped, then a last one."""

    def __init__(self, stats: RunStats, view: View, interval_s: float) -> None:
        self._stats = stats
        self._view = view
        self._interval_s = interval_s
        self._meter = RateMeter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="progress", daemon=True)

    def __enter__(self) -> ProgressReporter:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()
        self._view.show(take_snapshot(self._stats, self._meter))
        self._view.close()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._view.show(take_snapshot(self._stats, self._meter))


def reporter_for(stats: RunStats, *, json_lines: bool, console: Console | None) -> ProgressReporter:
    """A terminal display when there is a terminal; lines (or JSON) otherwise."""
    if json_lines:
        return ProgressReporter(stats, LineView(sys.stdout, as_json=True), interval_s=2.0)
    if console is not None and console.is_terminal:
        return ProgressReporter(stats, TerminalView(console), interval_s=0.5)
    return ProgressReporter(stats, LineView(sys.stderr, as_json=False), interval_s=5.0)
