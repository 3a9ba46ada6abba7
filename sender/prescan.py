"""A quick count of what a run has to cover, so progress has a total.

It walks the tree as the run does (same excludes) but only counts regular
files (one per inode) and their apparent bytes, in its own thread, while the
run starts. The display shows the total as it grows and says so until the
count is complete; the percentage then never goes backwards.
"""

from __future__ import annotations

import stat
import threading

from sender.stats import RunStats
from sender.walk import WalkOptions, walk

# Publish the running count this often, in entries.
_PUBLISH_EVERY = 2000


def prescan(source: bytes, options: WalkOptions, stats: RunStats, stop: threading.Event) -> None:
    files = size = 0
    seen_links: set[tuple[int, int]] = set()
    for count, found in enumerate(walk(source, options, warn=lambda message: None), start=1):
        st = found.st
        if stat.S_ISREG(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if st.st_nlink == 1 or key not in seen_links:
                files, size = files + 1, size + st.st_size
                if st.st_nlink > 1:
                    seen_links.add(key)
        if count % _PUBLISH_EVERY == 0:
            if stop.is_set():
                return
            stats.set_scan(files, size, complete=False)
    stats.set_scan(files, size, complete=True)


def start_prescan(
    source: bytes, options: WalkOptions, stats: RunStats, stop: threading.Event
) -> threading.Thread:
    thread = threading.Thread(
        target=prescan, args=(source, options, stats, stop), name="prescan", daemon=True
    )
    thread.start()
    return thread
