"""Turning what the walk found into manifest entries."""

from __future__ import annotations

import errno
import os
import stat

from common.pb.migrate.v1 import receiver_pb2 as pb

_KINDS: dict[int, pb.EntryKind] = {
    stat.S_IFREG: pb.ENTRY_KIND_FILE,
    stat.S_IFDIR: pb.ENTRY_KIND_DIRECTORY,
    stat.S_IFLNK: pb.ENTRY_KIND_SYMLINK,
    stat.S_IFCHR: pb.ENTRY_KIND_CHAR_DEVICE,
    stat.S_IFBLK: pb.ENTRY_KIND_BLOCK_DEVICE,
    stat.S_IFIFO: pb.ENTRY_KIND_FIFO,
}


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


def kind_of(st: os.stat_result) -> pb.EntryKind | None:
    """The entry kind of a stat result; None for sockets, which are not migrated."""
    return _KINDS.get(stat.S_IFMT(st.st_mode))


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
