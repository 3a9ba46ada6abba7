"""A receiver process serving `root`, with an `outside` directory beside it, for the hostile,
limit and fuzz tests; and what those tests check of it afterwards.

It builds on tests/receiver/wire_client.py (raw gRPC requests) and, like the other receiver
tests, runs the real `python -m receiver` through the conftest `receiver` fixture.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc

from common.pb.migrate.v1 import receiver_pb2 as pb
from tests.receiver.wire_client import WireClient

if TYPE_CHECKING:
    from tests.conftest import ReceiverProcess

MiB = 1 << 20
# The receiver's peak resident memory must stay below this whatever a client sends. An idle
# receiver (CPython, grpcio, sqlite) peaks at about 45-60 MB here.
MAX_RECEIVER_HWM_BYTES = 300 * 1000 * 1000
TEMP_PREFIX = ".cvm-migrate."

# What the receiver may answer (proto/migrate/v1/receiver.proto and receiver/faults.py);
# UNKNOWN or INTERNAL would be an exception nobody mapped.
DOCUMENTED_CODES = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.DATA_LOSS,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.NOT_FOUND,
    }
)


Snapshot = dict[str, tuple[int, int, bytes]]


def snapshot(top: Path) -> Snapshot:
    """Every entry below `top`: (type and mode, size, symlink target), never followed."""
    found: Snapshot = {}
    for dirpath, dirnames, filenames in os.walk(top):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            target = os.fsencode(os.readlink(path)) if stat.S_ISLNK(st.st_mode) else b""
            found[os.path.relpath(path, top)] = (st.st_mode, st.st_size, target)
    return found


def live_names(top: Path) -> set[str]:
    """Entries below `top` other than the receiver's temporary files."""
    return {p for p in snapshot(top) if not os.path.basename(p).startswith(TEMP_PREFIX)}


def escapes(root: Path) -> list[str]:
    """Directories under `root` whose real location is not beneath it (reached through a
    symlink or a mount). Symlinks themselves are content, their targets may point anywhere,
    and they are never followed here."""
    real_root = os.path.realpath(root)
    return [
        dirpath
        for dirpath, _dirs, _files in os.walk(root)
        if not (os.path.realpath(dirpath) + os.sep).startswith(real_root + os.sep)
    ]


@dataclass
class Target:
    """A receiver serving an empty `root`, `outside` beside it, and a client."""

    root: Path
    outside: Path
    process: ReceiverProcess
    client: WireClient

    def session(self) -> str:
        return self.client.hello().session_id

    def assert_outside_untouched(self) -> None:
        assert snapshot(self.outside) == {}, "the receiver wrote outside its root"
        assert escapes(self.root) == [], "something under the root leads out of it"

    def assert_still_serves(self, timeout_s: float = 5.0) -> str:
        """A Hello on a fresh channel (a new connection) opens a session within `timeout_s`;
        that session's id."""
        assert self.process.proc.poll() is None, self.process.stderr()
        deadline = time.monotonic() + timeout_s
        client = WireClient(self.process.address, self.process.token)
        try:
            while True:
                request = pb.HelloRequest(protocol_version=1, source_hostname="limits-test")
                try:
                    response = client.stub.Hello(
                        request,
                        metadata=client.auth,
                        timeout=max(0.1, deadline - time.monotonic()),
                    )
                    assert response.session_id
                    return str(response.session_id)
                except grpc.RpcError as exc:
                    if time.monotonic() >= deadline:
                        raise AssertionError(f"no Hello within {timeout_s} s: {exc}") from exc
                    time.sleep(0.05)
        finally:
            client.close()

    def peak_rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmHWM:"))
        return int(line.split()[1]) * 1024

    def rss_bytes(self) -> int:
        status = Path(f"/proc/{self.process.proc.pid}/status").read_text()
        line = next(x for x in status.splitlines() if x.startswith("VmRSS:"))
        return int(line.split()[1]) * 1024
