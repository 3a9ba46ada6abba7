"""A Transfer stream goes on writing frames while the last sync group is committed,
and a commit under way when the receiver stops still reaches the journal.

The receiver runs in this process so the test can hold its filesystem sync:
while the first group's commit waits on it, the next frames must still be
received and written, and the first group's acknowledgement must still
arrive once the sync returns, with the client sending nothing until then.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from common.pb.migrate.v1 import receiver_pb2 as pb
from receiver import durability
from receiver.faults import ReceiverStopping
from receiver.journal import Journal
from receiver.receiver import Receiver
from receiver.server import ReceiverServer
from tests.e2e.faults_support import poll_until
from tests.receiver.wire_client import RPC_TIMEOUT_S, WireClient, file_entry, whole_file

TOKEN = "pipeline-test-token-0123456789"


@dataclass
class InProcess:
    receiver: Receiver
    server: ReceiverServer
    client: WireClient
    root: Path
    state: Path
    receiver_closed: bool = False

    def close_receiver(self) -> None:
        self.receiver.close()
        self.receiver_closed = True


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[InProcess]:
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    receiver = Receiver(root, state, clock_ns=time.time_ns)
    server = ReceiverServer(receiver, TOKEN, "127.0.0.1:0", None)
    server.start()
    client = WireClient(f"127.0.0.1:{server.port}", TOKEN)
    running = InProcess(receiver, server, client, root, state)
    try:
        yield running
    finally:
        client.close()
        server.stop(1)
        if not running.receiver_closed:
            receiver.close()


class HeldSync:
    """Stands in for syncfs: the first call waits until released."""

    def __init__(self) -> None:
        self.waiting = threading.Event()
        self.release = threading.Event()
        self._real = durability.syncfs
        self._first = True

    def __call__(self, fd: int) -> None:
        if self._first:
            self._first = False
            self.waiting.set()
            assert self.release.wait(RPC_TIMEOUT_S)
        self._real(fd)


class OpenTransfer:
    """A Transfer call fed from a queue; a thread collects its responses and its end."""

    def __init__(self, client: WireClient, session: str) -> None:
        self.responses: list[pb.TransferResponse] = []
        self.ended: list[grpc.StatusCode] = []  # the status of a call that failed
        self._outbox: queue.Queue[pb.TransferRequest | None] = queue.Queue()
        self.call = client.stub.Transfer(
            self._requests(), metadata=client.auth, timeout=RPC_TIMEOUT_S, wait_for_ready=True
        )
        self._reading = threading.Thread(target=self._read, daemon=True)
        self._reading.start()
        self.send(pb.TransferRequest(session_id=session))

    def _requests(self) -> Iterator[pb.TransferRequest]:
        while (request := self._outbox.get()) is not None:
            yield request

    def _read(self) -> None:
        try:
            self.responses.extend(self.call)
        except grpc.RpcError:
            self.ended.append(self.call.code())

    def send(self, request: pb.TransferRequest) -> None:
        self._outbox.put(request)

    def close(self) -> None:
        """End the requests and wait for the call to end."""
        self._outbox.put(None)
        self._reading.join(RPC_TIMEOUT_S)


def hold_the_first_group(
    client: WireClient, held: HeldSync, contents: dict[int, bytes]
) -> OpenTransfer:
    """Plan `contents` as files f1, f2...; send f1, then f2 once the group is due, so f2
    seals a group of f1 whose commit then waits in `held`."""
    session = client.hello().session_id
    client.plan_ok(session, [[file_entry(i, b"f%d" % i, len(c)) for i, c in contents.items()]])
    transfer = OpenTransfer(client, session)
    transfer.send(whole_file(1, contents[1]))
    time.sleep(durability.GROUP_SECONDS + 0.1)  # the group is due by age: the next message seals it
    transfer.send(whole_file(2, contents[2]))
    assert held.waiting.wait(10), "the first group was never committed"
    return transfer


def test_frames_are_written_while_a_group_is_synced(
    in_process: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = HeldSync()
    monkeypatch.setattr(durability, "syncfs", held)
    contents = {1: b"first group " * 100, 2: b"closes the group " * 100, 3: b"while synced" * 100}
    transfer = hold_the_first_group(in_process.client, held, contents)

    total = sum(map(len, contents.values()))
    transfer.send(whole_file(3, contents[3]))
    poll_until(
        lambda: in_process.receiver.stats.counters["received_raw_bytes"] == total,
        f"all {total} bytes written while the first group was synced",
        10.0,
    )
    assert not transfer.responses, "acknowledged before the sync returned"

    held.release.set()
    poll_until(lambda: bool(transfer.responses), "acknowledgement after the sync returned", 10.0)
    transfer.close()
    assert transfer.call.code() == grpc.StatusCode.OK
    committed = {ack.file_id for r in transfer.responses for ack in r.acks if ack.committed}
    assert committed == set(contents)
    for file_id, content in contents.items():
        assert (in_process.root / f"f{file_id}").read_bytes() == content


def test_shutdown_lets_a_cancelled_stream_finish_its_commit_before_the_journal_closes(
    in_process: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC cancels a stream still running when the grace period ends, but a commit
    already in its syncfs goes on; the receiver waits for it before closing the journal,
    so the group ends up journaled instead of failing on a closed database."""
    held = HeldSync()
    monkeypatch.setattr(durability, "syncfs", held)
    contents = {1: b"committed at shutdown " * 100, 2: b"seals the group" * 100}
    transfer = hold_the_first_group(in_process.client, held, contents)

    in_process.server.stop(0.1)  # the stream is cancelled while its commit waits on the sync
    threading.Timer(0.3, held.release.set).start()
    assert in_process.receiver.wait_idle(10.0) == 0
    in_process.close_receiver()
    transfer.close()

    assert transfer.ended == [grpc.StatusCode.UNAVAILABLE]  # cancelled by the shutdown
    assert (in_process.root / "f1").read_bytes() == contents[1]
    journal = Journal(in_process.state)
    try:
        assert journal.partial(b"f1") is None, "f1 went live but its commit was not journaled"
    finally:
        journal.close()


def test_a_closed_journal_refuses_with_receiver_stopping(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "state")
    journal.close()
    with pytest.raises(ReceiverStopping, match="stopping"):
        journal.transaction([Journal.drop_partial(b"f")])
    with pytest.raises(ReceiverStopping):
        journal.partial(b"f")
