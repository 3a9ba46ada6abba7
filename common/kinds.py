"""Which entry kind a stat result is: one table for both ends."""

from __future__ import annotations

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


def kind_of(st: os.stat_result) -> pb.EntryKind | None:
    """The entry kind of a stat result; None for sockets, which are not migrated."""
    return _KINDS.get(stat.S_IFMT(st.st_mode))


def kind_name(kind: int) -> str:
    """'file', 'directory', 'symlink', ... for messages."""
    return pb.EntryKind.Name(kind).removeprefix("ENTRY_KIND_").lower().replace("_", " ")
