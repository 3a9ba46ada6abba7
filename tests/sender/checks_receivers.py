"""Receivers shared by the tests of one module, started as tests/conftest.py starts them.

The checks only say Hello, which changes nothing under the receiver's root, so one
receiver serves many tests: fewer processes, faster tests. Each must still exit 0 on
SIGTERM at the end, as with conftest's `receiver` fixture.
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import (
    ReceiverProcess,
    _pick_free_port,
    _project_env,
    _shutdown_failure,
    _wait_until_listening,
)


@contextlib.contextmanager
def shared_receiver(
    root: Path, state_dir: Path, logs: Path, *, tls: bool = False
) -> Iterator[ReceiverProcess]:
    """`python -m receiver` on `root` for the duration of the block."""
    port = _pick_free_port()
    env = _project_env({"CVM_MIGRATE_TOKEN": secrets.token_hex(16)})
    logs.mkdir(parents=True, exist_ok=True)
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
        "--metrics-listen",
        "127.0.0.1:0",
        *(() if tls else ("--insecure",)),
    ]
    with (logs / "stdout").open("wb") as out, (logs / "stderr").open("wb") as err:
        proc = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=logs
        )
    process = ReceiverProcess(
        address=f"127.0.0.1:{port}",
        token=env["CVM_MIGRATE_TOKEN"],
        proc=proc,
        stderr_path=logs / "stderr",
        stdout_path=logs / "stdout",
    )
    try:
        _wait_until_listening(process, port)
        if tls:
            process.trust_args = ("--fingerprint", (state_dir / "fingerprint").read_text().strip())
        yield process
    finally:
        failure = _shutdown_failure(process)
    if failure:
        pytest.fail(failure)
