"""Turning what the walk found into manifest entries."""

from __future__ import annotations

import errno
import os
import stat

from common.pb.migrate.v1 import receiver_pb2 as pb


class Hardlinks:
    """The first name seen of every multiply-linked regular file.

    Only files with st_nlink > 1 are remembered, so the table grows with the
    hardlinked files of the tree, not with the tree (rsync -H does the same).
    """

    def __init__(self) -> None:
        self._first: dict[tuple[int, int], bytes] = {}

    def first_name(self, st: os.stat_result, relpath: bytes) -> bytes | None:
        """The earlier name of this inode, or None if `relpath` is the first."""
        key = (st.st_dev, st.st_ino)
        first = self._first.get(key)
        if first is None:
            self._first[key] = relpath
        return first


def describe(
    entry_id: int, relpath: bytes, abspath: bytes, st: os.stat_result, kind: pb.EntryKind
) -> pb.Entry:
    """The manifest entry for one inode. Raises OSError if it cannot be read."""
    entry = pb.Entry(
        id=entry_id,
        path=relpath,
        kind=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        mtime_ns=st.st_mtime_ns,
    )
    if kind == pb.ENTRY_KIND_FILE:
        entry.size = st.st_size
        entry.ctime_ns = st.st_ctime_ns
    elif kind == pb.ENTRY_KIND_SYMLINK:
        entry.link_target = os.readlink(abspath)
    elif kind in (pb.ENTRY_KIND_CHAR_DEVICE, pb.ENTRY_KIND_BLOCK_DEVICE):
        entry.rdev = st.st_rdev
    entry.xattrs.extend(read_xattrs(abspath))
    return entry


def read_xattrs(abspath: bytes) -> list[pb.Xattr]:
    """Every extended attribute of the path itself (a symlink is not followed)."""
    try:
        names = os.listxattr(abspath, follow_symlinks=False)
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return []
        raise
    xattrs = []
    for name in sorted(names):
        try:
            value = os.getxattr(abspath, name, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENODATA:  # removed in between
                continue
            raise
        xattrs.append(pb.Xattr(name=os.fsencode(name), value=value))
    return xattrs
