"""End to end: second and later passes over a tree the receiver already holds.

A pass after the first sends only what changed: nothing for an unchanged tree, no content
for a metadata-only change, the changed blocks of a big file, and with --delete removes what
the source no longer has. Every run is judged by rsync (tests/oracle.py) and must leave no
temporary file under the target.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.progress_probe import (
    KIB,
    MIB,
    StatusProbe,
    start_sender,
    temp_files,
    write_random_file,
)
from tests.oracle import copy_differences, rsync_differences, write_exclude_file

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import ReceiverProcess, RunSender, SenderResult, StartReceiver

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="foreign owners and a receiver that keeps owners need root"
)

FOREIGN_UID = 4242
FOREIGN_GID = 4343
BASE_MTIME_NS = 1_700_000_000 * 10**9 + 123_456_789


@dataclass(frozen=True)
class Target:
    root: Path
    receiver: ReceiverProcess


@pytest.fixture
def target(tmp_path: Path, receiver: StartReceiver) -> Target:
    root = tmp_path / "dst"
    root.mkdir()
    return Target(root, receiver(root, tmp_path / "state"))


@dataclass
class Migrate:
    """Runs the sender into the target and checks what every completed run must leave."""

    target: Target
    run_sender: RunSender

    def __call__(self, src: Path, *args: str) -> dict[str, Any]:
        result: SenderResult = self.run_sender(src, self.target.receiver, *args)
        assert result.summary is not None
        assert temp_files(self.target.root) == [], "temporary files left after a completed run"
        print("run:", result.summary)
        return result.summary


@pytest.fixture
def migrate(target: Target, run_sender: RunSender) -> Migrate:
    return Migrate(target, run_sender)


def _write(path: Path, data: bytes, mtime_ns: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path


def _text(size: int, seed: int = 0) -> bytes:
    line = f"line {seed}: the quick brown fox jumps over the lazy dog\n".encode()
    return (line * (size // len(line) + 1))[:size]


def _changed_names(src: Path, dst: Path, exclude_from: Path | None = None) -> set[str]:
    """The names rsync's itemized changes mention (its `YXcstpoguax name` lines)."""
    return {line.split(" ", 1)[1] for line in rsync_differences(src, dst, exclude_from)}


# -- (a) an unchanged tree ---------------------------------------------------------------

MANY_FILES = 3000


def _many_files(root: Path) -> None:
    """Small text files (10 B to 6 KB), as in /etc: hundreds of them share one frame."""
    for i in range(MANY_FILES):
        _write(root / f"dir{i // 100:02d}" / f"file{i:04d}.txt", _text(i % 7 * 1000 + 10, i))


def test_unchanged_tree_sends_nothing_the_second_time(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    _many_files(src)

    started = time.monotonic()
    first = migrate(src)
    first_s = time.monotonic() - started
    started = time.monotonic()
    second = migrate(src)
    second_s = time.monotonic() - started

    assert copy_differences(src, target.root) == []
    assert first["files_transferred"] == MANY_FILES
    assert second["files_total"] == MANY_FILES
    assert second["files_transferred"] == 0
    assert second["files_skipped"] == MANY_FILES
    assert second["bytes_sent_raw"] == 0
    print(
        f"{MANY_FILES} files: first pass {first_s:.2f} s, unchanged second pass "
        f"{second_s:.2f} s, ratio second/first {second_s / first_s:.2f}"
    )


# -- (b) metadata-only changes ------------------------------------------------------------


def _chmod(path: Path) -> None:
    os.chmod(path, 0o600)


def _chown(path: Path) -> None:
    os.chown(path, FOREIGN_UID, FOREIGN_GID)


def _setxattr(path: Path) -> None:
    os.setxattr(path, "user.x", b"added later")


def _touch_mtime(path: Path) -> None:
    new = BASE_MTIME_NS + 86_400 * 10**9 + 1  # touch -d "a day later"
    os.utime(path, ns=(new, new))


def _chmod_dir(path: Path) -> None:
    os.chmod(path, 0o711)


# name -> (path relative to the source, change); the directory's contents are untouched.
METADATA_CHANGES: dict[str, tuple[str, Callable[[Path], None]]] = {
    "chmod": ("meta/chmod.bin", _chmod),
    "chown": ("meta/chown.bin", _chown),
    "xattr": ("meta/xattr.bin", _setxattr),
    "mtime": ("meta/mtime.bin", _touch_mtime),
    "dir-mode": ("meta/sub", _chmod_dir),
}


def test_metadata_only_changes_are_applied_without_content(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    for relative, _ in METADATA_CHANGES.values():
        if relative.endswith(".bin"):
            _write(src / relative, os.urandom(3 * MIB + 17), BASE_MTIME_NS)
    _write(src / "meta" / "sub" / "inside.txt", b"inside\n", BASE_MTIME_NS)
    _write(src / "untouched.txt", b"untouched\n", BASE_MTIME_NS)
    for directory in (src / "meta" / "sub", src / "meta", src):
        os.utime(directory, ns=(BASE_MTIME_NS, BASE_MTIME_NS))
    migrate(src)
    assert copy_differences(src, target.root) == []

    for relative, change in METADATA_CHANGES.values():
        change(src / relative)
    # The oracle sees each change (a directory is printed with its trailing /).
    expected = {r + "/" if not r.endswith(".bin") else r for r, _ in METADATA_CHANGES.values()}
    assert _changed_names(src, target.root) == expected

    second = migrate(src)

    assert copy_differences(src, target.root) == []
    assert second["bytes_sent_raw"] == 0
    assert second["files_transferred"] == 0
    assert second["files_skipped"] == second["files_total"]


# -- (c) a small rewrite inside a big file goes by block delta ---------------------------

DELTA_FILE_SIZE = 512 * MIB
REWRITE_OFFSET = 256 * MIB + 12_345  # unaligned: the rewrite spans 65 blocks of 64 KiB
REWRITE_SIZE = 4 * MIB


def _half_text_half_random(path: Path, size: int) -> None:
    """Text for the first half (compresses), random bytes for the second (does not)."""
    chunk = 8 * MIB
    text = _text(chunk)
    with path.open("wb") as out:
        for offset in range(0, size, chunk):
            out.write(text if offset < size // 2 else os.urandom(chunk))


def test_rewrite_inside_a_big_file_sends_only_the_changed_blocks(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    big = src / "disk.img"
    _half_text_half_random(big, DELTA_FILE_SIZE)
    _write(src / "small.txt", b"small\n")
    migrate(src)

    with big.open("r+b") as f:
        f.seek(REWRITE_OFFSET)
        f.write(os.urandom(REWRITE_SIZE))

    second = migrate(src)

    assert copy_differences(src, target.root) == []
    assert second["files_transferred"] == 1
    assert REWRITE_SIZE <= second["bytes_sent_raw"] <= REWRITE_SIZE + MIB // 2


# -- (d) files that grew and shrank ------------------------------------------------------

GROW_SHRINK_SIZE = 8 * MIB + 4_321
APPENDED = MIB
SHRUNK_TO = 5 * MIB + 1_000
BLOCK = 64 * KIB


def test_grown_and_shrunk_files_send_little(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    grown = write_random_file(src / "grown.bin", GROW_SHRINK_SIZE)
    shrunk = write_random_file(src / "shrunk.bin", GROW_SHRINK_SIZE)
    migrate(src)

    with grown.open("ab") as f:
        f.write(os.urandom(APPENDED))
    os.truncate(shrunk, SHRUNK_TO)

    second = migrate(src)

    assert copy_differences(src, target.root) == []
    assert second["files_transferred"] == 2
    # The appended MiB, plus at most the old last (partial) block of each file.
    assert APPENDED <= second["bytes_sent_raw"] <= APPENDED + 2 * BLOCK


# -- (e) --delete -------------------------------------------------------------------------

KEEP_RULE = "*.keep"
DELETE_ARGS = ("--delete", "--exclude", KEEP_RULE)

INITIAL_FILES = [
    "stays/a.txt",
    "stays/sub/b.txt",
    "gone.txt",
    "gone_dir/x.txt",
    "gone_dir/a/b/c/deep.txt",
    "file_to_dir",
    "dir_to_file/inner.txt",
    "dir_to_file/sub/deeper.txt",
]
# What the source loses, and what --delete must remove for it on the target (rsync counts
# a removed directory tree entry by entry).
REMOVED = ["gone.txt", "gone_dir", "gone_link"]
REMOVED_ENTRIES = 1 + 6 + 1  # gone.txt; gone_dir, x.txt, a, b, c, deep.txt; gone_link
# On the target only, matched by the exclude rule: --delete must leave them.
PROTECTED = ["top.keep", "stays/sub/inner.keep"]


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            _remove(child)
        path.rmdir()
    else:
        path.unlink()


def test_delete_removes_what_the_source_lost_and_protects_excluded_paths(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    for name in INITIAL_FILES:
        _write(src / name, f"{name}\n".encode())
    (src / "gone_link").symlink_to("stays/a.txt")
    excludes = write_exclude_file(tmp_path / "excludes", [KEEP_RULE])
    migrate(src, *DELETE_ARGS)
    assert copy_differences(src, target.root, excludes) == []
    for name in PROTECTED:
        _write(target.root / name, b"target's own\n")

    # 1. Removals only: the count is rsync's.
    for name in REMOVED:
        _remove(src / name)
    would_delete = [
        line for line in rsync_differences(src, target.root, excludes) if "deleting" in line
    ]
    assert len(would_delete) == REMOVED_ENTRIES, would_delete

    removed = migrate(src, *DELETE_ARGS)

    assert copy_differences(src, target.root, excludes) == []
    assert removed["deleted"] == REMOVED_ENTRIES
    for name in REMOVED:
        assert not os.path.lexists(target.root / name), name
    for name in PROTECTED:
        assert (target.root / name).read_bytes() == b"target's own\n", name

    # 2. Type changes: a file became a directory, a directory tree became a file.
    (src / "file_to_dir").unlink()
    _write(src / "file_to_dir" / "now_inside.txt", b"inside\n")
    _remove(src / "dir_to_file")
    _write(src / "dir_to_file", b"a file now\n")

    migrate(src, *DELETE_ARGS)

    assert copy_differences(src, target.root, excludes) == []
    assert (target.root / "file_to_dir").is_dir()
    assert (target.root / "dir_to_file").is_file()
    for name in PROTECTED:
        assert (target.root / name).read_bytes() == b"target's own\n", name


def test_without_delete_extra_target_paths_stay(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    _write(src / "a.txt", b"a\n")
    _write(src / "gone.txt", b"gone\n")
    migrate(src)
    (src / "gone.txt").unlink()

    summary = migrate(src)

    assert summary["deleted"] == 0
    assert (target.root / "gone.txt").exists()


# -- (f) --checksum ------------------------------------------------------------------------


def test_checksum_catches_same_size_same_mtime_content_change(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    sneaky = write_random_file(src / "sneaky.bin", MIB + 7)
    for i in range(20):
        _write(src / "others" / f"{i}.txt", _text(1000, i))
    migrate(src)
    st = sneaky.stat()
    with sneaky.open("r+b") as f:  # in place: the directory's mtime stays too
        f.seek(1000)
        f.write(os.urandom(100))
    os.utime(sneaky, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert (sneaky.stat().st_size, sneaky.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)

    quick = migrate(src)

    assert quick["files_transferred"] == 0
    # rsync's oracle compares content (--checksum): it sees what the quick check missed.
    assert _changed_names(src, target.root) == {"sneaky.bin"}

    thorough = migrate(src, "--checksum")

    assert copy_differences(src, target.root) == []
    assert thorough["files_transferred"] == 1
    assert thorough["files_skipped"] == thorough["files_total"] - 1


# -- (g) files that change or vanish during the run -----------------------------------------

LIVE_FILE = "growing.log"
LIVE_INITIAL_SIZE = 64 * MIB  # reading it takes far longer than the 5 ms between appends
APPEND_EVERY_S = 0.005


@dataclass
class Appender:
    """Appends 1 KiB to a file every 5 ms until stopped (a log being written)."""

    path: Path
    appends: int = 0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="appender", daemon=True)

    def _run(self) -> None:
        with self.path.open("ab", buffering=0) as f:
            while not self._stop.wait(APPEND_EVERY_S):
                f.write(b"x" * 1023 + b"\n")
                self.appends += 1

    def __enter__(self) -> Appender:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def test_file_changing_throughout_the_run_is_a_warning_not_a_failure(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    src = tmp_path / "src"
    write_random_file(src / LIVE_FILE, LIVE_INITIAL_SIZE)
    for i in range(50):
        _write(src / "steady" / f"{i:02d}.txt", _text(5000, i))

    with Appender(src / LIVE_FILE) as appender:
        summary = migrate(src)
    assert appender.appends > 0

    assert summary["exit_code"] == 0
    assert summary["files_failed"] == 0
    assert any(LIVE_FILE in warning for warning in summary["warnings"]), summary["warnings"]
    excludes = write_exclude_file(tmp_path / "excludes", [f"/{LIVE_FILE}"])
    assert copy_differences(src, target.root, excludes) == []


VANISH_BIG_SIZE = 256 * MIB
VANISH_FILES = 2000
# Big enough that a frame carries well under 256 of them (see test_unchanged_tree_...: the
# receiver refuses a frame with pieces of more than 256 files); this test is about vanishing.
VANISH_FILE_SIZE = 8 * KIB
VANISHING = [f"files/{i:04d}" for i in range(VANISH_FILES - 3, VANISH_FILES)]
# Entries the walk yields: the root, a-big.bin, files/ and the small files.
VANISH_ENTRIES = 3 + VANISH_FILES
SENDER_WINDOW = 64 * MIB
CHUNK = MIB


def _vanish_tree(root: Path) -> None:
    """A big file first in walk order, then many small files; the last few will vanish."""
    write_random_file(root / "a-big.bin", VANISH_BIG_SIZE)
    for i in range(VANISH_FILES):
        _write(root / "files" / f"{i:04d}", _text(VANISH_FILE_SIZE, i))


def test_file_deleted_between_plan_and_read_is_a_warning(
    tmp_path: Path, target: Target, migrate: Migrate
) -> None:
    """Deterministic: one raw stream, busy with the big file while the small files are
    planned. The last small files are deleted once every entry is planned, and the
    receiver's durable bytes then prove the sender had not reached them yet."""
    src = tmp_path / "src"
    _vanish_tree(src)
    rx = target.receiver
    args = ("--compress-level", "0", "--streams", "1")

    with start_sender(src, rx, tmp_path / "sender", *args) as sender, StatusProbe(rx) as probe:
        probe.wait_until(
            lambda s: s.entries_planned >= VANISH_ENTRIES, "every entry planned", sender=sender
        )
        walked = (src / "files").stat()
        for name in VANISHING:
            (src / name).unlink()
        # The directory keeps the mtime the sender walked, so the oracle judges the files.
        os.utime(src / "files", ns=(walked.st_atime_ns, walked.st_mtime_ns))
        after = probe.wait_until(lambda _: True, "a status")
        # The sender keeps at most a window (plus a frame) past what is durable: while it
        # is short of the big file's end, it has not opened any small file.
        assert after.bytes_durable + SENDER_WINDOW + CHUNK < VANISH_BIG_SIZE, (
            "the sender may have read the files before they were deleted: test timing lost"
        )
        code = sender.wait()
    summary = sender.summary()
    assert summary is not None
    print("run:", summary)

    assert code == 0, sender.describe()
    assert summary["exit_code"] == 0
    assert summary["files_failed"] == 0
    for name in VANISHING:
        assert any(name in warning for warning in summary["warnings"]), (
            name,
            summary["warnings"],
        )
    assert temp_files(target.root) == []
    assert copy_differences(src, target.root) == []
