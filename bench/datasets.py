"""The benchmark's datasets, built once into a cache directory and reused.

Each dataset is a directory `<data>/datasets/<name>`; a marker file `<name>.done` next to
it (never inside it, so it is not part of the tree) says the build finished.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

MIB = 1 << 20

SYSTEM_SOURCES = ("/usr/include", "/usr/share/doc", "/usr/lib/python3")
BIGFILE_SIZE = 512 * MIB
SMALLFILES_COUNT = 30_000
SMALLFILES_DIRS = 300  # 15 top-level dirs x 20 subdirs
SMALLFILES_MIN, SMALLFILES_MAX = 1024, 16 * 1024
NAMES = ("system", "bigfile", "smallfiles")


@dataclass(frozen=True)
class TreeStats:
    """What a tree holds, counted per path (hardlinks count once per name)."""

    files: int
    dirs: int
    symlinks: int
    other: int
    bytes: int  # apparent size of the regular files

    def describe(self) -> str:
        return (
            f"{self.files} files, {self.dirs} dirs, {self.symlinks} symlinks, "
            f"{self.other} other, {self.bytes / 1e6:.1f} MB"
        )


def tree_stats(root: Path) -> TreeStats:
    """Walk `root` (not counting `root` itself) without following symlinks."""
    files = dirs = symlinks = other = total = 0
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as it:
            for entry in it:
                if entry.is_symlink():
                    symlinks += 1
                elif entry.is_dir(follow_symlinks=False):
                    dirs += 1
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    files += 1
                    total += entry.stat(follow_symlinks=False).st_size
                else:
                    other += 1
    return TreeStats(files, dirs, symlinks, other, total)


@dataclass(frozen=True)
class Dataset:
    name: str
    path: Path
    stats: TreeStats


# --- text that compresses like text ------------------------------------------------------


def _vocabulary(rng: random.Random, size: int = 2000) -> list[str]:
    syllables = [c + v for c in "bcdfghjklmnprstvwz" for v in "aeiou"] + ["th", "st", "er"]
    return ["".join(rng.choices(syllables, k=rng.randint(1, 4))) for _ in range(size)]


class TextSource:
    """Pseudo-English: words drawn (Zipf-like) from a made-up vocabulary, with punctuation
    and line breaks. zstd -3 gets roughly 3-4x on it, as on real text; it never repeats a
    long block, so no compressor gets an unrealistic dictionary win."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._words = _vocabulary(self._rng)
        self._weights = [1.0 / (rank + 1) for rank in range(len(self._words))]

    def block(self, size: int) -> bytes:
        out: list[str] = []
        length = 0
        while length < size:
            words = self._rng.choices(self._words, self._weights, k=2048)
            for i in range(0, len(words), 12):
                line = " ".join(words[i : i + 12]) + (".\n" if i % 60 == 0 else ",\n")
                out.append(line)
                length += len(line)
        return "".join(out).encode()[:size]


# --- builders ------------------------------------------------------------------------------


def _build_system(dest: Path, log: Callable[[str], None]) -> None:
    dest.mkdir()
    found = [s for s in SYSTEM_SOURCES if Path(s).is_dir()]
    if not found:
        raise RuntimeError(f"none of {SYSTEM_SOURCES} exists: cannot build 'system'")
    for source in found:
        target = dest / source.strip("/").replace("/", "_")
        log(f"  cp -a {source} {target}")
        subprocess.run(["cp", "-a", source, str(target)], check=True)


def _build_bigfile(dest: Path, log: Callable[[str], None]) -> None:
    dest.mkdir()
    text = TextSource(seed=1)
    rng = random.Random(2)
    half = BIGFILE_SIZE // 2
    log(f"  {BIGFILE_SIZE // MIB} MiB: {half // MIB} MiB text-like, then random")
    with open(dest / "big.bin", "wb") as f:
        for _ in range(half // MIB):
            f.write(text.block(MIB))
        for _ in range((BIGFILE_SIZE - half) // MIB):
            f.write(rng.randbytes(MIB))


def _build_smallfiles(dest: Path, log: Callable[[str], None]) -> None:
    dest.mkdir()
    rng = random.Random(3)
    # A 64 MiB pool, far larger than any compressor window; files are slices of it.
    text = TextSource(seed=4)
    pool = b"".join(text.block(MIB) for _ in range(64))
    dirs = []
    for top in range(15):
        for sub in range(SMALLFILES_DIRS // 15):
            d = dest / f"d{top:02d}" / f"s{sub:02d}"
            d.mkdir(parents=True)
            dirs.append(d)
    log(f"  {SMALLFILES_COUNT} files of 1-16 KiB in {len(dirs)} dirs")
    for i in range(SMALLFILES_COUNT):
        size = rng.randint(SMALLFILES_MIN, SMALLFILES_MAX)
        start = rng.randrange(0, len(pool) - size)
        (dirs[i % len(dirs)] / f"f{i:05d}.txt").write_bytes(pool[start : start + size])


_BUILDERS: dict[str, Callable[[Path, Callable[[str], None]], None]] = {
    "system": _build_system,
    "bigfile": _build_bigfile,
    "smallfiles": _build_smallfiles,
}


def ensure(name: str, data_dir: Path, log: Callable[[str], None] = print) -> Dataset:
    """The dataset `name` under `data_dir`, built first if it is not there yet."""
    if name not in _BUILDERS:
        raise ValueError(f"unknown dataset {name!r}; choose from {', '.join(NAMES)}")
    root = data_dir / "datasets"
    root.mkdir(parents=True, exist_ok=True)
    path, marker = root / name, root / f"{name}.done"
    if not marker.exists():
        if path.exists():
            log(f"dataset {name}: removing an unfinished build")
            shutil.rmtree(path)
        log(f"dataset {name}: building in {path}")
        _BUILDERS[name](path, log)
        marker.write_text(json.dumps(asdict(tree_stats(path))) + "\n")
    stats = tree_stats(path)  # counted again each run: the cache could have been touched
    if stats != TreeStats(**json.loads(marker.read_text())):
        log(f"dataset {name}: WARNING: differs from when it was built; delete {path} to rebuild")
    log(f"dataset {name}: {stats.describe()}")
    return Dataset(name, path, stats)
