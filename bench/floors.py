"""Hardware floors: how fast this machine's disk lets *any* tool copy each dataset.

bench/run.py says how cvm-migrate compares with rsync; this says what neither can beat. A
copy on one host reads every source file cold and writes every byte into new files on the
same disk, so its time is bounded below by what the disk gives those two jobs. Measuring
them alone tells whether a speed target is a matter of the tool or of the hardware.

For each dataset, with the page cache dropped (`sync; echo 3 > /proc/sys/vm/drop_caches`)
before every measurement:

- **walk+lstat**: a sorted, single-threaded walk that lstats every entry (what any tool
  does before it copies);
- **read xN**: the content of every regular file, in walk order, with N threads;
- **write+sync xN**: the same number of files of the same sizes (the bytes come from memory:
  ext4 does not care what they are), in the same directory layout, into a fresh directory
  on the datasets' filesystem, each created under a temporary name, written, closed and
  renamed (as rsync and cvm-migrate do), then one `sync`, with N threads;
- **floor serial** = best read + best write+sync (one after the other);
  **floor overlapped** = the larger of the two (perfect overlap of reading and writing).

The write measurements go into `<data>/work/floors-scratch`, which is deleted afterwards
(and the deletion flushed: freeing many inodes right before a measurement slows ext4's
inode allocation). Nothing else is ever deleted.

    sudo .venv/bin/python bench/floors.py [--data DIR] [--datasets system,bigfile,smallfiles]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: `python bench/floors.py`
    sys.path.insert(0, str(REPO))

from bench import datasets as ds  # noqa: E402
from bench import snapshot  # noqa: E402
from bench.proc import drop_caches  # noqa: E402
from bench.report import write_documents  # noqa: E402
from bench.run import DEFAULT_DATA, RESULTS, _csv  # noqa: E402

THREADS = (1, 4)
CHUNK = 1 << 20
SCRATCH_NAME = "floors-scratch"
WALK = "walk+lstat"
NOTES = (
    "Page cache dropped before every measurement. seconds: median over rounds (min-max "
    "alongside). walk+lstat: files/s counts every entry (files, dirs, symlinks). read xN: "
    "every regular file's content, N threads. write+sync xN: the same number of files of the "
    "same sizes in the same layout, each created under a temporary name, written, closed "
    "and renamed, N threads, then one `sync` (included). floor serial: best read + best "
    "write+sync; floor overlapped: the larger of the two. MB = 10^6 B."
)

T = TypeVar("T")


@dataclass(frozen=True)
class Tree:
    """What is copied: directories (parents first) and regular files with their sizes,
    as paths relative to the dataset root, in sorted walk order."""

    dirs: list[str]
    files: list[tuple[str, int]]
    entries: int  # everything the walk sees: files, dirs, symlinks, other

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.files)


@dataclass(frozen=True)
class Sample:
    """One timed measurement of one round."""

    dataset: str
    measurement: str
    round: int
    seconds: float
    files: int
    bytes: int
    sync_seconds: float | None = None  # the `sync` part of a write+sync
    load1: float = field(default_factory=lambda: os.getloadavg()[0])  # others' load, at the end


@dataclass(frozen=True)
class Row:
    """One line of the table: the median over rounds, or a floor derived from medians."""

    dataset: str
    measurement: str
    seconds: float
    min_seconds: float | None
    max_seconds: float | None
    files: int
    bytes: int

    @property
    def files_per_s(self) -> float:
        return self.files / self.seconds if self.seconds > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0


# --- the tree --------------------------------------------------------------------------


def walk_sorted(top: str) -> Iterator[os.DirEntry[str]]:
    """Every entry under `top`, depth first, names sorted in each directory, symlinks not
    followed."""
    with os.scandir(top) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        yield entry
        if entry.is_dir(follow_symlinks=False):
            yield from walk_sorted(entry.path)


def list_tree(root: Path) -> Tree:
    dirs: list[str] = []
    files: list[tuple[str, int]] = []
    entries = 0
    for entry in walk_sorted(str(root)):
        entries += 1
        rel = os.path.relpath(entry.path, root)
        if entry.is_dir(follow_symlinks=False):
            dirs.append(rel)
        elif entry.is_file(follow_symlinks=False):
            files.append((rel, entry.stat(follow_symlinks=False).st_size))
    return Tree(dirs, files, entries)


# --- the three jobs --------------------------------------------------------------------


def parallel_sum(fn: Callable[[T], int], items: Sequence[T], threads: int) -> int:
    """sum(map(fn, items)), on `threads` threads when more than one."""
    if threads == 1:
        return sum(map(fn, items))
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(fn, items))


def walk_lstat(root: Path) -> int:
    """lstat every entry of a sorted walk; the number of entries."""
    count = 0
    for entry in walk_sorted(str(root)):
        os.lstat(entry.path)
        count += 1
    return count


_buffers = threading.local()


def _buffer() -> bytearray:
    """A read buffer of this thread's own."""
    buf: bytearray | None = getattr(_buffers, "buf", None)
    if buf is None:
        buf = _buffers.buf = bytearray(CHUNK)
    return buf


def read_file(path: str) -> int:
    """Read the whole file; the number of bytes read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        total = 0
        while n := os.readv(fd, [_buffer()]):
            total += n
        return total
    finally:
        os.close(fd)


def read_all(root: Path, tree: Tree, threads: int) -> int:
    paths = [os.path.join(root, rel) for rel, _ in tree.files]
    return parallel_sum(read_file, paths, threads)


_PAYLOAD = memoryview(os.urandom(CHUNK))


def write_file(path: str, size: int) -> int:
    """Create `.NAME.tmp` next to `path`, write `size` bytes, close, rename to `path`."""
    head, name = os.path.split(path)
    temp = os.path.join(head, f".{name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        done = 0
        while done < size:
            done += os.write(fd, _PAYLOAD[: min(CHUNK, size - done)])
    finally:
        os.close(fd)
    os.rename(temp, path)
    return done


def write_tree(dest: Path, tree: Tree, threads: int) -> int:
    """Make the tree's directories, then its files, under the empty directory `dest`."""
    for rel in tree.dirs:
        os.mkdir(dest / rel)
    jobs = [(os.path.join(dest, rel), size) for rel, size in tree.files]
    return parallel_sum(lambda job: write_file(*job), jobs, threads)


# --- the scratch directory: the only thing this script deletes ------------------------


def remove_scratch(scratch: Path) -> None:
    if scratch.name != SCRATCH_NAME:
        raise ValueError(f"refusing to delete {scratch}: not a {SCRATCH_NAME} directory")
    if scratch.is_symlink():
        scratch.unlink()
    elif scratch.exists():
        shutil.rmtree(scratch)


def fresh_scratch(scratch: Path) -> Path:
    remove_scratch(scratch)
    scratch.mkdir(parents=True)
    return scratch


# --- measuring -------------------------------------------------------------------------


def timed(fn: Callable[[], T]) -> tuple[float, T]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def measure_walk(name: str, root: Path, round_no: int, cold: Callable[[], None]) -> Sample:
    cold()
    seconds, count = timed(lambda: walk_lstat(root))
    return Sample(name, WALK, round_no, seconds, count, 0)


def measure_read(
    name: str, root: Path, tree: Tree, threads: int, round_no: int, cold: Callable[[], None]
) -> Sample:
    cold()
    seconds, total = timed(lambda: read_all(root, tree, threads))
    if total != tree.bytes:
        print(f"  WARNING: read {total} bytes of {name}, listed {tree.bytes}", flush=True)
    return Sample(name, f"read x{threads}", round_no, seconds, len(tree.files), total)


def measure_write(
    name: str,
    tree: Tree,
    scratch: Path,
    threads: int,
    round_no: int,
    cold: Callable[[], None],
) -> Sample:
    """write+sync into a fresh scratch dir, which is deleted (and that flushed) after."""
    dest = fresh_scratch(scratch)
    cold()
    try:
        start = time.perf_counter()
        total = write_tree(dest, tree, threads)
        synced = time.perf_counter()
        os.sync()
        end = time.perf_counter()
    finally:
        remove_scratch(scratch)
        cold()  # the deletion's inode frees must not slow the next measurement
    return Sample(
        name, f"write+sync x{threads}", round_no, end - start, len(tree.files), total, end - synced
    )


def measure_round(
    name: str, root: Path, tree: Tree, scratch: Path, round_no: int, cold: Callable[[], None]
) -> Iterator[Sample]:
    """walk, reads, writes; which thread count goes first rotates from round to round."""
    shift = (round_no - 1) % len(THREADS)
    order = [*THREADS[shift:], *THREADS[:shift]]
    yield measure_walk(name, root, round_no, cold)
    for threads in order:
        yield measure_read(name, root, tree, threads, round_no, cold)
    for threads in order:
        yield measure_write(name, tree, scratch, threads, round_no, cold)


# --- summarizing -----------------------------------------------------------------------


def median_rows(samples: Sequence[Sample]) -> list[Row]:
    """One row per dataset x measurement, in first-seen order: median seconds over rounds."""
    groups: dict[tuple[str, str], list[Sample]] = {}
    for s in samples:
        groups.setdefault((s.dataset, s.measurement), []).append(s)
    rows = []
    for (dataset, measurement), group in groups.items():
        seconds = [s.seconds for s in group]
        rows.append(
            Row(
                dataset,
                measurement,
                statistics.median(seconds),
                min(seconds),
                max(seconds),
                group[0].files,
                group[0].bytes,
            )
        )
    return rows


def floor_rows(rows: Sequence[Row]) -> list[Row]:
    """Per dataset: best read + best write+sync (serial), and the larger of them (overlapped)."""
    out = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        mine = [r for r in rows if r.dataset == dataset]
        reads = [r for r in mine if r.measurement.startswith("read")]
        writes = [r for r in mine if r.measurement.startswith("write")]
        if not reads or not writes:
            continue
        read = min(reads, key=lambda r: r.seconds)
        write = min(writes, key=lambda r: r.seconds)
        for label, seconds in (
            ("floor serial (read + write)", read.seconds + write.seconds),
            ("floor overlapped (max)", max(read.seconds, write.seconds)),
        ):
            out.append(Row(dataset, label, seconds, None, None, read.files, read.bytes))
    return out


def with_floors(rows: Sequence[Row]) -> list[Row]:
    """The rows of each dataset followed by its floors."""
    floors = floor_rows(rows)
    out: list[Row] = []
    for dataset in dict.fromkeys(r.dataset for r in rows):
        out += [r for r in rows if r.dataset == dataset]
        out += [r for r in floors if r.dataset == dataset]
    return out


def _cells(row: Row) -> list[str]:
    spread = "-" if row.min_seconds is None else f"{row.min_seconds:.2f}-{row.max_seconds:.2f}"
    mb = "-" if row.measurement == WALK else f"{row.mb_per_s:.1f}"
    return [
        row.dataset,
        row.measurement,
        f"{row.seconds:.2f}",
        spread,
        f"{row.files_per_s:.0f}",
        mb,
    ]


HEADERS = ("dataset", "measurement", "seconds", "min-max s", "files/s", "MB/s")


def markdown_table(rows: Iterable[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|---|---|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines)


def write_results(
    out_dir: Path, meta: dict[str, Any], samples: Sequence[Sample], rows: Sequence[Row]
) -> tuple[Path, Path]:
    document = {
        "meta": meta,
        "notes": NOTES,
        "rows": [asdict(r) for r in rows],
        "samples": [asdict(s) for s in samples],
    }
    body = [markdown_table(rows), "", NOTES]
    return write_documents(out_dir, "floors", "Hardware floors", document, body)


# --- the command -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help="dataset cache and work dir")
    p.add_argument("--datasets", type=_csv(ds.NAMES), default=list(ds.NAMES))
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--results", type=Path, default=RESULTS, help="where floors.{json,md} go")
    p.add_argument(
        "--no-drop-caches",
        action="store_true",
        help="only `sync` between measurements (warm cache: not a floor; no root needed)",
    )
    return p


def _filesystem(path: Path) -> str:
    done = subprocess.run(
        ["findmnt", "-n", "-o", "FSTYPE,SOURCE", "--target", str(path)],
        capture_output=True,
        text=True,
    )
    return done.stdout.strip() or "?"


def _meta(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    return {
        "started": datetime.datetime.now().isoformat(timespec="seconds"),
        "command": shlex.join(["bench/floors.py", *argv]),
        "commit": snapshot.describe(REPO)["commit"],
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "filesystem": _filesystem(args.data),
        "rounds": args.rounds,
        "drop_caches": not args.no_drop_caches,
        "loadavg_at_start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def _progress(s: Sample) -> str:
    sync = "" if s.sync_seconds is None else f" (sync {s.sync_seconds:.2f} s)"
    return (
        f"  {s.dataset:10} r{s.round} {s.measurement:15} {s.seconds:7.2f} s{sync}  "
        f"{s.files / s.seconds:7.0f} files/s  {s.bytes / 1e6 / s.seconds:7.1f} MB/s  "
        f"load {s.load1:.1f}"
    )


def run(
    datasets: Sequence[ds.Dataset], scratch: Path, rounds: int, cold: Callable[[], None]
) -> list[Sample]:
    samples: list[Sample] = []
    for dataset in datasets:
        tree = list_tree(dataset.path)
        for round_no in range(1, rounds + 1):
            for sample in measure_round(dataset.name, dataset.path, tree, scratch, round_no, cold):
                samples.append(sample)
                print(_progress(sample), flush=True)
    return samples


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0 and not args.no_drop_caches:
        print(
            "run as root (drop_caches): sudo .venv/bin/python bench/floors.py",
            file=sys.stderr,
        )
        return 2
    datasets = [ds.ensure(name, args.data) for name in args.datasets]
    scratch = args.data / "work" / SCRATCH_NAME
    scratch.parent.mkdir(parents=True, exist_ok=True)
    if os.stat(scratch.parent).st_dev != os.stat(datasets[0].path).st_dev:
        print(f"WARNING: {scratch.parent} is not on the datasets' filesystem", flush=True)
    meta = _meta(args, argv)
    cold = os.sync if args.no_drop_caches else drop_caches
    try:
        samples = run(datasets, scratch, args.rounds, cold)
    finally:
        remove_scratch(scratch)
    rows = with_floors(median_rows(samples))
    print("\n" + markdown_table(rows) + "\n\n" + NOTES)
    json_path, md_path = write_results(args.results, meta, samples, rows)
    print(f"\nwrote {json_path} and {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
