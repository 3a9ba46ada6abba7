"""Comparing the source's manifest with what the receiver holds.

Each entry is looked up beneath the root without following symlinks and
compared field by field: kind, size, content hash, link target, device
number, hardlink group, owner, mode, mtime and xattrs. What the manifest does
not name is reported as extra, unless the exclude rules protect it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator

from common.content_hash import file_digest
from common.kinds import kind_name, kind_of
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import split_relpath
from receiver.beneath import DirCache, NotADirectoryOnPath, proc_path
from receiver.metadata import read_xattrs, xattrs_of
from receiver.tree import READ_ONLY_FLAGS


def _difference(entry: pb.Entry, kind: pb.DifferenceKind, detail: str = "") -> pb.Difference:
    return pb.Difference(path=entry.path, kind=kind, detail=detail)


class Checker:
    """Compares entries with the tree; one per Verify stream (it owns a DirCache)."""

    def __init__(self, dirs: DirCache) -> None:
        self._dirs = dirs

    def _lookup(self, path: bytes) -> tuple[int, bytes, os.stat_result] | None:
        """(parent descriptor, name, lstat) of the path, or None if it is not there."""
        parts = split_relpath(path)
        try:
            if not parts:
                return self._dirs.directory(()), b".", os.fstat(self._dirs.directory(()))
            dir_fd, name = self._dirs.parent_of(path)
            return dir_fd, name, os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except (FileNotFoundError, NotADirectoryOnPath):
            return None

    def differences(self, entry: pb.Entry) -> list[pb.Difference]:
        """What differs for one entry; a target that cannot be read is a difference too."""
        try:
            return self._compare(entry)
        except OSError as exc:
            detail = f"cannot be read on the target: {exc.strerror}"
            return [_difference(entry, pb.DIFFERENCE_KIND_METADATA, detail)]

    def _compare(self, entry: pb.Entry) -> list[pb.Difference]:
        found = self._lookup(entry.path)
        if found is None:
            return [_difference(entry, pb.DIFFERENCE_KIND_MISSING)]
        dir_fd, name, st = found
        if entry.kind == pb.ENTRY_KIND_HARDLINK:
            return self._hardlink_differences(entry, st)
        held = kind_of(st)
        if held != entry.kind:
            shown = kind_name(held) if held is not None else "socket"
            detail = f"{kind_name(entry.kind)} on the source, {shown} on the target"
            return [_difference(entry, pb.DIFFERENCE_KIND_TYPE, detail)]
        if entry.kind == pb.ENTRY_KIND_FILE:
            content = self._content_difference(entry, dir_fd, name, st)
            if content:
                return [_difference(entry, pb.DIFFERENCE_KIND_CONTENT, content)]
        target = name if entry.kind == pb.ENTRY_KIND_SYMLINK else None
        details = _metadata_details(entry, st, _xattrs_at(dir_fd, name), dir_fd, target)
        if details:
            return [_difference(entry, pb.DIFFERENCE_KIND_METADATA, "; ".join(details))]
        return []

    def _hardlink_differences(self, entry: pb.Entry, st: os.stat_result) -> list[pb.Difference]:
        first = self._lookup(entry.link_target)
        if first is None or (first[2].st_dev, first[2].st_ino) != (st.st_dev, st.st_ino):
            detail = f"not a hardlink of /{entry.link_target.decode('utf-8', 'backslashreplace')}"
            return [_difference(entry, pb.DIFFERENCE_KIND_METADATA, detail)]
        return []

    @staticmethod
    def _content_difference(
        entry: pb.Entry, dir_fd: int, name: bytes, st: os.stat_result
    ) -> str | None:
        if st.st_size != entry.size:
            return f"size {entry.size} on the source, {st.st_size} on the target"
        fd = os.open(name, READ_ONLY_FLAGS, dir_fd=dir_fd)
        try:
            if file_digest(fd, st.st_size) != entry.content_xxh3_128:
                return "content differs (xxh3-128)"
        finally:
            os.close(fd)
        return None


def _xattrs_at(dir_fd: int, name: bytes) -> dict[bytes, bytes]:
    return read_xattrs(proc_path(dir_fd, name))


def _metadata_details(
    entry: pb.Entry,
    st: os.stat_result,
    xattrs: dict[bytes, bytes],
    dir_fd: int,
    symlink_name: bytes | None,
) -> list[str]:
    details = []
    if symlink_name is not None:
        held = os.readlink(symlink_name, dir_fd=dir_fd)
        if held != entry.link_target:
            details.append(f"link target {entry.link_target!r} != {held!r}")
    elif stat.S_IMODE(st.st_mode) != entry.mode:
        details.append(f"mode {entry.mode:04o} != {stat.S_IMODE(st.st_mode):04o}")
    is_device = entry.kind in (pb.ENTRY_KIND_CHAR_DEVICE, pb.ENTRY_KIND_BLOCK_DEVICE)
    if is_device and st.st_rdev != entry.rdev:
        details.append(f"device {entry.rdev} != {st.st_rdev}")
    if (st.st_uid, st.st_gid) != (entry.uid, entry.gid):
        details.append(f"owner {entry.uid}:{entry.gid} != {st.st_uid}:{st.st_gid}")
    if st.st_mtime_ns != entry.mtime_ns:
        details.append(f"mtime {entry.mtime_ns} != {st.st_mtime_ns} ns")
    wanted = xattrs_of(entry)
    if xattrs != wanted:
        names = sorted(n.decode("utf-8", "backslashreplace") for n in wanted.keys() ^ xattrs.keys())
        changed = sorted(
            n.decode("utf-8", "backslashreplace")
            for n in wanted.keys() & xattrs.keys()
            if wanted[n] != xattrs[n]
        )
        details.append(f"xattrs differ: {', '.join(names + changed)}")
    return details


def extra_differences(paths: Iterator[tuple[bytes, bool]]) -> Iterator[pb.Difference]:
    for path, is_dir in paths:
        detail = "directory" if is_dir else ""
        yield pb.Difference(path=path, kind=pb.DIFFERENCE_KIND_EXTRA, detail=detail)
