"""Paths on the wire: bytes, relative, '/'-separated, nothing that could escape.

Both ends use this module: the sender to build paths, the receiver to refuse
any path that is absolute, empty in a component, '.', '..' or holds NUL.
"""

from __future__ import annotations

SEPARATOR = b"/"
ROOT = b""

# Linux's own limits: NAME_MAX for one component. A whole path is not limited
# here because the receiver resolves it one component at a time.
NAME_MAX = 255
# A bound on the number of components, so a crafted path cannot make the
# receiver open directories without end.
MAX_DEPTH = 4096


class InvalidPath(ValueError):
    """A wire path that the receiver must refuse."""


def split_relpath(path: bytes) -> list[bytes]:
    """The components of a wire path; [] for the root. Raises InvalidPath."""
    if path == ROOT:
        return []
    if b"\0" in path:
        raise InvalidPath(f"path contains NUL: {path!r}")
    if path.startswith(SEPARATOR):
        raise InvalidPath(f"absolute path: {path!r}")
    parts = path.split(SEPARATOR)
    if len(parts) > MAX_DEPTH:
        raise InvalidPath(f"path deeper than {MAX_DEPTH} components: {path[:80]!r}...")
    for part in parts:
        if part in (b"", b".", b".."):
            raise InvalidPath(f"path has an empty, '.' or '..' component: {path!r}")
        if len(part) > NAME_MAX:
            raise InvalidPath(f"path component longer than {NAME_MAX} bytes: {path[:80]!r}...")
    return parts


def join_relpath(parent: bytes, name: bytes) -> bytes:
    """The wire path of `name` inside the directory at wire path `parent`."""
    return name if parent == ROOT else parent + SEPARATOR + name


def display(path: bytes) -> str:
    """A path for messages: undecodable bytes escaped, never an exception."""
    return "/" + path.decode("utf-8", "backslashreplace").replace("\n", "\\n")
