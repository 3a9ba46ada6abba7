"""Walking the source tree: depth first, sorted, excludes applied, streaming.

The walk yields each path before its contents and never enters an excluded
directory, as rsync does. Nothing is collected: a tree of any size costs the
names of one directory per level on the current path.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from common.excludes import ExcludeRules
from common.relpath import ROOT, join_relpath

Warn = Callable[[str], None]


@dataclass(frozen=True)
class WalkOptions:
    rules: ExcludeRules
    # Do not descend into directories on another filesystem (rsync -x); the
    # mount point itself is still migrated.
    one_file_system: bool = False
    # (st_dev, st_ino) of directories never migrated: the sender's own state
    # and logs, when they sit inside the source.
    never: frozenset[tuple[int, int]] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Found:
    relpath: bytes
    abspath: bytes
    st: os.stat_result


def walk(source: bytes, options: WalkOptions, warn: Warn) -> Iterator[Found]:
    """Every entry under `source` (itself first, as the empty relpath)."""
    root_st = os.lstat(source)
    yield Found(ROOT, source, root_st)
    stack = [_children(source, ROOT, warn)]
    while stack:
        found = next(stack[-1], None)
        if found is None:
            stack.pop()
            continue
        is_dir = stat.S_ISDIR(found.st.st_mode)
        if options.rules.is_excluded(found.relpath, is_dir):
            continue
        if is_dir and (found.st.st_dev, found.st.st_ino) in options.never:
            continue
        yield found
        if is_dir and not (options.one_file_system and found.st.st_dev != root_st.st_dev):
            stack.append(_children(found.abspath, found.relpath, warn))


def _children(abspath: bytes, relpath: bytes, warn: Warn) -> Iterator[Found]:
    try:
        names = sorted(os.listdir(abspath))
    except OSError as exc:
        warn(f"cannot list {os.fsdecode(abspath)}: {exc.strerror}")
        return
    for name in names:
        child = os.path.join(abspath, name)
        try:
            st = os.lstat(child)
        except FileNotFoundError:
            continue  # vanished since the listing: nothing to migrate
        except OSError as exc:
            warn(f"cannot stat {os.fsdecode(child)}: {exc.strerror}")
            continue
        yield Found(join_relpath(relpath, name), child, st)
