"""Memory stays flat whatever the file size or the number of files.

Peak RSS (VmHWM) of both processes stays under 300 MB while migrating a
multi-GB file and a tree of 200,000 files. The manifest lives in the
receiver's journal and streams through the sender; nothing holds the tree.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import ReceiverProcess, StartReceiver

REPO = Path(__file__).resolve().parents[2]
LIMIT_BYTES = 300 * 10**6
TREE_FILES = 200_000


def _peak_rss(pid: int) -> int | None:
    """VmHWM in bytes; None once the process has exited (a zombie has no memory)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return None


class PeakWatcher:
    """Samples a process's VmHWM until it exits (it is gone from /proc after wait())."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            try:
                peak = _peak_rss(self.pid)
            except (FileNotFoundError, ProcessLookupError):
                return
            if peak is None:
                return
            self.peak = max(self.peak, peak)

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        return self.peak


def _migrate(src: Path, target: ReceiverProcess, workdir: Path) -> tuple[int, int]:
    """(sender peak, receiver peak) in bytes for one run."""
    command = [sys.executable, "-m", "sender", "run", str(src), "--to", target.address]
    command += ["--insecure", "--no-default-excludes", "--ignore-check", "--log-level", "1"]
    env = {**os.environ, "CVM_MIGRATE_TOKEN": target.token, "PYTHONPATH": str(REPO)}
    sender = subprocess.Popen(command, cwd=workdir, env=env, stdout=subprocess.DEVNULL)
    watchers = PeakWatcher(sender.pid), PeakWatcher(target.proc.pid)
    assert sender.wait(timeout=900) == 0
    receiver_peak = _peak_rss(target.proc.pid)
    assert receiver_peak is not None, "the receiver exited during the run"
    return watchers[0].stop(), max(watchers[1].stop(), receiver_peak)


@pytest.fixture
def big_file(tmp_path: Path) -> Iterator[Path]:
    src = tmp_path / "src"
    src.mkdir()
    with open(src / "disk.img", "wb") as image:
        block = os.urandom(64 << 20)
        for _ in range(48):  # 3 GiB of data, no holes
            image.write(block)
    yield src


def test_a_multi_gigabyte_file_keeps_both_sides_small(
    tmp_path: Path, big_file: Path, receiver: StartReceiver
) -> None:
    dst = tmp_path / "dst"
    dst.mkdir()
    target = receiver(dst, tmp_path / "state")
    sender_peak, receiver_peak = _migrate(big_file, target, tmp_path)
    print(f"3 GiB file: sender {sender_peak >> 20} MiB, receiver {receiver_peak >> 20} MiB")
    assert (dst / "disk.img").stat().st_size == 3 << 30
    assert sender_peak < LIMIT_BYTES
    assert receiver_peak < LIMIT_BYTES


def test_two_hundred_thousand_files_keep_both_sides_small(
    tmp_path: Path, receiver: StartReceiver
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    for index in range(TREE_FILES):
        directory = src / f"d{index // 1000:03d}"
        if index % 1000 == 0:
            directory.mkdir(parents=True)
        (directory / f"f{index}").write_bytes(b"x" * (index % 64))
    target = receiver(dst, tmp_path / "state")
    sender_peak, receiver_peak = _migrate(src, target, tmp_path)
    print(f"{TREE_FILES} files: sender {sender_peak >> 20} MiB, receiver {receiver_peak >> 20} MiB")
    assert sum(1 for _ in (dst / "d199").iterdir()) == 1000
    assert sender_peak < LIMIT_BYTES
    assert receiver_peak < LIMIT_BYTES
