"""Fixtures that run the real receiver and sender as separate processes.

Nothing here imports the project: tests drive `python -m receiver` and `python -m sender`
through their command lines, over a real TCP socket, as a user would.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
STARTUP_TIMEOUT_S = 15.0
SHUTDOWN_TIMEOUT_S = 15.0
SENDER_TIMEOUT_S = 300.0
SUMMARY_KEYS = frozenset(
    {
        "files_total",
        "files_transferred",
        "files_skipped",
        "bytes_total",
        "bytes_sent_raw",
        "bytes_sent_wire",
        "elapsed_s",
        "exit_code",
        "warnings",
    }
)


def _pick_free_port() -> int:
    """A TCP port free on 127.0.0.1 right now (another process may still take it first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project_env(overrides: Mapping[str, str]) -> dict[str, str]:
    """The test's environment, with the repo importable and `overrides` applied last."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(overrides)
    return env


@dataclass
class ReceiverProcess:
    """A running `python -m receiver`; its output goes to files to show when a test fails."""

    address: str
    token: str
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    stdout_path: Path
    # The sender options that trust this receiver: --insecure, or its pinned certificate.
    trust_args: tuple[str, ...] = ("--insecure",)
    killed: bool = field(default=False, init=False)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="backslashreplace")

    def stop(self) -> int:
        """SIGTERM, as systemd or `docker stop` would; the exit code once it is gone.

        A receiver still running SHUTDOWN_TIMEOUT_S later is killed, and the code is -9.
        """
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=SHUTDOWN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL, for tests of crashes; teardown then accepts any exit code."""
        self.killed = True
        self.proc.kill()
        self.proc.wait()


class StartReceiver(Protocol):
    def __call__(
        self,
        root: Path,
        state_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> ReceiverProcess: ...


@pytest.fixture
def free_port() -> Callable[[], int]:
    """`free_port()` returns a TCP port free on 127.0.0.1."""
    return _pick_free_port


@pytest.fixture
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartReceiver]:
    """A factory that starts receivers; each must exit 0 on SIGTERM at teardown.

    The token is chosen here and passed in CVM_MIGRATE_TOKEN; `env` can override it (and
    anything else), and the returned process reports the token actually used.
    """
    started: list[ReceiverProcess] = []

    def start_receiver(
        root: Path,
        state_dir: Path,
        *,
        extra_args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        tls: bool = False,
    ) -> ReceiverProcess:
        port = _pick_free_port()
        full_env = _project_env({"CVM_MIGRATE_TOKEN": secrets.token_hex(16), **(env or {})})
        logs = tmp_path_factory.mktemp("receiver-logs")
        command = [
            sys.executable,
            "-m",
            "receiver",
            "--root",
            str(root),
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(state_dir),
            *(() if tls else ("--insecure",)),
            *(() if "--metrics-listen" in extra_args else ("--metrics-listen", "127.0.0.1:0")),
            *extra_args,
        ]
        with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=full_env, cwd=logs
            )
        process = ReceiverProcess(
            address=f"127.0.0.1:{port}",
            token=full_env["CVM_MIGRATE_TOKEN"],
            proc=proc,
            stderr_path=logs / "stderr",
            stdout_path=logs / "stdout",
        )
        _wait_until_listening(process, port)
        if tls and "--tls-cert" not in extra_args:
            fingerprint = (state_dir / "fingerprint").read_text().strip()
            process.trust_args = ("--fingerprint", fingerprint)
        started.append(process)  # only now: a receiver that never listened already failed
        return process

    yield start_receiver

    failures = [message for p in started if (message := _shutdown_failure(p))]
    if failures:
        pytest.fail("\n\n".join(failures))


def _wait_until_listening(process: ReceiverProcess, port: int) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.proc.poll() is not None:
            pytest.fail(
                f"receiver exited with {process.proc.returncode} before listening\n"
                f"{process.stderr()}"
            )
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    process.kill()
    pytest.fail(
        f"receiver not listening on port {port} after {STARTUP_TIMEOUT_S} s\n{process.stderr()}"
    )


def _shutdown_failure(process: ReceiverProcess) -> str | None:
    """Stop `process` if it still runs; why its exit is wrong, or None if it is right."""
    if process.killed:
        return None
    code = process.stop()
    if code == 0:
        return None
    why = f"still running {SHUTDOWN_TIMEOUT_S} s after SIGTERM" if code == -9 else f"exited {code}"
    return f"receiver {process.address} {why}, expected exit 0\n{process.stderr()}"


@dataclass(frozen=True)
class SenderResult:
    """One `python -m sender run`: exit code, output, and its --summary-json (None if absent)."""

    returncode: int
    stdout: str
    stderr: str
    summary: dict[str, Any] | None

    def describe(self) -> str:
        return f"exit code {self.returncode}\n--- stdout\n{self.stdout}\n--- stderr\n{self.stderr}"


class RunSender(Protocol):
    def __call__(
        self,
        src: Path,
        receiver: ReceiverProcess,
        *args: str,
        token: str | None = None,
        check: bool = True,
    ) -> SenderResult: ...


@pytest.fixture
def run_sender(tmp_path_factory: pytest.TempPathFactory) -> RunSender:
    """`run_sender(src, receiver, *args, token=None, check=True)` migrates `src` to `receiver`.

    The token defaults to the receiver's. With `check`, anything but exit 0 with a complete
    summary fails the test, showing the sender's output and the receiver's stderr.
    """

    def run(
        src: Path,
        receiver: ReceiverProcess,
        *args: str,
        token: str | None = None,
        check: bool = True,
    ) -> SenderResult:
        # Its own working directory, because the sender writes logs/ beside itself.
        workdir = tmp_path_factory.mktemp("sender")
        summary_path = workdir / "summary.json"
        command = [
            sys.executable,
            "-m",
            "sender",
            "run",
            str(src),
            "--to",
            receiver.address,
            *receiver.trust_args,
            # The pre-migration checks judge the host, not the test tree; they have
            # tests of their own.
            "--ignore-check",
            "--summary-json",
            str(summary_path),
            *args,
        ]
        env = _project_env({"CVM_MIGRATE_TOKEN": receiver.token if token is None else token})
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                env=env,
                cwd=workdir,
                timeout=SENDER_TIMEOUT_S,
            )
        except subprocess.TimeoutExpired as timeout:
            pytest.fail(
                f"sender still running after {SENDER_TIMEOUT_S} s\n"
                f"--- stderr\n{_text(timeout.stderr)}\n--- receiver stderr\n{receiver.stderr()}"
            )
        result = SenderResult(
            returncode=done.returncode,
            stdout=_text(done.stdout),
            stderr=_text(done.stderr),
            summary=json.loads(summary_path.read_text()) if summary_path.exists() else None,
        )
        if check:
            _check_sender(result, receiver)
        return result

    return run


def _check_sender(result: SenderResult, receiver: ReceiverProcess) -> None:
    problem = None
    if result.returncode != 0:
        problem = "sender failed"
    elif result.summary is None:
        problem = "sender wrote no --summary-json"
    elif missing := SUMMARY_KEYS - result.summary.keys():
        problem = f"summary lacks {sorted(missing)}: {result.summary}"
    if problem:
        pytest.fail(f"{problem}: {result.describe()}\n--- receiver stderr\n{receiver.stderr()}")


def _text(output: bytes | None) -> str:
    return (output or b"").decode(errors="backslashreplace")
