"""Helpers for the fault tests: filesystems that fill up, and processes on our own terms.

- `mounted_ext4` / `mounted_tmpfs`: a small filesystem to run out of bytes or inodes, always
  unmounted again (lazily if something still holds it).
- `launch_receiver` / `launch_sender`: `python -m receiver` and `python -m sender run` with
  the command lines the conftest fixtures use, but on a port, in a network namespace or as a
  user of the test's choosing. A receiver is ready once it logs that it is serving, which
  also works inside a namespace the test cannot connect into.
- `ReceiverStatus`: the receiver's Status RPC, to act at a known point of a run.

Like tests/conftest.py this drives the product only through its command lines and its wire
contract.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest

from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc
from tests.e2e.progress_probe import durable_offsets as durable_offsets
from tests.e2e.progress_probe import journal_integrity as journal_integrity
from tests.e2e.progress_probe import temp_files as temp_files  # shared with the fault tests
from tests.e2e.progress_probe import write_random_file as write_random_file

REPO_ROOT = Path(__file__).resolve().parents[2]
KIB = 1024
MIB = 1024 * KIB

STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 15.0
SENDER_TIMEOUT_S = 300.0
POLL_S = 0.02
STATUS_RPC_TIMEOUT_S = 5.0
ERROR_PREFIX = "cvm-migrate: error:"
# A log record at level ERROR: "2026-01-01 12:00:00,000 ERROR name: message".
_ERROR_RECORD = re.compile(r"^\S+ \S+ (ERROR|CRITICAL) ")

T = TypeVar("T")


def project_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test's environment, with the repo importable and `overrides` applied last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(overrides)
    return env


def run_command(*command: str | os.PathLike[str]) -> str:
    """Run a tool that must succeed; its stdout. A failure shows the command and stderr."""
    done = subprocess.run([os.fspath(c) for c in command], capture_output=True, check=False)
    if done.returncode != 0:
        pytest.fail(
            f"{' '.join(os.fspath(c) for c in command)} exited {done.returncode}\n"
            f"{done.stderr.decode(errors='backslashreplace')}"
        )
    return done.stdout.decode(errors="backslashreplace")


def poll_until(
    probe: Callable[[], T | None], what: str, timeout_s: float, interval_s: float = POLL_S
) -> T:
    """Call `probe` until it returns something other than None or False; fail at the deadline."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = probe()
        if found is not None and found is not False:
            return found
        if time.monotonic() >= deadline:
            pytest.fail(f"no {what} within {timeout_s} s")
        time.sleep(interval_s)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def error_lines(stderr: str) -> list[str]:
    """The sender's error lines (it prints exactly one when a run fails): either its plain
    `cvm-migrate: error: ...` or a log record at level ERROR."""
    return [
        line
        for line in stderr.splitlines()
        if line.startswith(ERROR_PREFIX) or _ERROR_RECORD.search(line)
    ]


def peak_rss_bytes(pid: int) -> int:
    """VmHWM of a live process: its peak resident memory so far."""
    status = Path(f"/proc/{pid}/status").read_text()
    line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


# -- filesystems ----------------------------------------------------------------------------


def unmount(mountpoint: Path) -> None:
    """Unmount; lazily if it is still busy, so a failed test never leaves a mount behind."""
    for _ in range(50):
        done = subprocess.run(["umount", str(mountpoint)], capture_output=True, check=False)
        if done.returncode == 0 or not os.path.ismount(mountpoint):
            return
        time.sleep(0.1)
    subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True, check=False)


def _fresh_mount_root(mountpoint: Path) -> None:
    """An empty root: mkfs's lost+found would otherwise be an extra entry for the oracle."""
    lost = mountpoint / "lost+found"
    if lost.is_dir():
        lost.rmdir()


def make_ext4(image: Path, size: int, *, inodes: int | None = None) -> None:
    image.unlink(missing_ok=True)
    run_command("truncate", "-s", str(size), image)
    run_command("mkfs.ext4", "-q", "-F", *(("-N", str(inodes)) if inodes else ()), image)


def mount_ext4(image: Path, mountpoint: Path) -> None:
    mountpoint.mkdir(parents=True, exist_ok=True)
    run_command("mount", "-o", "loop", image, mountpoint)


@contextmanager
def mounted_ext4(
    image: Path, mountpoint: Path, size: int, *, inodes: int | None = None
) -> Iterator[Path]:
    """A loop-mounted ext4 of `size` bytes at `mountpoint`, empty; unmounted afterwards."""
    make_ext4(image, size, inodes=inodes)
    mount_ext4(image, mountpoint)
    try:
        _fresh_mount_root(mountpoint)
        yield mountpoint
    finally:
        unmount(mountpoint)


def grow_ext4(image: Path, mountpoint: Path, size: int) -> None:
    """Give the filesystem room, as an operator would: unmount, grow, check, resize, remount.

    (Online growth needs a privilege this machine's containers lack.)
    """
    unmount(mountpoint)
    run_command("truncate", "-s", str(size), image)
    # resize2fs wants a fresh check first. Exit 1 means "errors corrected": e2fsck puts back
    # the lost+found removed at mount time, which _fresh_mount_root removes again.
    check = subprocess.run(["e2fsck", "-f", "-p", str(image)], capture_output=True, check=False)
    if check.returncode not in (0, 1):
        pytest.fail(f"e2fsck -f -p {image} exited {check.returncode}\n{check.stdout!r}")
    run_command("resize2fs", image)
    mount_ext4(image, mountpoint)
    _fresh_mount_root(mountpoint)


@contextmanager
def mounted_tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A tmpfs with `options` (e.g. "size=20M,nr_inodes=64"); unmounted afterwards."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    run_command("mount", "-t", "tmpfs", "-o", options, "tmpfs", mountpoint)
    try:
        yield mountpoint
    finally:
        unmount(mountpoint)


def remount(mountpoint: Path, options: str) -> None:
    run_command("mount", "-o", f"remount,{options}", mountpoint)


# -- receivers ------------------------------------------------------------------------------


@dataclass
class Receiver:
    """A `python -m receiver` this module started; output goes to files."""

    address: str
    token: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    trust_args: tuple[str, ...] = ("--insecure",)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="backslashreplace")

    def stop(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> int:
        """SIGTERM; the exit code, or -9 if it had to be killed after `timeout_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()


def launch_receiver(
    root: Path,
    state_dir: Path,
    logs: Path,
    *,
    listen: str,
    token: str | None = None,
    tls: bool = False,
    prefix: Sequence[str] = (),
) -> Receiver:
    """Start a receiver and wait until it serves; `prefix` runs it (e.g. `ip netns exec`)."""
    token = token or secrets.token_hex(16)
    logs.mkdir(parents=True, exist_ok=True)
    command = [
        *prefix,
        sys.executable,
        "-m",
        "receiver",
        "--root",
        str(root),
        "--listen",
        listen,
        "--state-dir",
        str(state_dir),
        *(() if tls else ("--insecure",)),
    ]
    stderr_path = logs / "stderr"
    with (logs / "stdout").open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=project_env({"CVM_MIGRATE_TOKEN": token}),
            cwd=logs,
        )
    receiver = Receiver(listen, token, proc, stderr_path)
    # The line it logs once its server has started: "serving ROOT on LISTEN (receiver V)".
    serving = re.compile(rf" serving .* on {re.escape(listen)} ")
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not serving.search(receiver.stderr()):
        if proc.poll() is not None:
            pytest.fail(f"receiver exited {proc.returncode} before serving\n{receiver.stderr()}")
        if time.monotonic() >= deadline:
            receiver.kill()
            pytest.fail(f"receiver not serving after {STARTUP_TIMEOUT_S} s\n{receiver.stderr()}")
        time.sleep(POLL_S)
    if tls:
        receiver.trust_args = ("--fingerprint", (state_dir / "fingerprint").read_text().strip())
    return receiver


_TRANSIENT = (
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
)


class ReceiverStatus:
    """The Status RPC of a receiver's latest session, over a plaintext channel of its own."""

    def __init__(self, address: str, token: str) -> None:
        self._channel = grpc.insecure_channel(address)
        self._stub = pb_grpc.ReceiverServiceStub(self._channel)
        self._metadata = (("authorization", "Bearer " + token),)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> ReceiverStatus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> pb.StatusResponse | None:
        """The latest session's progress; None before any session, or when one call is slow
        or refused (a loaded machine): the caller's deadline decides."""
        try:
            response: pb.StatusResponse = self._stub.Status(
                pb.StatusRequest(), metadata=self._metadata, timeout=STATUS_RPC_TIMEOUT_S
            )
            return response
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else None
            if code in _TRANSIENT:
                return None
            raise

    def wait_until(
        self,
        condition: Callable[[pb.StatusResponse], bool],
        what: str,
        *,
        alive: Sequence[subprocess.Popen[bytes]] = (),
        timeout_s: float = 60.0,
    ) -> pb.StatusResponse:
        """Poll until a Status meets `condition`; fail if a process in `alive` exits first."""
        deadline = time.monotonic() + timeout_s
        last: pb.StatusResponse | None = None
        while time.monotonic() < deadline:
            for proc in alive:
                if proc.poll() is not None:
                    pytest.fail(f"{proc.args!r} exited {proc.returncode} before {what}")
            status = self.status()
            if status is not None:
                last = status
                if condition(status):
                    return status
            time.sleep(POLL_S)
        pytest.fail(f"no {what} within {timeout_s} s (last status: {last})")


# -- senders --------------------------------------------------------------------------------


@dataclass
class Sender:
    """A `python -m sender run` started in the background."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    summary_path: Path
    started: float = field(default_factory=time.monotonic)

    def __enter__(self) -> Sender:
        return self

    def __exit__(self, *exc: object) -> None:
        """A sender the test left running must not outlive it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.kill()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def freeze(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def wait(self, timeout_s: float = SENDER_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sender still running after {timeout_s} s\n{self.describe()}")

    def stdout(self) -> str:
        return (self.workdir / "stdout").read_text(errors="backslashreplace")

    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text(errors="backslashreplace")

    def describe(self) -> str:
        return (
            f"sender exit {self.proc.returncode}\n--- stdout\n{self.stdout()}\n"
            f"--- stderr\n{self.stderr()}"
        )

    def summary(self) -> dict[str, Any]:
        assert self.summary_path.exists(), f"no --summary-json written\n{self.describe()}"
        document: dict[str, Any] = json.loads(self.summary_path.read_text())
        return document


def launch_sender(
    src: Path,
    address: str,
    token: str,
    workdir: Path,
    *args: str,
    trust: Sequence[str] = ("--insecure",),
    prefix: Sequence[str] = (),
) -> Sender:
    """Start the sender as the `run_sender` fixture runs it; `prefix` wraps the command
    (`ip netns exec NS`, `setpriv --reuid ...`). `workdir` must be writable by it."""
    workdir.mkdir(parents=True, exist_ok=True)
    summary_path = workdir / "summary.json"
    command = [
        *prefix,
        sys.executable,
        "-m",
        "sender",
        "run",
        str(src),
        "--to",
        address,
        *trust,
        "--summary-json",
        str(summary_path),
        *args,
    ]
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=project_env({"CVM_MIGRATE_TOKEN": token}),
            cwd=workdir,
        )
    return Sender(proc, workdir, summary_path)
