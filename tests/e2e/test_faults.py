"""End to end: the target fills up, turns read-only, a source file cannot be read, the
receiver is stopped or restarted mid-transfer. Real processes, real filesystems.

Full and read-only targets are small loop-mounted ext4 images or tmpfs mounts
(tests/e2e/faults_support.py), always unmounted in a `finally`. Every run that must fail is
judged by its exit code, its one error line, what it left at live names, and whether the
receiver still serves; every run that must succeed by rsync (tests/oracle.py).
"""

from __future__ import annotations

import os
import secrets
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.faults_support import (
    MIB,
    REPO_ROOT,
    Receiver,
    ReceiverStatus,
    Sender,
    durable_offsets,
    error_lines,
    free_port,
    grow_ext4,
    journal_integrity,
    launch_receiver,
    launch_sender,
    mounted_ext4,
    mounted_tmpfs,
    poll_until,
    remount,
    temp_files,
    write_random_file,
)
from tests.oracle import copy_differences, write_exclude_file
from tests.receiver.wire_client import WireClient

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts and setpriv need root")

OK, TRANSFER_FAILED, ENTRIES_FAILED, TARGET_FULL = 0, 8, 9, 10
CHECKS_FAILED = 14
# The sender's pre-migration checks would stop these runs before any byte is sent (the
# target's free space, a non-root sender): each test shows that once, then skips them to
# reach the fault in the middle of a transfer.
IGNORE_CHECKS = "--ignore-check"
# The receiver's words for ENOSPC/EDQUOT, and the sender's for exit code 10.
NO_SPACE = "no space left on the target (bytes or inodes)"
OUT_OF_SPACE = "out of space"
# Raw frames on one stream: durable bytes are then exactly the big file's bytes.
ONE_RAW_STREAM = ("--compress-level", "0", "--streams", "1")
NOBODY = 65534


@dataclass
class Receivers:
    """Receivers a test started; each must exit 0 on SIGTERM unless the test killed it."""

    base: Path
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    started: list[Receiver] = field(default_factory=list)
    killed: set[int] = field(default_factory=set)

    def start(self, root: Path, state: Path, *, port: int | None = None) -> Receiver:
        logs = Path(tempfile.mkdtemp(prefix="receiver-", dir=self.base))
        receiver = launch_receiver(
            root, state, logs, listen=f"127.0.0.1:{port or free_port()}", token=self.token
        )
        self.started.append(receiver)
        return receiver

    def kill(self, receiver: Receiver) -> None:
        receiver.kill()
        self.killed.add(receiver.proc.pid)

    def stop_all(self) -> list[str]:
        """Stop every receiver still running; what went wrong with any of them."""
        problems = []
        for receiver in self.started:
            if receiver.proc.pid in self.killed:
                continue
            code = receiver.stop()
            if code != 0:
                problems.append(f"receiver {receiver.address} exited {code}\n{receiver.stderr()}")
        return problems


@pytest.fixture
def receivers(tmp_path: Path) -> Iterator[Receivers]:
    started = Receivers(tmp_path / "logs")
    started.base.mkdir()
    yield started
    problems = started.stop_all()
    if problems:
        pytest.fail("\n\n".join(problems))


def run_to_end(
    src: Path, rx: Receiver, workdir: Path, *args: str, timeout_s: float = 300.0
) -> Sender:
    """One sender run against `rx`, waited for."""
    with launch_sender(src, rx.address, rx.token, workdir, *args, trust=rx.trust_args) as sender:
        sender.wait(timeout_s)
    return sender


def assert_serves(rx: Receiver) -> None:
    """The receiver is alive and opens a session for a new client."""
    assert rx.proc.poll() is None, f"receiver exited {rx.proc.returncode}\n{rx.stderr()}"
    client = WireClient(rx.address, rx.token)
    try:
        assert client.hello().session_id
    finally:
        client.close()


def assert_failed_with(sender: Sender, code: int, *words: str) -> str:
    """Exit `code`, one error line holding every word (any case), no traceback; the line."""
    assert sender.proc.returncode == code, sender.describe()
    lines = error_lines(sender.stderr())
    assert len(lines) == 1, f"expected one error line\n{sender.describe()}"
    for word in words:
        assert word.lower() in lines[0].lower(), f"{word!r} not in {lines[0]!r}"
    assert "Traceback" not in sender.stderr(), sender.describe()
    assert sender.summary()["exit_code"] == code
    print(f"exit {code}: {lines[0]}")
    return lines[0]


def assert_checks_refused(sender: Sender, check: str) -> None:
    """Exit 14 before any transfer, the failed check named in its FAIL line and the last."""
    assert sender.proc.returncode == CHECKS_FAILED, sender.describe()
    lines = error_lines(sender.stderr())
    assert lines and "pre-migration checks failed" in lines[-1] and check in lines[-1], (
        sender.describe()
    )
    assert any(f"FAIL  {check}" in line for line in lines), sender.describe()
    assert sender.summary()["bytes_sent_raw"] == 0


def assert_live_files_whole(src: Path, dst: Path, old: dict[str, bytes]) -> None:
    """Every regular file at a live name under `dst` is either its source's whole content
    or, for the names in `old`, exactly what was there before the run."""
    for dirpath, _dirs, files in os.walk(dst):
        for name in files:
            path = Path(dirpath, name)
            if name.startswith(".cvm-migrate.") or not stat.S_ISREG(path.lstat().st_mode):
                continue
            rel = str(path.relative_to(dst))
            content = path.read_bytes()
            if rel in old and content == old[rel]:
                continue
            assert content == (src / rel).read_bytes(), f"{rel} at its live name is not whole"


def _brief(summary: dict[str, object]) -> dict[str, object]:
    return {k: v for k, v in summary.items() if k != "warnings"}


def small_files(top: Path, count: int, size: int, per_dir: int = 50) -> None:
    for i in range(count):
        directory = top / f"d{i // per_dir:02d}"
        directory.mkdir(parents=True, exist_ok=True)
        (directory / f"f{i:04d}").write_bytes(os.urandom(size))


# -- (a) out of bytes -----------------------------------------------------------------------

IMAGE_SIZE = 64 * MIB  # about 51 MiB free once formatted
GROWN_SIZE = 256 * MIB
# Known content at a live name that the failed run must leave alone.
OLD_KEEP = b"the target's own version of keep, which must survive\n" * 20


def test_a_target_out_of_bytes_fails_cleanly_and_resumes_once_grown(
    tmp_path: Path, receivers: Receivers
) -> None:
    src = tmp_path / "src"
    write_random_file(src / "big.bin", 40 * MIB)
    # Larger than all the free space: it can never be committed on the small filesystem.
    write_random_file(src / "keep", 60 * MIB)
    small_files(src / "small", 40, 4096)
    image, mnt, state = tmp_path / "img", tmp_path / "mnt", tmp_path / "state"
    port = free_port()
    with mounted_ext4(image, mnt, IMAGE_SIZE) as dst:
        (dst / "keep").write_bytes(OLD_KEEP)
        try:
            rx = receivers.start(dst, state, port=port)
            checked = run_to_end(src, rx, tmp_path / "run-0")
            assert_checks_refused(checked, "target space")
            assert sorted(os.listdir(dst)) == ["keep"], "the checks let something through"

            full = run_to_end(src, rx, tmp_path / "run-1", IGNORE_CHECKS)
            assert_failed_with(full, TARGET_FULL, OUT_OF_SPACE, NO_SPACE)
            assert_serves(rx)
            assert (dst / "keep").read_bytes() == OLD_KEEP, "a live name was overwritten"
            assert_live_files_whole(src, dst, {"keep": OLD_KEEP})

            # Make room the way an operator would, then run the very same command.
            assert rx.stop() == 0, rx.stderr()
            grow_ext4(image, mnt, GROWN_SIZE)
            rx = receivers.start(dst, state, port=port)
            done = run_to_end(src, rx, tmp_path / "run-2", IGNORE_CHECKS)
            assert done.proc.returncode == OK, done.describe()
            assert copy_differences(src, dst) == []
            assert temp_files(dst) == []
        finally:
            receivers.stop_all()  # before unmounting; the fixture reports a bad exit


# -- (b) out of inodes ----------------------------------------------------------------------


def test_b_target_out_of_inodes_fails_cleanly_and_completes_with_more(
    tmp_path: Path, receivers: Receivers
) -> None:
    src = tmp_path / "src"
    small_files(src, 400, 512)
    with mounted_tmpfs(tmp_path / "mnt", "size=64M,nr_inodes=64") as dst:
        try:
            rx = receivers.start(dst, tmp_path / "state")
            checked = run_to_end(src, rx, tmp_path / "run-0")
            assert_checks_refused(checked, "target space")
            assert "inodes" in error_lines(checked.stderr())[0]
            assert os.listdir(dst) == [], "the checks let something through"

            full = run_to_end(src, rx, tmp_path / "run-1", IGNORE_CHECKS)
            assert_failed_with(full, TARGET_FULL, OUT_OF_SPACE, NO_SPACE)
            assert_serves(rx)
            assert_live_files_whole(src, dst, {})

            remount(dst, "nr_inodes=4096")
            done = run_to_end(src, rx, tmp_path / "run-2", IGNORE_CHECKS)
            assert done.proc.returncode == OK, done.describe()
            assert copy_differences(src, dst) == []
            assert temp_files(dst) == []
        finally:
            receivers.stop_all()  # before unmounting; the fixture reports a bad exit


# -- (c) read-only target -------------------------------------------------------------------


def test_c_read_only_target_is_one_clear_error_and_the_receiver_keeps_serving(
    tmp_path: Path, receivers: Receivers
) -> None:
    src = tmp_path / "src"
    small_files(src, 20, 1024)
    write_random_file(src / "big.bin", 4 * MIB)
    with mounted_ext4(tmp_path / "img", tmp_path / "mnt", IMAGE_SIZE) as dst:
        try:
            rx = receivers.start(dst, tmp_path / "state")
            remount(dst, "ro")
            failed = run_to_end(src, rx, tmp_path / "run-1")
            code = failed.proc.returncode
            assert code in (TRANSFER_FAILED, TARGET_FULL), failed.describe()
            assert_failed_with(failed, code, "read-only")
            assert_serves(rx)
            assert os.listdir(dst) == []

            remount(dst, "rw")
            done = run_to_end(src, rx, tmp_path / "run-2")
            assert done.proc.returncode == OK, done.describe()
            assert copy_differences(src, dst) == []
        finally:
            receivers.stop_all()  # before unmounting; the fixture reports a bad exit


# -- (d) a source file the sender cannot read -----------------------------------------------


@pytest.fixture
def code_reachable_by_nobody() -> Iterator[None]:
    """The unprivileged sender must reach the interpreter and this checkout; a clone in a
    root-only directory (mktemp -d) would stop it before it starts. Directories on the
    way get o+x (search, not read) for the test, and back after."""
    changed: list[tuple[Path, int]] = []
    for path in {Path(sys.executable).absolute(), Path(sys.executable).resolve(), REPO_ROOT}:
        for directory in [path, *path.parents] if path.is_dir() else list(path.parents):
            mode = directory.stat().st_mode
            if not mode & stat.S_IXOTH:
                os.chmod(directory, stat.S_IMODE(mode) | stat.S_IXOTH)
                changed.append((directory, stat.S_IMODE(mode)))
    try:
        yield
    finally:
        for directory, mode in reversed(changed):
            os.chmod(directory, mode)


@pytest.fixture
def world_readable_dir() -> Iterator[Path]:
    """A directory an unprivileged sender can reach (pytest's tmp_path is root's alone)."""
    top = Path(tempfile.mkdtemp(prefix="cvm-faults-"))
    os.chmod(top, 0o755)
    try:
        yield top
    finally:
        shutil.rmtree(top)


def test_d_unreadable_source_file_fails_alone_for_an_unprivileged_sender(
    tmp_path: Path,
    world_readable_dir: Path,
    receivers: Receivers,
    code_reachable_by_nobody: None,
) -> None:
    src = world_readable_dir / "src"
    small_files(src, 60, 2048, per_dir=20)
    write_random_file(src / "big.bin", 3 * MIB)
    secret = src / "d01" / "secret"
    secret.write_bytes(b"root's eyes only\n")
    os.chmod(secret, 0)
    for dirpath, dirs, files in os.walk(src):
        for name in dirs:
            os.chmod(Path(dirpath, name), 0o755)
        for name in files:
            if Path(dirpath, name) != secret:
                os.chmod(Path(dirpath, name), 0o644)
    workdir = world_readable_dir / "sender"
    for run in ("0", "1"):
        (workdir / run).mkdir(parents=True)
        os.chown(workdir / run, NOBODY, NOBODY)
    as_nobody = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", "--")

    dst = tmp_path / "dst"
    dst.mkdir()
    rx = receivers.start(dst, tmp_path / "state")
    with launch_sender(src, rx.address, rx.token, workdir / "0", prefix=as_nobody) as checked:
        checked.wait()
    assert_checks_refused(checked, "root privileges")
    assert os.listdir(dst) == []
    with launch_sender(
        src, rx.address, rx.token, workdir / "1", IGNORE_CHECKS, prefix=as_nobody
    ) as sender:
        sender.wait()
    assert sender.proc.returncode == ENTRIES_FAILED, sender.describe()
    summary = sender.summary()
    assert summary["files_failed"] == 1
    named = [w for w in summary["warnings"] if "/d01/secret" in w]
    assert named and "Permission denied" in named[0], summary["warnings"]
    assert "/d01/secret" in sender.stdout() + sender.stderr()
    assert not (dst / "d01" / "secret").exists()
    excludes = write_exclude_file(tmp_path / "excludes", ["/d01/secret"])
    assert copy_differences(src, dst, exclude_from=excludes) == []
    assert temp_files(dst) == []


# -- (e) SIGTERM to the receiver mid-transfer -----------------------------------------------

SIGTERM_FILE_SIZE = 300 * MIB
SIGTERM_AT = 64 * MIB
# The receiver lets running streams end for 10 s, then cancels them; the rest is margin for
# a loaded machine.
RECEIVER_EXIT_BOUND_S = 18.0


@pytest.mark.parametrize("sender_state", ["frozen", "streaming"])
def test_e_sigterm_mid_transfer_exits_cleanly_and_the_rerun_resumes(
    sender_state: str, tmp_path: Path, receivers: Receivers
) -> None:
    src = tmp_path / "src"
    write_random_file(src / "big.bin", SIGTERM_FILE_SIZE)
    dst, state = tmp_path / "dst", tmp_path / "state"
    dst.mkdir()
    first = receivers.start(dst, state)
    with (
        launch_sender(src, first.address, first.token, tmp_path / "run-1", *ONE_RAW_STREAM) as s,
        ReceiverStatus(first.address, first.token) as probe,
    ):
        seen = probe.wait_until(
            lambda st: st.bytes_durable >= SIGTERM_AT, f"{SIGTERM_AT} bytes durable", alive=[s.proc]
        )
        if sender_state == "frozen":
            # A stream stalled mid-file: the receiver must cancel it after its grace period.
            s.freeze()
        stopped_at = time.monotonic()
        code = first.stop(timeout_s=RECEIVER_EXIT_BOUND_S + 5)
        took = time.monotonic() - stopped_at
        s.kill()
    print(f"SIGTERM at {seen.bytes_durable} bytes durable; receiver exited {code} in {took:.1f} s")
    assert code == 0, f"receiver exited {code}\n{first.stderr()}"
    assert "Traceback" not in first.stderr(), first.stderr()
    assert took < RECEIVER_EXIT_BOUND_S, f"receiver took {took:.1f} s to exit after SIGTERM"
    assert journal_integrity(state) == "ok"
    partials = durable_offsets(state)
    if sender_state == "frozen":
        assert partials.get(b"big.bin", 0) >= seen.bytes_durable > 0
        assert not (dst / "big.bin").exists()

    second = receivers.start(dst, state)
    done = run_to_end(src, second, tmp_path / "run-2", *ONE_RAW_STREAM)
    assert done.proc.returncode == OK, done.describe()
    summary = done.summary()
    print("partials after SIGTERM:", partials, "rerun:", _brief(summary))
    assert copy_differences(src, dst) == []
    assert temp_files(dst) == []
    if b"big.bin" in partials:
        assert summary["bytes_resumed"] >= partials[b"big.bin"] > 0
        assert summary["bytes_resumed"] + summary["bytes_sent_raw"] == SIGTERM_FILE_SIZE


# -- (f) the receiver restarted under a running sender --------------------------------------

RESTART_FILE_SIZE = 400 * MIB
RESTART_KILL_AT = 100 * MIB
# How long the receiver stays down: an outage, part of the scenario, not a synchronisation.
RESTART_OUTAGE_S = 3.0


def test_f_receiver_restarted_on_the_same_port_and_the_sender_carries_on(
    tmp_path: Path, receivers: Receivers
) -> None:
    src = tmp_path / "src"
    write_random_file(src / "big.bin", RESTART_FILE_SIZE)
    small_files(src / "small", 30, 4096)
    dst, state = tmp_path / "dst", tmp_path / "state"
    dst.mkdir()
    port = free_port()
    first = receivers.start(dst, state, port=port)
    with launch_sender(
        src, first.address, first.token, tmp_path / "run", "--retry-for", "60", *ONE_RAW_STREAM
    ) as sender:
        with ReceiverStatus(first.address, first.token) as probe:
            probe.wait_until(
                lambda st: st.bytes_durable >= RESTART_KILL_AT,
                f"{RESTART_KILL_AT} bytes durable",
                alive=[sender.proc],
            )
        receivers.kill(first)
        killed_at = time.monotonic()
        # The sender notices and starts backing off; the receiver stays down a while.
        poll_until(lambda: "trying again in" in sender.stderr(), "retry by the sender", 30.0)
        assert sender.proc.poll() is None, sender.describe()
        time.sleep(max(0.0, RESTART_OUTAGE_S - (time.monotonic() - killed_at)))
        receivers.start(dst, state, port=port)
        code = sender.wait(180.0)
    assert code == OK, sender.describe()
    summary = sender.summary()
    print("run across the restart:", _brief(summary))
    assert summary["attempts"] >= 2, summary
    assert summary["bytes_resumed"] > 0, summary
    assert summary["files_resumed"] >= 1, summary
    assert copy_differences(src, dst) == []
    assert temp_files(dst) == []
