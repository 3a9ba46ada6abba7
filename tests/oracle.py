"""rsync as the test oracle: of a faithful copy, and of what exclude rules select.

Two things rsync does that shape this module (rsync 3.2+):
- It compares mtimes in whole seconds unless `--modify-window=-1`, so without that flag a copy
  that lost the nanoseconds looks faithful.
- It prints names with every byte below 0x20 (except tab), every non-printable byte in the
  current locale, and a backslash that starts a `\\#ddd` lookalike as `\\#ooo` (octal), even
  with `-8` for control bytes. Running under LC_ALL=C and undoing exactly that escape gives
  the name's bytes back, newlines included.

It never looks at allocation: a copy that filled a sparse file's holes with zeros is identical
to rsync, so `sparse_differences` checks that separately.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

# -a -H -A -X -S: everything, hardlinks, ACLs, xattrs, sparse; numeric owners because the
# owners of a migrated system have no entries in the test machine's passwd.
FIDELITY_ARGS = ("-aHAXS", "--numeric-ids", "--modify-window=-1")
_ESCAPE = re.compile(rb"\\#([0-7]{3})")


class RsyncError(RuntimeError):
    """rsync itself failed; the message carries its command line, exit code and stderr."""


def copy_differences(src: Path, dst: Path, exclude_from: Path | None = None) -> list[str]:
    """Everything the oracle finds wrong with `dst` as a copy of `src`: rsync's itemized
    changes, then sparse files whose holes were filled. An empty list means faithful."""
    return rsync_differences(src, dst, exclude_from) + sparse_differences(src, dst)


def rsync_differences(
    src: Path,
    dst: Path,
    exclude_from: Path | None = None,
    extra_args: Sequence[str] = (),
) -> list[str]:
    """What rsync would change to make `dst` a copy of `src`; an empty list means faithful.

    Each line is rsync's `--itemize-changes` output (`YXcstpoguax name`, `*deleting   name`),
    with names unescaped and decoded with `os.fsdecode`.
    """
    out = _run_rsync(
        *FIDELITY_ARGS,
        "--checksum",
        "--dry-run",
        "--itemize-changes",
        "--delete",
        *_exclude_args(exclude_from),
        *extra_args,
        f"{src}/",
        f"{dst}/",
    )
    return [os.fsdecode(unescape(line)) for line in out.split(b"\n") if line]


def rsync_file_list(src: Path, exclude_from: Path | None = None) -> set[bytes]:
    """The paths under `src` that rsync would transfer with these exclude rules.

    Paths are relative to `src`, exact bytes, without the trailing `/` rsync puts on
    directories; the transfer root itself is left out.
    """
    with tempfile.TemporaryDirectory(prefix="rsync-empty-") as empty:
        out = _run_rsync("-an", "--out-format=%n", *_exclude_args(exclude_from), f"{src}/", empty)
    names = {unescape(line).rstrip(b"/") for line in out.split(b"\n") if line}
    names.discard(b".")
    return names


def sparse_differences(src: Path, dst: Path, max_growth: float = 2.0) -> list[str]:
    """Sparse regular files under `src` whose copy under `dst` lost its holes.

    A file counts as sparse when it allocates less than its size. Its copy may allocate up to
    `max_growth` times as many blocks, because filesystems round allocations differently. A
    missing or retyped copy is left to `rsync_differences` to report.
    """
    lost = []
    for path, st in _regular_files(src):
        if st.st_blocks * 512 >= st.st_size:
            continue
        relative = path.relative_to(src)
        try:
            copy = (dst / relative).lstat()
        except FileNotFoundError:
            continue
        if stat.S_ISREG(copy.st_mode) and copy.st_blocks > max_growth * max(st.st_blocks, 1):
            lost.append(
                f"holes lost: {relative}: {st.st_blocks} blocks in the source, "
                f"{copy.st_blocks} in the copy"
            )
    return lost


def write_exclude_file(path: Path, rules: Iterable[str]) -> Path:
    """Write rsync filter rules, one a line, for `--exclude-from`; returns `path`."""
    path.write_text("".join(f"{rule}\n" for rule in rules))
    return path


def unescape(name: bytes) -> bytes:
    """Undo rsync's `\\#ooo` escaping of a printed name."""
    return _ESCAPE.sub(lambda match: bytes([int(match[1], 8)]), name)


def _exclude_args(exclude_from: Path | None) -> list[str]:
    return [] if exclude_from is None else [f"--exclude-from={exclude_from}"]


def _run_rsync(*args: str) -> bytes:
    command = ["rsync", *args]
    # LC_ALL=C: which bytes count as printable (and so are escaped) must not depend on the
    # caller's locale.
    env = {**os.environ, "LC_ALL": "C"}
    done = subprocess.run(command, capture_output=True, env=env, check=False)
    if done.returncode != 0:
        raise RsyncError(
            f"{' '.join(command)} exited {done.returncode}:\n"
            f"{done.stderr.decode(errors='backslashreplace')}"
        )
    return done.stdout


def _regular_files(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files under `root` with their lstat, symlinks neither followed nor listed."""
    for dirpath, _dirnames, filenames in os.walk(root):
        for name in filenames:
            path = Path(dirpath, name)
            st = path.lstat()
            if stat.S_ISREG(st.st_mode):
                yield path, st
