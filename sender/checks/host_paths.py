"""Paths of the host system as the host itself sees them, from wherever it is mounted.

In the sender's container the host's / is at /host, and its symlinks are the
host's: /lib -> usr/lib on merged-/usr systems, sometimes absolute ones under
/boot. Resolving them against the container's / would look at the wrong files,
so they are resolved here the way chroot would, never leaving the host root.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

# The kernel gives up after 40 symlinks in one lookup (MAXSYMLINKS).
_MAX_LINKS = 40


def _components(path: str) -> list[str]:
    return [part for part in path.split("/") if part not in ("", ".")]


def host_path(host_root: Path, path: str) -> Path:
    """`path` (e.g. "/lib/modules/6.1.0") resolved inside `host_root`.

    Missing components are kept as they are, so the result may not exist.
    """
    pending = _components(path)
    resolved: list[str] = []
    links = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            if resolved:
                resolved.pop()
            continue
        try:
            target = os.readlink(host_root.joinpath(*resolved, part))
        except OSError:  # not a symlink, or not there
            resolved.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise OSError(errno.ELOOP, "too many levels of symbolic links", path)
        if target.startswith("/"):
            resolved = []
        pending = _components(target) + pending
    return host_root.joinpath(*resolved)
