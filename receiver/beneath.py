"""Resolving wire paths beneath the receiver's root without following symlinks.

The migrated tree holds absolute symlinks (`etc/localtime`) and directory
symlinks (`lib -> usr/lib`); a path sent later could try to write through one
of them. Every directory on the way is therefore opened with O_NOFOLLOW
relative to its parent's descriptor, so a symlink anywhere in a path makes the
open fail instead of leaving the root.
"""

from __future__ import annotations

import errno
import os
import threading
from collections import OrderedDict

from common.relpath import InvalidPath, split_relpath

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class NotADirectoryOnPath(OSError):
    """A component on the way is not a real directory (a symlink, a file, missing)."""


class RootDir:
    """The receiver's root, and the generation of its directory layout.

    Anything that removes or replaces a directory bumps the generation, which
    empties every DirCache: a cached descriptor never outlives the directory
    it was opened for at that path.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self.fd = os.open(self.path, _DIR_FLAGS)
        self._generation = 0
        self._lock = threading.Lock()

    @property
    def generation(self) -> int:
        return self._generation

    def layout_changed(self) -> None:
        with self._lock:
            self._generation += 1

    def close(self) -> None:
        os.close(self.fd)


class DirCache:
    """Descriptors of recently used directories beneath a RootDir.

    One per thread: descriptors are lent to the caller until its next call.
    """

    def __init__(self, root: RootDir, capacity: int = 64) -> None:
        self._root = root
        self._capacity = capacity
        self._fds: OrderedDict[tuple[bytes, ...], int] = OrderedDict()
        self._generation = root.generation

    def parent_of(self, path: bytes) -> tuple[int, bytes]:
        """(descriptor of the parent directory, final name) of a non-root path.

        Raises InvalidPath for a path the wire contract forbids, and
        NotADirectoryOnPath when a component on the way is not a directory.
        """
        parts = split_relpath(path)
        if not parts:
            raise InvalidPath("the root has no parent")
        return self.directory(tuple(parts[:-1])), parts[-1]

    def directory(self, parts: tuple[bytes, ...]) -> int:
        """The descriptor of the directory at `parts` (already validated)."""
        if self._generation != self._root.generation:
            self.clear()
            self._generation = self._root.generation
        # Start from the deepest directory on the way that is already open, and
        # open the rest downward: a loop, since paths may be thousands deep.
        depth = len(parts)
        while depth and parts[:depth] not in self._fds:
            depth -= 1
        fd = self._root.fd
        if depth:
            fd = self._fds[parts[:depth]]
            self._fds.move_to_end(parts[:depth])
        while depth < len(parts):
            depth += 1
            fd = self._open_child(fd, parts[:depth])
        return fd

    def _open_child(self, parent: int, parts: tuple[bytes, ...]) -> int:
        try:
            fd = os.open(parts[-1], _DIR_FLAGS, dir_fd=parent)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR, errno.ENOENT):
                shown = b"/".join(parts).decode("utf-8", "backslashreplace")
                raise NotADirectoryOnPath(exc.errno, f"not a directory: /{shown}") from exc
            raise
        self._fds[parts] = fd
        if len(self._fds) > self._capacity:
            # The oldest is never `fd`'s parent, which was used a moment ago.
            _, oldest = self._fds.popitem(last=False)
            os.close(oldest)
        return fd

    def clear(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def proc_path(dir_fd: int, name: bytes) -> bytes:
    """A path that reaches `name` inside `dir_fd`, for calls that lack dir_fd.

    os.setxattr and friends take no dir_fd; through /proc/self/fd the lookup
    still starts at the directory we resolved safely, and with
    follow_symlinks=False the final component is not followed either.
    """
    return b"/proc/self/fd/%d/%s" % (dir_fd, name)
