"""Counting what a run covers, as its walk sees the tree: each inode once.

The preflight's target-space check and the progress totals both need this
count; whichever walks the tree first gives it to the other.
"""

from __future__ import annotations

import stat
from dataclasses import dataclass, field

from common.relpath import ROOT
from sender.walk import Found, WalkOptions, walk

# st_blocks counts 512-byte units whatever the filesystem's block size (stat(2)).
_ST_BLOCK_BYTES = 512


@dataclass
class TreeCount:
    # Regular files and their apparent sizes: what progress counts towards.
    files: int = 0
    file_bytes: int = 0
    # Entries below SRC and the bytes allocated to them on the source: what the
    # target needs (the run keeps holes, so a sparse file needs only its data).
    inodes: int = 0
    allocated_bytes: int = 0
    _seen_links: set[tuple[int, int]] = field(default_factory=set, repr=False, compare=False)

    def add(self, found: Found) -> None:
        st = found.st
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in self._seen_links:
                return  # a hardlink: its inode is counted already
            self._seen_links.add(key)
        if stat.S_ISREG(st.st_mode):
            self.files += 1
            self.file_bytes += st.st_size
        if found.relpath == ROOT:
            return  # the receiver's root exists already
        self.inodes += 1
        self.allocated_bytes += st.st_blocks * _ST_BLOCK_BYTES


def count_tree(source: bytes, options: WalkOptions) -> TreeCount:
    count = TreeCount()
    for found in walk(source, options, warn=lambda message: None):
        count.add(found)
    return count
