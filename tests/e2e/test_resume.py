"""End to end: kill -9 the sender or the receiver at a known point, run again, and the copy
is exact, with what was durable before the kill not sent again.

The kill points come from the receiver's Status RPC (tests/e2e/progress_probe.py), never
from sleeps: a test waits until, say, 100 MiB are durable, then kills. Sizes are just large
enough that the run cannot end before the kill point (the receiver syncs every 32 MiB or
0.5 s; the sender keeps at most 64 MiB unacknowledged per stream).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from common.pb.migrate.v1 import receiver_pb2 as pb
from tests.e2e.progress_probe import (
    KIB,
    MIB,
    SenderProcess,
    StatusProbe,
    durable_offsets,
    session_finished,
    start_sender,
    temp_files,
    write_random_file,
)
from tests.oracle import copy_differences

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import ReceiverProcess, RunSender, SenderResult, StartReceiver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the receiver keeps owners as root")

# Raw frames on one stream: durable bytes are then exactly this file's bytes.
ONE_RAW_STREAM = ("--compress-level", "0", "--streams", "1")
# The sender's exit codes when the receiver is gone: connection failed, transfer failed.
RECEIVER_GONE_CODES = (5, 8)
# The sender would otherwise keep trying to reach the killed receiver for minutes; these
# tests want it to give up at once and be run again by hand, on a new receiver.
NO_RETRY = ("--retry-for", "0")

BIG_SIZE = 600 * MIB
BIG_KILL_AT = 100 * MIB


@dataclass(frozen=True)
class Target:
    root: Path
    state: Path


@pytest.fixture
def target(tmp_path: Path) -> Target:
    root = tmp_path / "dst"
    root.mkdir()
    return Target(root, tmp_path / "state")


@pytest.fixture(scope="module")
def big_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A tree of one 600 MiB incompressible file; shared, never modified."""
    root = tmp_path_factory.mktemp("big-src")
    write_random_file(root / "big.bin", BIG_SIZE)
    yield root
    shutil.rmtree(root)  # shared sources are big and tell nothing about a failure


def _summary(result: SenderResult) -> dict[str, Any]:
    assert result.summary is not None
    print("rerun:", {k: v for k, v in result.summary.items() if k != "warnings"})
    return result.summary


def _show(label: str, status: pb.StatusResponse) -> None:
    """For -s runs and failure reports: where the kill actually landed."""
    print(
        f"{label}: planned={status.entries_planned} to_send={status.files_to_send} "
        f"committed={status.files_committed} durable={status.bytes_durable}"
    )


def _assert_no_temp_files(root: Path) -> None:
    assert temp_files(root) == [], "temporary files left after a completed run"


def _kill_sender_when(
    src: Path,
    rx: ReceiverProcess,
    workdir: Path,
    condition: Callable[[pb.StatusResponse], bool],
    what: str,
    *args: str,
) -> pb.StatusResponse:
    """Run the sender until the receiver's Status meets `condition`, then kill -9 it."""
    with start_sender(src, rx, workdir, *args) as sender, StatusProbe(rx) as probe:
        seen = probe.wait_until(condition, what, sender=sender)
        sender.kill()
    _show("sender killed at", seen)
    return seen


# -- (a) the sender killed mid-way through a large file ----------------------------------


def test_sender_killed_mid_file_resumes_from_durable_offset(
    big_source: Path, target: Target, tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    rx = receiver(target.root, target.state)
    seen = _kill_sender_when(
        big_source,
        rx,
        tmp_path / "killed-sender",
        lambda s: s.bytes_durable >= BIG_KILL_AT,
        f"{BIG_KILL_AT} bytes durable",
        *ONE_RAW_STREAM,
    )
    durable_seen = seen.bytes_durable
    assert durable_seen < BIG_SIZE, "the run completed before the kill point"

    # What the kill left: the partial file beside its live name, durable at least as far
    # as Status said, and nothing at the live name yet.
    assert not (target.root / "big.bin").exists()
    [partial] = temp_files(target.root)
    assert partial.parent == target.root
    assert partial.stat().st_size >= durable_seen
    assert durable_offsets(target.state)[b"big.bin"] >= durable_seen

    summary = _summary(run_sender(big_source, rx, *ONE_RAW_STREAM))

    assert copy_differences(big_source, target.root) == []
    _assert_no_temp_files(target.root)
    assert summary["files_transferred"] == 1
    assert summary["files_resumed"] == 1
    assert summary["bytes_resumed"] >= durable_seen
    assert summary["bytes_sent_raw"] <= BIG_SIZE - durable_seen
    # Random data has no holes: every byte is either resumed or sent, once.
    assert summary["bytes_resumed"] + summary["bytes_sent_raw"] == BIG_SIZE


# -- (b) the receiver killed mid-file -----------------------------------------------------


def _kill_receiver_when(
    src: Path,
    rx: ReceiverProcess,
    workdir: Path,
    condition: Callable[[pb.StatusResponse], bool],
    what: str,
    *args: str,
    freeze_sender: bool = False,
) -> tuple[pb.StatusResponse, SenderProcess]:
    """Run the sender until Status meets `condition`, then kill -9 the receiver.

    With `freeze_sender`, the sender is stopped (SIGSTOP) first, so nothing it does after
    the condition can reach the receiver; it is resumed once the receiver is dead. Returns
    the Status seen and the sender, exited.
    """
    with start_sender(src, rx, workdir, *NO_RETRY, *args) as sender, StatusProbe(rx) as probe:
        seen = probe.wait_until(condition, what, sender=sender)
        if freeze_sender:
            sender.freeze()
            # The last word before the kill: anything durable by now counts as seen.
            seen = probe.wait_until(lambda _: True, "a status")
        rx.kill()
        _show("receiver killed at", seen)
        if freeze_sender:
            sender.thaw()
        code = sender.wait()
    assert code in RECEIVER_GONE_CODES, f"sender exited {code}\n{sender.describe()}"
    sender_summary = sender.summary()
    assert sender_summary is not None and sender_summary["exit_code"] == code
    return seen, sender


def test_receiver_killed_mid_file_resumes_on_a_new_receiver(
    big_source: Path, target: Target, tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    first = receiver(target.root, target.state)
    seen, _ = _kill_receiver_when(
        big_source,
        first,
        tmp_path / "sender-1",
        lambda s: s.bytes_durable >= BIG_KILL_AT,
        f"{BIG_KILL_AT} bytes durable",
        *ONE_RAW_STREAM,
    )
    durable_seen = seen.bytes_durable
    assert durable_seen < BIG_SIZE, "the run completed before the kill point"
    assert durable_offsets(target.state)[b"big.bin"] >= durable_seen

    second = receiver(target.root, target.state)
    summary = _summary(run_sender(big_source, second, *ONE_RAW_STREAM))

    assert copy_differences(big_source, target.root) == []
    _assert_no_temp_files(target.root)
    assert summary["files_resumed"] == 1
    assert summary["bytes_resumed"] >= durable_seen
    assert summary["bytes_sent_raw"] <= BIG_SIZE - durable_seen
    assert summary["bytes_resumed"] + summary["bytes_sent_raw"] == BIG_SIZE


# -- (c) the sender killed among many small files -----------------------------------------

SMALL_FILES = 3000
SMALL_FILE_SIZE = 64 * KIB  # 188 MiB in all: several sync groups of committed files
SMALL_KILL_AT = 500


@pytest.fixture(scope="module")
def small_files_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("small-src")
    for i in range(SMALL_FILES):
        directory = root / f"d{i // 100:02d}"
        directory.mkdir(exist_ok=True)
        (directory / f"f{i:04d}").write_bytes(os.urandom(SMALL_FILE_SIZE))
    yield root
    shutil.rmtree(root)


def test_sender_killed_among_small_files_skips_the_committed_ones(
    small_files_source: Path,
    target: Target,
    tmp_path: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
) -> None:
    rx = receiver(target.root, target.state)
    seen = _kill_sender_when(
        small_files_source,
        rx,
        tmp_path / "killed-sender",
        lambda s: s.files_committed >= SMALL_KILL_AT,
        f"{SMALL_KILL_AT} files committed",
    )
    assert seen.files_committed < SMALL_FILES, "the run completed before the kill point"

    summary = _summary(run_sender(small_files_source, rx))

    assert copy_differences(small_files_source, target.root) == []
    _assert_no_temp_files(target.root)
    assert summary["files_total"] == SMALL_FILES
    assert summary["files_skipped"] >= seen.files_committed
    assert summary["files_skipped"] + summary["files_transferred"] == SMALL_FILES
    assert summary["bytes_sent_raw"] <= (SMALL_FILES - seen.files_committed) * SMALL_FILE_SIZE


# -- (d) the source changed between the kill and the rerun --------------------------------

CHANGING_SIZE = 256 * MIB
CHANGING_KILL_AT = 64 * MIB
NEW_MTIME_NS = 1_800_000_000 * 10**9 + 123_456_789


def _rewrite_head_and_set_mtime(path: Path) -> None:
    """Same size, new bytes where the durable prefix lies, and a new mtime."""
    with path.open("r+b") as f:
        f.write(os.urandom(MIB))
    os.utime(path, ns=(NEW_MTIME_NS, NEW_MTIME_NS))


def _touch_mtime(path: Path) -> None:
    os.utime(path, ns=(NEW_MTIME_NS, NEW_MTIME_NS))


def _chmod_ctime_only(path: Path) -> None:
    """Only the ctime moves (mode set to what it is), as after a chmod/chown/setfattr."""
    os.chmod(path, path.stat().st_mode & 0o7777)


SOURCE_CHANGES: dict[str, Callable[[Path], None]] = {
    "content-and-mtime": _rewrite_head_and_set_mtime,
    "mtime-only": _touch_mtime,
    "ctime-only": _chmod_ctime_only,
}


@pytest.mark.parametrize("change", SOURCE_CHANGES)
def test_source_changed_after_the_kill_restarts_from_zero(
    change: str,
    target: Target,
    tmp_path: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
) -> None:
    src = tmp_path / "src"
    big = write_random_file(src / "big.bin", CHANGING_SIZE)
    rx = receiver(target.root, target.state)
    seen = _kill_sender_when(
        src,
        rx,
        tmp_path / "killed-sender",
        lambda s: s.bytes_durable >= CHANGING_KILL_AT,
        f"{CHANGING_KILL_AT} bytes durable",
        *ONE_RAW_STREAM,
    )
    assert seen.bytes_durable < CHANGING_SIZE, "the run completed before the kill point"
    assert durable_offsets(target.state)[b"big.bin"] >= seen.bytes_durable

    before = big.stat()
    SOURCE_CHANGES[change](big)
    after = big.stat()
    assert after.st_size == before.st_size and after.st_ctime_ns != before.st_ctime_ns

    summary = _summary(run_sender(src, rx, *ONE_RAW_STREAM))

    assert copy_differences(src, target.root) == []
    _assert_no_temp_files(target.root)
    assert summary["files_resumed"] == 0
    assert summary["bytes_resumed"] == 0
    assert summary["bytes_sent_raw"] == CHANGING_SIZE


# -- (e) the receiver killed at several points --------------------------------------------

MIXED_BIG_SIZE = 256 * MIB
MIXED_DIRS = 300  # each with one small file: Finish has directory metadata to apply
MIXED_FILES = MIXED_DIRS + 1
MIXED_SMALL_SIZE = 4 * KIB


@pytest.fixture(scope="module")
def mixed_source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One big file (first in walk order) and many directories with a small file each."""
    root = tmp_path_factory.mktemp("mixed-src")
    write_random_file(root / "a-big.bin", MIXED_BIG_SIZE)
    for i in range(MIXED_DIRS):
        directory = root / f"d{i:03d}" / "sub"
        directory.mkdir(parents=True)
        (directory / "small").write_bytes(os.urandom(MIXED_SMALL_SIZE))
        os.chmod(directory, 0o750)
        os.utime(directory, ns=(1_600_000_000 * 10**9 + i, 1_600_000_000 * 10**9 + i))
    yield root
    shutil.rmtree(root)


@dataclass(frozen=True)
class KillPoint:
    condition: Callable[[pb.StatusResponse], bool]
    what: str
    # Stop the sender before killing, so the session is caught exactly at this point.
    freeze_sender: bool = False
    # Expected of the rerun, given the Status seen before the kill.
    expect_resumed: bool = False
    expect_nothing_sent: bool = False


RECEIVER_KILL_POINTS = {
    "early": KillPoint(lambda s: s.entries_planned > 0, "entries planned"),
    "mid-file": KillPoint(
        lambda s: s.bytes_durable >= MIXED_BIG_SIZE // 2,
        "half the big file durable",
        expect_resumed=True,
    ),
    "before-finish": KillPoint(
        lambda s: s.files_to_send == MIXED_FILES and s.files_committed == MIXED_FILES,
        "every file committed",
        freeze_sender=True,
        expect_nothing_sent=True,
    ),
}


@pytest.mark.parametrize("point", RECEIVER_KILL_POINTS)
def test_receiver_killed_then_rerun_is_exact(
    point: str,
    mixed_source: Path,
    target: Target,
    tmp_path: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
) -> None:
    kill = RECEIVER_KILL_POINTS[point]
    first = receiver(target.root, target.state)
    seen, _ = _kill_receiver_when(
        mixed_source,
        first,
        tmp_path / "sender-1",
        kill.condition,
        kill.what,
        freeze_sender=kill.freeze_sender,
    )
    assert not seen.finished
    # The journal confirms the receiver died inside the session, before Finish completed.
    assert not session_finished(target.state, seen.session_id)

    second = receiver(target.root, target.state)
    summary = _summary(run_sender(mixed_source, second))

    assert copy_differences(mixed_source, target.root) == []
    _assert_no_temp_files(target.root)
    total = MIXED_BIG_SIZE + MIXED_DIRS * MIXED_SMALL_SIZE
    assert summary["bytes_total"] == total
    assert summary["bytes_sent_raw"] <= total - seen.bytes_durable
    assert summary["files_skipped"] >= seen.files_committed
    if kill.expect_resumed:
        assert summary["files_resumed"] >= 1
        assert summary["bytes_resumed"] > 0
    if kill.expect_nothing_sent:
        assert summary["files_skipped"] == MIXED_FILES
        assert summary["files_transferred"] == 0
        assert summary["bytes_sent_raw"] == 0
