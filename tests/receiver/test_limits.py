"""A receiver process at and past its limits: giant names, oversized messages, thousands of
streams, a client that never reads its acknowledgements, absurd file sizes.

Every test talks raw gRPC (tests/receiver/wire_client.py) to `python -m receiver`, and checks
the status it got, that nothing was written, that the receiver's memory stayed bounded
(VmHWM from /proc), and that it still serves a new client afterwards. Time bounds below are
hang guards (a refusal that takes them has hung), not speed goals.
"""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest

from common import grpc_config
from common.content_hash import FileDigest
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc
from tests.receiver.faults_wire import (
    MAX_RECEIVER_HWM_BYTES,
    TEMP_PREFIX,
    MiB,
    Target,
    live_names,
)
from tests.receiver.wire_client import (
    RPC_TIMEOUT_S,
    Run,
    WireClient,
    collect,
    data_frame,
    directory_entry,
    fifo_entry,
    file_end,
    file_entry,
    hardlink_entry,
    symlink_entry,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the receiver must run as root")

INVALID = grpc.StatusCode.INVALID_ARGUMENT
EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
# A refusal that takes longer than this has hung (the RPC deadline is 20 s).
REFUSAL_BOUND_S = 10.0
# receiver/server.py: calls beyond this many at once are refused.
MAX_CONCURRENT_RPCS = 48


# -- giant names ----------------------------------------------------------------------------

GIANT = b"x" * 4096
DEEP = b"/".join([b"d"] * 10_000)
DEEP_AND_LONG = b"/".join([b"n" * 255] * 10_000)  # 2.5 MB of path

GIANT_ENTRIES = {
    "file-4096-byte-name": lambda: file_entry(1, GIANT, 1),
    "dir-4096-byte-name": lambda: directory_entry(1, GIANT),
    "symlink-4096-byte-name": lambda: symlink_entry(1, GIANT, b"target"),
    "fifo-4096-byte-component-inside": lambda: fifo_entry(1, b"a/" + GIANT + b"/b"),
    "file-10000-components": lambda: file_entry(1, DEEP, 1),
    "dir-10000-components": lambda: directory_entry(1, DEEP),
    "dir-10000-components-of-255-bytes": lambda: directory_entry(1, DEEP_AND_LONG),
    "hardlink-to-4096-byte-name": lambda: hardlink_entry(1, b"link", GIANT),
    "hardlink-to-10000-components": lambda: hardlink_entry(1, b"link", DEEP),
    "symlink-target-of-1-MiB": lambda: symlink_entry(1, b"link", b"t/" * (MiB // 2)),
}


@pytest.mark.parametrize("rpc", ["plan", "verify"])
@pytest.mark.parametrize("case", GIANT_ENTRIES)
def test_giant_names_are_invalid_argument_at_once(target: Target, case: str, rpc: str) -> None:
    entry = GIANT_ENTRIES[case]()
    sid = target.session()
    started = time.monotonic()
    if rpc == "plan":
        outcome = target.client.plan(sid, [[entry]])
    else:
        call = target.client.stub.Verify(
            iter([pb.VerifyRequest(session_id=sid, entries=[entry])]),
            metadata=target.client.auth,
            timeout=RPC_TIMEOUT_S,
        )
        outcome = collect(call)
    took = time.monotonic() - started
    assert outcome.code == INVALID, (outcome.code, outcome.details)
    assert took < REFUSAL_BOUND_S, f"refused only after {took:.1f} s"
    assert len(outcome.details) < 2000, "the refusal echoes the whole giant name"
    assert live_names(target.root) == set()
    target.assert_outside_untouched()
    target.assert_still_serves()


# -- oversized messages ---------------------------------------------------------------------

OVER = grpc_config.MAX_MESSAGE_BYTES + MiB


def _unlimited_channel(address: str) -> grpc.Channel:
    """A channel that sends messages of any size: the receiver, not this client, must refuse."""
    return grpc.insecure_channel(
        address,
        options=[("grpc.max_send_message_length", -1), ("grpc.use_local_subchannel_pool", 1)],
    )


def _oversized_transfer(stub: pb_grpc.ReceiverServiceStub, sid: str, auth: object) -> object:
    payload = os.urandom(OVER)
    frame = pb.DataFrame(encoding=pb.ENCODING_RAW, payload=payload, raw_size=len(payload))
    request = pb.TransferRequest(session_id=sid, frame=frame)
    return collect(stub.Transfer(iter([request]), metadata=auth, timeout=RPC_TIMEOUT_S))


def _oversized_plan(stub: pb_grpc.ReceiverServiceStub, sid: str, auth: object) -> object:
    # Each entry within the receiver's own xattr bound; together over the message size.
    value = os.urandom(60_000)
    entries = [
        pb.Entry(
            id=i + 1,
            path=b"f%d" % i,
            kind=pb.ENTRY_KIND_FILE,
            mode=0o644,
            xattrs=[pb.Xattr(name=b"user.big", value=value)],
        )
        for i in range(OVER // len(value) + 1)
    ]
    request = pb.PlanRequest(session_id=sid, entries=entries)
    return collect(stub.Plan(iter([request]), metadata=auth, timeout=RPC_TIMEOUT_S))


def _oversized_hello(stub: pb_grpc.ReceiverServiceStub, sid: str, auth: object) -> object:
    rules = [b"- /" + os.urandom(500).hex().encode() for _ in range(OVER // 1000 + 1)]
    request = pb.HelloRequest(protocol_version=1, exclude_rules=rules)
    try:
        stub.Hello(request, metadata=auth, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc
    return None


OVERSIZED = {
    "transfer": _oversized_transfer,
    "plan": _oversized_plan,
    "hello": _oversized_hello,
}


@pytest.mark.parametrize("rpc", OVERSIZED)
def test_a_message_over_the_size_limit_is_resource_exhausted(target: Target, rpc: str) -> None:
    sid = target.session()
    channel = _unlimited_channel(target.process.address)
    try:
        stub = pb_grpc.ReceiverServiceStub(channel)
        outcome = OVERSIZED[rpc](stub, sid, target.client.auth)
    finally:
        channel.close()
    code = getattr(outcome, "code", None)
    code = code() if callable(code) else code
    details = getattr(outcome, "details", "")
    details = details() if callable(details) else details
    assert code == EXHAUSTED, (code, details)
    # Refused by the receiver on arrival, not by this client before sending.
    assert "Sent message larger" not in str(details), details
    assert live_names(target.root) == set()
    target.assert_still_serves()
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES


# -- thousands of concurrent streams ---------------------------------------------------------

FLOOD_STREAMS = 2000
FLOOD_CHANNELS = 20  # separate connections, 100 streams each


def _hello_code(target: Target) -> grpc.StatusCode:
    """How a Hello on a fresh channel ends; it must end, one way or the other."""
    client = WireClient(target.process.address, target.process.token)
    try:
        request = pb.HelloRequest(protocol_version=1, source_hostname="flood-test")
        client.stub.Hello(request, metadata=client.auth, timeout=REFUSAL_BOUND_S)
        return grpc.StatusCode.OK
    except grpc.RpcError as exc:
        return exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    finally:
        client.close()


def test_thousands_of_concurrent_streams_are_refused_past_the_limit(target: Target) -> None:
    sid = target.session()
    channels = [
        grpc.insecure_channel(target.process.address, options=grpc_config.CHANNEL_OPTIONS)
        for _ in range(FLOOD_CHANNELS)
    ]
    stubs = [pb_grpc.ReceiverServiceStub(channel) for channel in channels]
    release = threading.Event()

    def first_then_silence() -> Iterator[pb.TransferRequest]:
        yield pb.TransferRequest(session_id=sid)
        release.wait()

    calls: list[grpc.Future] = []
    try:
        for i in range(FLOOD_STREAMS):
            call = stubs[i % FLOOD_CHANNELS].Transfer(
                first_then_silence(), metadata=target.client.auth, timeout=120
            )
            calls.append(call)

        # Refusals come at once; wait until the number still open has settled.
        def settled() -> int | None:
            still_open = sum(not call.done() for call in calls)
            return still_open if still_open <= MAX_CONCURRENT_RPCS else None

        held = settled_for(settled, 1.0, 60.0, "the refusals to settle")
        hello_started = time.monotonic()
        hello_code = _hello_code(target)  # while every slot is taken
        hello_took = time.monotonic() - hello_started
        codes = Counter(call.code() for call in calls if call.done())
        details = {call.details() for call in calls if call.done()}
    finally:
        release.set()
        for call in calls:
            call.cancel()
        for channel in channels:
            channel.close()
    print(
        f"held {held}, ended {dict(codes)} {details}; Hello {hello_code} in {hello_took:.2f} s; "
        f"receiver peak RSS {target.peak_rss_bytes() >> 20} MiB"
    )
    assert 0 < held <= MAX_CONCURRENT_RPCS
    assert codes == {EXHAUSTED: FLOOD_STREAMS - held}, details
    assert hello_code in (grpc.StatusCode.OK, EXHAUSTED)
    assert hello_took < REFUSAL_BOUND_S
    # Once the flood is gone, a new client is served again within seconds.
    target.assert_still_serves(timeout_s=10.0)
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES
    assert live_names(target.root) == set()


def settled_for(
    probe: Callable[[], int | None], quiet_s: float, timeout_s: float, what: str
) -> int:
    """Poll `probe` until it gives the same non-None value for `quiet_s`; that value."""
    deadline = time.monotonic() + timeout_s
    last: int | None = None
    since = time.monotonic()
    while time.monotonic() < deadline:
        value = probe()
        if value != last:
            last, since = value, time.monotonic()
        elif value is not None and time.monotonic() - since >= quiet_s:
            return value
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout_s} s (last: {last})")


# -- a client that never reads its acknowledgements ------------------------------------------

BIG_FILE = 1 << 30
BLOCK = os.urandom(MiB)
# What may be in flight between the client's last send and the receiver's disk: socket
# buffers and HTTP/2 windows on both sides. Far below what a receiver that read ahead
# without bound would let the client push.
MAX_LEAD_BYTES = 96 * MiB


@dataclass
class Progress:
    sent: int = 0
    last_send: float = field(default_factory=time.monotonic)
    done: bool = False


def _temp_file_size(root: Path) -> int:
    sizes = [p.stat().st_size for p in root.iterdir() if p.name.startswith(TEMP_PREFIX)]
    return sum(sizes)


def test_a_client_that_never_reads_acks_cannot_grow_the_receivers_memory(target: Target) -> None:
    sid = target.session()
    [decision] = target.client.plan_ok(sid, [[file_entry(1, b"big", BIG_FILE)]])
    assert decision.action == pb.ACTION_SEND
    progress = Progress()
    digest = FileDigest()

    def requests() -> Iterator[pb.TransferRequest]:
        yield pb.TransferRequest(session_id=sid)
        for offset in range(0, BIG_FILE, MiB):
            digest.update_at(offset, BLOCK)
            yield pb.TransferRequest(frame=data_frame([Run(1, offset, BLOCK)], level=0))
            progress.sent += MiB
            progress.last_send = time.monotonic()
        yield pb.TransferRequest(
            ends=[pb.FileEnd(file_id=1, size=BIG_FILE, xxh3_128=digest.digest())]
        )
        progress.done = True

    call = target.client.stub.Transfer(requests(), metadata=target.client.auth, timeout=300)
    # Nothing reads `call` until the whole file is sent.
    max_lead = 0
    deadline = time.monotonic() + 240
    while not progress.done and time.monotonic() < deadline:
        max_lead = max(max_lead, progress.sent - _temp_file_size(target.root))
        time.sleep(0.005)
    print(
        f"sent {progress.sent >> 20} MiB unread; max lead over the disk {max_lead >> 20} MiB; "
        f"receiver peak RSS {target.peak_rss_bytes() >> 20} MiB"
    )
    assert progress.done, f"only {progress.sent} bytes sent in 240 s"
    assert max_lead <= MAX_LEAD_BYTES
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES

    outcome = collect(call)
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    acks = [ack for response in outcome.responses for ack in response.acks]
    assert any(ack.file_id == 1 and ack.committed for ack in acks)
    assert (target.root / "big").stat().st_size == BIG_FILE
    target.assert_still_serves()


SMALL_FILES = 10 * 4096
SMALL_FILE_BYTES = 4096
FILES_PER_FRAME = 256  # 1 MiB frames: the client's sends fill its socket buffers quickly


def test_unread_acks_of_thousands_of_files_do_not_pile_up_in_the_receiver(
    target: Target,
) -> None:
    """Every sync group's acknowledgement goes out at once whether or not the client reads
    it: the receiver commits every file, its memory flat, before a single ack is read."""
    sid = target.session()
    entries = [file_entry(i + 1, b"f%05d" % i, SMALL_FILE_BYTES) for i in range(SMALL_FILES)]
    batches = [entries[i : i + 4096] for i in range(0, SMALL_FILES, 4096)]
    decisions = target.client.plan_ok(sid, batches)
    assert all(d.action == pb.ACTION_SEND for d in decisions)
    progress = Progress()

    def requests() -> Iterator[pb.TransferRequest]:
        yield pb.TransferRequest(session_id=sid)
        for start in range(0, SMALL_FILES, FILES_PER_FRAME):
            ids = range(start + 1, min(start + FILES_PER_FRAME, SMALL_FILES) + 1)
            contents = {i: (b"%08d" % i) * (SMALL_FILE_BYTES // 8) for i in ids}
            yield pb.TransferRequest(
                frame=data_frame([Run(i, 0, c) for i, c in contents.items()], level=0),
                ends=[file_end(i, c) for i, c in contents.items()],
            )
            progress.sent += len(ids)
        progress.done = True

    call = target.client.stub.Transfer(requests(), metadata=target.client.auth, timeout=300)
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline:
        status = target.client.stub.Status(
            pb.StatusRequest(session_id=sid), metadata=target.client.auth, timeout=RPC_TIMEOUT_S
        )
        committed = status.files_committed
        if committed == SMALL_FILES:
            break
        time.sleep(0.05)
    print(f"{committed} of {SMALL_FILES} files committed before any ack was read")
    assert committed == SMALL_FILES
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES

    outcome = collect(call)
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    acked = {ack.file_id for r in outcome.responses for ack in r.acks if ack.committed}
    assert acked == set(range(1, SMALL_FILES + 1))
    target.assert_still_serves()


# -- absurd sizes ----------------------------------------------------------------------------

HUGE = 1 << 62  # 4 EiB: no filesystem holds it; zeros for its holes would never end


def _huge_requests(sid: str, how: str) -> list[pb.TransferRequest]:
    end = pb.FileEnd(file_id=1, size=HUGE, xxh3_128=bytes(16))
    if how == "end-at-once":
        return [pb.TransferRequest(session_id=sid, ends=[end])]
    if how == "restart-to-absurd-size":
        # Planned small; "the source changed while read" and now claims 4 EiB.
        grown = file_entry(1, b"huge", HUGE)
        return [pb.TransferRequest(session_id=sid, restarts=[grown], ends=[end])]
    last = Run(1, HUGE - 1, b"z")
    return [pb.TransferRequest(session_id=sid, frame=data_frame([last], level=0), ends=[end])]


@pytest.mark.parametrize("how", ["end-at-once", "last-byte-only", "restart-to-absurd-size"])
def test_a_file_of_absurd_size_is_refused_or_fails_alone_promptly(target: Target, how: str) -> None:
    """Entry.size is a uint64. The receiver hashes a file's holes as zeros
    (common/content_hash.py, FileDigest.zero_fill_to, from PartialFile.write/complete in
    receiver/tree.py) before the filesystem could refuse the size (ftruncate runs after the
    hash): a 4 EiB file used to keep a worker thread hashing zeros for ever, and the receiver
    then no longer exited on SIGTERM (the thread is not a daemon). Sizes over 16 TiB are
    refused now, in Plan and in a restart (TransferRequest.restarts)."""
    sid = target.session()
    size = 10 if how == "restart-to-absurd-size" else HUGE
    planned = target.client.plan(sid, [[file_entry(1, b"huge", size)]])
    assert planned.code in (grpc.StatusCode.OK, INVALID), planned.details
    if planned.code == grpc.StatusCode.OK:
        [decision] = [d for r in planned.responses for d in r.decisions]
        if decision.action in (pb.ACTION_SEND, pb.ACTION_DELTA):
            started = time.monotonic()
            call = target.client.stub.Transfer(
                iter(_huge_requests(sid, how)),
                metadata=target.client.auth,
                timeout=REFUSAL_BOUND_S,
            )
            outcome = collect(call)
            took = time.monotonic() - started
            failed_alone = any(a.error for r in outcome.responses for a in r.acks)
            assert outcome.code != grpc.StatusCode.DEADLINE_EXCEEDED, (
                f"a {HUGE}-byte file kept the receiver busy past the {REFUSAL_BOUND_S} s "
                "deadline (zero-filling its holes into the hash)"
            )
            assert failed_alone or outcome.code in (INVALID, grpc.StatusCode.DATA_LOSS), outcome
            assert took < REFUSAL_BOUND_S
    assert not (target.root / "huge").exists()
    target.assert_still_serves()


# -- ids past int64 -------------------------------------------------------------------------

BIG_ID = 2**63  # a valid uint64 Entry.id / file_id, past SQLite's signed 64-bit INTEGER


@pytest.mark.parametrize("where", ["plan", "transfer-end", "transfer-abandon"])
def test_ids_past_int64_are_refused_not_crashing(target: Target, where: str) -> None:
    """Entry.id and the file ids of Transfer are uint64 on the wire; the journal stores them
    as SQLite INTEGER (signed 64-bit), and Python's sqlite3 raises OverflowError ("Python int
    too large to convert to SQLite INTEGER") for anything from 2**63 on. Nothing mapped that
    error, so the call ended UNKNOWN. (Found by the fuzzer.)"""
    sid = target.session()
    if where == "plan":
        outcome = target.client.plan(sid, [[file_entry(BIG_ID, b"f", 3)]])
    else:
        request = (
            pb.TransferRequest(ends=[pb.FileEnd(file_id=BIG_ID, size=3, xxh3_128=bytes(16))])
            if where == "transfer-end"
            else pb.TransferRequest(abandoned_file_ids=[BIG_ID])
        )
        outcome = target.client.transfer(sid, [request])
    assert outcome.code in (grpc.StatusCode.OK, INVALID), f"{outcome.code.name}: {outcome.details}"
    assert live_names(target.root) == set()
    target.assert_still_serves()


# -- sessions that are never finished --------------------------------------------------------

ABANDONED_SESSIONS = 70  # the receiver keeps 64 sessions in memory (receiver/receiver.py)


def test_sessions_never_finished_do_not_lock_out_new_senders(target: Target) -> None:
    """Every sender attempt opens a session with Hello; one that is interrupted (a dropped
    link, Ctrl-C, a crash; the sender's own --retry-for loop opens a new session per attempt)
    never calls Finish. The receiver keeps 64 sessions in memory: unfinished idle ones must
    make room, or a migration over a flaky link locks itself out (RESOURCE_EXHAUSTED "64
    sessions are open at once" for every Hello until a restart, as the receiver did before
    it forgot idle sessions)."""
    refused_at = None
    for i in range(ABANDONED_SESSIONS):
        try:
            sid = target.client.hello().session_id
        except grpc.RpcError as exc:
            refused_at = (i, exc.code() if isinstance(exc, grpc.Call) else None, str(exc))
            break
        # Some work, then the "sender" goes away without Finish.
        target.client.plan_ok(sid, [[directory_entry(1, b"d%03d" % i)]])
    assert refused_at is None, (
        f"Hello refused after {refused_at[0]} unfinished sessions: {refused_at}"
    )
    target.assert_still_serves()
