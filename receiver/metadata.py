"""Owner, mode, xattrs and times: comparing them and applying them.

A target is either an open descriptor (regular files, directories) or a
/proc/self/fd path to a symlink, device or FIFO, which must never be opened
or followed.
"""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from common.pb.migrate.v1 import receiver_pb2 as pb

Target = int | bytes


def _nofollow(target: Target) -> dict[str, Any]:
    # os.* refuse follow_symlinks together with a descriptor.
    return {} if isinstance(target, int) else {"follow_symlinks": False}


def read_xattrs(target: Target) -> dict[bytes, bytes]:
    """Every extended attribute of the target, by raw name."""
    try:
        names = os.listxattr(target, **_nofollow(target))  # type: ignore[arg-type]
    except OSError as exc:
        if exc.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    values: dict[bytes, bytes] = {}
    for name in names:
        try:
            values[os.fsencode(name)] = os.getxattr(target, name, **_nofollow(target))  # type: ignore[arg-type]
        except OSError as exc:
            if exc.errno != errno.ENODATA:  # removed in between
                raise
    return values


def xattrs_of(entry: pb.Entry) -> dict[bytes, bytes]:
    return {x.name: x.value for x in entry.xattrs}


def metadata_matches(st: os.stat_result, xattrs: dict[bytes, bytes], entry: pb.Entry) -> bool:
    """Whether owner, mode, mtime and xattrs already equal the entry's."""
    mode_matches = stat.S_ISLNK(st.st_mode) or stat.S_IMODE(st.st_mode) == entry.mode
    return (
        mode_matches
        and st.st_uid == entry.uid
        and st.st_gid == entry.gid
        and st.st_mtime_ns == entry.mtime_ns
        and xattrs == xattrs_of(entry)
    )


def apply_metadata(target: Target, entry: pb.Entry, *, is_symlink: bool, as_root: bool) -> None:
    """Make the target's owner, xattrs, mode and mtime those of the entry.

    The order matters: chown clears setuid/setgid bits and security.capability,
    and writing an ACL rewrites the group bits of the mode, so owner first,
    then xattrs, then mode, then times (which any other change would bump).
    """
    nofollow = _nofollow(target)
    if as_root:
        os.chown(target, entry.uid, entry.gid, **nofollow)  # type: ignore[arg-type]
    _apply_xattrs(target, xattrs_of(entry))
    if not is_symlink:  # Linux has no mode on symlinks
        os.chmod(target, entry.mode)  # type: ignore[arg-type]
    os.utime(target, ns=(entry.mtime_ns, entry.mtime_ns), **nofollow)  # type: ignore[arg-type]


def _apply_xattrs(target: Target, wanted: dict[bytes, bytes]) -> None:
    # A new file inherits a default ACL from its directory; what the source
    # does not have must go.
    current = read_xattrs(target)
    nofollow = _nofollow(target)
    for name in current.keys() - wanted.keys():
        os.removexattr(target, name, **nofollow)  # type: ignore[arg-type]
    for name, value in wanted.items():
        if current.get(name) != value:
            os.setxattr(target, name, value, **nofollow)  # type: ignore[arg-type]
