"""A quick count of what a run has to cover, so progress has a total.

It walks the tree as the run does (same excludes) but only counts regular
files (one per inode) and their apparent bytes, in its own thread, while the
run starts. A run whose preflight counted the tree already has its totals and
needs no pre-scan (sender/tree_count.py). The display shows the total as it
grows and says so until the count is complete; the percentage then never goes
backwards.
"""

from __future__ import annotations

import threading

from sender.stats import RunStats
from sender.tree_count import TreeCount
from sender.walk import WalkOptions, walk

# Publish the running count this often, in entries.
_PUBLISH_EVERY = 2000


def prescan(source: bytes, options: WalkOptions, stats: RunStats, stop: threading.Event) -> None:
    count = TreeCount()
    for seen, found in enumerate(walk(source, options, warn=lambda message: None), start=1):
        count.add(found)
        if seen % _PUBLISH_EVERY == 0:
            if stop.is_set():
                return
            stats.set_scan(count.files, count.file_bytes, complete=False)
    stats.set_scan(count.files, count.file_bytes, complete=True)


def start_prescan(
    source: bytes, options: WalkOptions, stats: RunStats, stop: threading.Event
) -> threading.Thread:
    thread = threading.Thread(
        target=prescan, args=(source, options, stats, stop), name="prescan", daemon=True
    )
    thread.start()
    return thread
