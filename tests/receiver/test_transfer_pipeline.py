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


@pytest.fixture
def in_process(tmp_path: Path) -> Iterator[tuple[Receiver, WireClient, Path]]:
    root = tmp_path / "root"
    root.mkdir()
    receiver = Receiver(root, tmp_path / "state", clock_ns=time.time_ns)
    server = ReceiverServer(receiver, TOKEN, "127.0.0.1:0", None)
    server.start()
    client = WireClient(f"127.0.0.1:{server.port}", TOKEN)
    try:
        yield receiver, client, root
    finally:
        client.close()
        server.stop(1)
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


def test_frames_are_written_while_a_group_is_synced(
    in_process: tuple[Receiver, WireClient, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver, client, root = in_process
    held = HeldSync()
    monkeypatch.setattr(durability, "syncfs", held)
    contents = {1: b"first group " * 100, 2: b"closes the group " * 100, 3: b"while synced" * 100}
    session = client.hello().session_id
    client.plan_ok(session, [[file_entry(i, b"f%d" % i, len(c)) for i, c in contents.items()]])

    outbox: queue.Queue[pb.TransferRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.TransferRequest]:
        while (request := outbox.get()) is not None:
            yield request

    responses: list[pb.TransferResponse] = []
    call = client.stub.Transfer(
        requests(), metadata=client.auth, timeout=RPC_TIMEOUT_S, wait_for_ready=True
    )
    outbox.put(pb.TransferRequest(session_id=session))
    reading = threading.Thread(target=lambda: responses.extend(call), daemon=True)
    reading.start()

    outbox.put(whole_file(1, contents[1]))
    time.sleep(durability.GROUP_SECONDS + 0.1)  # the group is due by age: the next message seals it
    outbox.put(whole_file(2, contents[2]))
    assert held.waiting.wait(10), "the first group was never committed"

    total = sum(map(len, contents.values()))
    outbox.put(whole_file(3, contents[3]))
    poll_until(
        lambda: receiver.stats.counters["received_raw_bytes"] == total,
        f"all {total} bytes written while the first group was synced",
        10.0,
    )
    assert not responses, "acknowledged before the sync returned"

    held.release.set()
    poll_until(lambda: bool(responses), "acknowledgement after the sync returned", 10.0)
    outbox.put(None)
    reading.join(RPC_TIMEOUT_S)
    assert call.code() == grpc.StatusCode.OK
    committed = {ack.file_id for r in responses for ack in r.acks if ack.committed}
    assert committed == set(contents)
    for file_id, content in contents.items():
        assert (root / f"f{file_id}").read_bytes() == content


def test_shutdown_lets_a_cancelled_stream_finish_its_commit_before_the_journal_closes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gRPC cancels a stream still running when the grace period ends, but a commit
    already in its syncfs goes on; the receiver waits for it before closing the journal,
    so the group ends up journaled instead of failing on a closed database."""
    held = HeldSync()
    monkeypatch.setattr(durability, "syncfs", held)
    root, state = tmp_path / "root", tmp_path / "state"
    root.mkdir()
    receiver = Receiver(root, state, clock_ns=time.time_ns)
    server = ReceiverServer(receiver, TOKEN, "127.0.0.1:0", None)
    server.start()
    client = WireClient(f"127.0.0.1:{server.port}", TOKEN)
    contents = {1: b"committed at shutdown " * 100, 2: b"seals the group" * 100}
    session = client.hello().session_id
    client.plan_ok(session, [[file_entry(i, b"f%d" % i, len(c)) for i, c in contents.items()]])
    outbox: queue.Queue[pb.TransferRequest | None] = queue.Queue()

    def requests() -> Iterator[pb.TransferRequest]:
        while (request := outbox.get()) is not None:
            yield request

    call = client.stub.Transfer(requests(), metadata=client.auth, timeout=RPC_TIMEOUT_S)
    ended: list[grpc.StatusCode] = []

    def read() -> None:
        try:
            list(call)
        except grpc.RpcError:
            ended.append(call.code())

    reading = threading.Thread(target=read, daemon=True)
    reading.start()
    outbox.put(pb.TransferRequest(session_id=session))
    outbox.put(whole_file(1, contents[1]))
    time.sleep(durability.GROUP_SECONDS + 0.1)  # the group is due by age: the next message seals it
    outbox.put(whole_file(2, contents[2]))
    assert held.waiting.wait(10), "the first group was never committed"

    server.stop(0.1)  # the stream is cancelled while its commit waits on the sync
    threading.Timer(0.3, held.release.set).start()
    assert receiver.wait_idle(10.0) == 0
    receiver.close()
    outbox.put(None)
    reading.join(RPC_TIMEOUT_S)
    client.close()

    assert ended == [grpc.StatusCode.UNAVAILABLE]  # cancelled by the shutdown
    assert (root / "f1").read_bytes() == contents[1]
    journal = Journal(state)
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
