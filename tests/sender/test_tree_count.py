"""The count of what a run covers: each inode once, holes not allocated, SRC not an inode."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from common.excludes import ExcludePattern, ExcludeRules
from sender.prescan import prescan
from sender.stats import RunStats
from sender.tree_count import count_tree
from sender.walk import WalkOptions

MIB = 1 << 20


def _tree(root: Path) -> None:
    (root / "dir").mkdir(parents=True)
    (root / "dir" / "a").write_bytes(b"x" * 5000)
    os.link(root / "dir" / "a", root / "b")  # the same inode under a second name
    with (root / "sparse").open("wb") as sparse:
        sparse.truncate(64 * MIB)  # 64 MiB apparent, nothing allocated
    os.symlink("dir/a", root / "link")
    (root / "skipped.log").write_bytes(b"y" * 100)


def test_counts_each_inode_once_and_allocated_bytes_only(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    rules = ExcludeRules.from_sources([ExcludePattern(b"*.log")])
    count = count_tree(os.fsencode(src), WalkOptions(rules))
    assert (count.files, count.file_bytes) == (2, 5000 + 64 * MIB)
    assert count.inodes == 4  # dir, a (b is its hardlink), sparse, link
    allocated = sum(
        os.lstat(src / name).st_blocks * 512 for name in ("dir", "dir/a", "sparse", "link")
    )
    assert count.allocated_bytes == allocated < MIB


def test_the_prescan_publishes_the_same_totals(tmp_path: Path) -> None:
    src = tmp_path / "src"
    _tree(src)
    options = WalkOptions(ExcludeRules())
    stats = RunStats()
    prescan(os.fsencode(src), options, stats, threading.Event())
    count = count_tree(os.fsencode(src), options)
    assert stats.scan_complete
    assert (
        (stats.scan_files, stats.scan_bytes)
        == (count.files, count.file_bytes)
        == (3, 5100 + 64 * MIB)
    )
