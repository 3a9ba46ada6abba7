"""Paths the receiver holds that the source's manifest does not name.

Used by --delete, which removes them, and by verify, which reports them.
Excluded paths are protected, as rsync protects them: never entered, never
removed. Directories are opened through the DirCache, so the walk never
follows a symlink out of the root.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable, Iterator

from common.excludes import ExcludeRules
from receiver.beneath import DirCache

Named = Callable[[bytes], bool]


def _children(dirs: DirCache, parts: tuple[bytes, ...]) -> list[tuple[bytes, bool]]:
    """(name, is_dir) of the entries of a directory, in name order."""
    fd = dirs.directory(parts)
    found = []
    for name in sorted(os.fsencode(n) for n in os.listdir(fd)):
        try:
            st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            continue
        found.append((name, stat.S_ISDIR(st.st_mode)))
    return found


def extraneous(
    dirs: DirCache, is_named: Named, rules: ExcludeRules
) -> Iterator[tuple[bytes, bool]]:
    """(path, is_dir) of each top-most path that is neither named nor excluded.

    Named directories are entered; an extraneous directory is yielded whole.
    """
    pending: list[tuple[bytes, ...]] = [()]
    while pending:
        parts = pending.pop()
        for name, is_dir in _children(dirs, parts):
            path = b"/".join((*parts, name))
            if rules.is_excluded(path, is_dir):
                continue
            if not is_named(path):
                yield path, is_dir
            elif is_dir:
                pending.append((*parts, name))


def remove_unprotected(dirs: DirCache, path: bytes, is_dir: bool, rules: ExcludeRules) -> int:
    """Remove `path` and what lies below it except excluded paths; the count removed.

    A directory that still holds a protected path stays, as rsync leaves it.
    """
    parts = tuple(path.split(b"/"))
    removed = 0
    if is_dir:
        for name, child_is_dir in _children(dirs, parts):
            child = path + b"/" + name
            if not rules.is_excluded(child, child_is_dir):
                removed += remove_unprotected(dirs, child, child_is_dir, rules)
    parent = dirs.directory(parts[:-1])
    try:
        if is_dir:
            os.rmdir(parts[-1], dir_fd=parent)
        else:
            os.unlink(parts[-1], dir_fd=parent)
    except OSError as exc:
        if exc.errno != errno.ENOTEMPTY:
            raise
        return removed
    return removed + 1
