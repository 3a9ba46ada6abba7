"""Helpers for end-to-end tests that interrupt a migration at a known point.

- `StatusProbe` polls the receiver's Status RPC (progress of its latest session), so a test
  can kill a process once, say, 100 MiB are durable, instead of sleeping and hoping.
- `SenderProcess` runs `python -m sender run` in the background with the command line and
  environment the `run_sender` fixture uses, so the test can kill -9 it mid-run.
- `temp_files` lists the receiver's `.cvm-migrate.*.tmp` files left under a root.

Like tests/conftest.py this drives the product only through its command lines and its wire
contract; it imports the generated protobuf modules, nothing of the sender or receiver.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc

if TYPE_CHECKING:
    from tests.conftest import ReceiverProcess

REPO_ROOT = Path(__file__).resolve().parents[2]
KIB = 1024
MIB = 1024 * KIB

# Every wait in these tests is a poll with a deadline; the deadline only bounds a failure.
POLL_INTERVAL_S = 0.002
WAIT_TIMEOUT_S = 60.0
STATUS_RPC_TIMEOUT_S = 5.0
SENDER_EXIT_TIMEOUT_S = 120.0

TEMP_PREFIX = ".cvm-migrate."
TEMP_SUFFIX = ".tmp"


class StatusProbe:
    """Status of the receiver's latest session, over a channel of its own."""

    def __init__(self, receiver: ReceiverProcess) -> None:
        self.receiver = receiver
        self._channel = grpc.insecure_channel(receiver.address)
        self._stub = pb_grpc.ReceiverServiceStub(self._channel)
        self._metadata = (("authorization", "Bearer " + receiver.token),)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> StatusProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def status(self) -> pb.StatusResponse | None:
        """The latest session's progress; None before any Hello (no session to report)."""
        try:
            return self._stub.Status(  # type: ignore[no-any-return]
                pb.StatusRequest(), metadata=self._metadata, timeout=STATUS_RPC_TIMEOUT_S
            )
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call) and exc.code() == grpc.StatusCode.NOT_FOUND:
                return None  # no session yet
            raise

    def wait_until(
        self,
        condition: Callable[[pb.StatusResponse], bool],
        what: str,
        *,
        sender: SenderProcess | None = None,
        timeout_s: float = WAIT_TIMEOUT_S,
    ) -> pb.StatusResponse:
        """Poll until `condition` holds for a Status; that Status.

        Fails the test, naming `what`, if the deadline passes, the receiver dies, or the
        `sender` exits first (then the run ended before the point the test wanted).
        """
        deadline = time.monotonic() + timeout_s
        last: pb.StatusResponse | None = None
        while time.monotonic() < deadline:
            if self.receiver.proc.poll() is not None:
                pytest.fail(
                    f"receiver exited {self.receiver.proc.returncode} while waiting for "
                    f"{what}\n{self.receiver.stderr()}"
                )
            status = self.status()
            if status is not None:
                last = status
                if condition(status):
                    return status
            if sender is not None and sender.proc.poll() is not None:
                pytest.fail(
                    f"the sender exited {sender.proc.returncode} before {what} "
                    f"(last status: {_brief(last)})\n{sender.describe()}"
                )
            time.sleep(POLL_INTERVAL_S)
        pytest.fail(f"no {what} within {timeout_s} s (last status: {_brief(last)})")


def _brief(status: pb.StatusResponse | None) -> str:
    if status is None:
        return "none"
    return (
        f"planned={status.entries_planned} to_send={status.files_to_send} "
        f"committed={status.files_committed} durable={status.bytes_durable} "
        f"finished={status.finished}"
    )


@dataclass
class SenderProcess:
    """A `python -m sender run` started in the background."""

    proc: subprocess.Popen[bytes]
    workdir: Path
    summary_path: Path

    def __enter__(self) -> SenderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        """A sender the test left running (it failed half-way) must not outlive it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)  # in case the test froze it
            self.kill()

    def kill(self) -> None:
        """kill -9, and wait for it to be gone."""
        self.proc.kill()
        self.proc.wait()

    def freeze(self) -> None:
        """SIGSTOP: the sender keeps its connections but sends nothing more."""
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def wait(self, timeout_s: float = SENDER_EXIT_TIMEOUT_S) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"sender still running after {timeout_s} s\n{self.describe()}")

    def output(self) -> tuple[str, str]:
        return (
            (self.workdir / "stdout").read_text(errors="backslashreplace"),
            (self.workdir / "stderr").read_text(errors="backslashreplace"),
        )

    def describe(self) -> str:
        out, err = self.output()
        return f"--- sender stdout\n{out}\n--- sender stderr\n{err}"

    def summary(self) -> dict[str, Any] | None:
        if not self.summary_path.exists():
            return None
        return json.loads(self.summary_path.read_text())  # type: ignore[no-any-return]


def start_sender(src: Path, receiver: ReceiverProcess, workdir: Path, *args: str) -> SenderProcess:
    """Start the sender as `run_sender` runs it (same command line, env and cwd layout)."""
    workdir.mkdir(parents=True, exist_ok=True)
    summary_path = workdir / "summary.json"
    command = [
        sys.executable,
        "-m",
        "sender",
        "run",
        str(src),
        "--to",
        receiver.address,
        "--insecure",
        "--summary-json",
        str(summary_path),
        *args,
    ]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["CVM_MIGRATE_TOKEN"] = receiver.token
    with (workdir / "stdout").open("wb") as out, (workdir / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=workdir
        )
    return SenderProcess(proc, workdir, summary_path)


def temp_files(root: Path) -> list[Path]:
    """The receiver's temporary files (`.cvm-migrate.<hex>.tmp`) anywhere under `root`."""
    return sorted(_temp_files(root))


def _temp_files(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            if name.startswith(TEMP_PREFIX) and name.endswith(TEMP_SUFFIX):
                yield Path(dirpath, name)


def write_random_file(path: Path, size: int, *, chunk: int = 8 * MIB) -> Path:
    """`size` incompressible bytes (os.urandom), written in chunks; returns `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        left = size
        while left:
            step = min(chunk, left)
            out.write(os.urandom(step))
            left -= step
    return path


# -- the receiver's journal, read (never written) to check what a kill left behind ---------


def _journal_rows(state_dir: Path, sql: str, params: tuple[object, ...] = ()) -> list[Any]:
    uri = f"file:{state_dir / 'journal.sqlite3'}?mode=ro"
    db = sqlite3.connect(uri, uri=True)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def journal_integrity(state_dir: Path) -> str:
    """`PRAGMA integrity_check` of the receiver's journal, opened read-only."""
    return "\n".join(str(row[0]) for row in _journal_rows(state_dir, "PRAGMA integrity_check"))


def durable_offsets(state_dir: Path) -> dict[bytes, int]:
    """The journal's partial files: relative path -> durable offset."""
    rows = _journal_rows(state_dir, "SELECT path, durable_offset FROM partial")
    return {bytes(path): int(offset) for path, offset in rows}


def session_finished(state_dir: Path, session_id: str) -> bool:
    """Whether the journal records `session_id` as finished."""
    rows = _journal_rows(state_dir, "SELECT finished_ns FROM session WHERE id = ?", (session_id,))
    assert rows, f"no session {session_id} in the journal"
    return rows[0][0] is not None
