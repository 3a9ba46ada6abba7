"""Property-based fuzzing of the receiver's message handling, through a real receiver.

One receiver process serves `root` for the whole hypothesis run (state accumulates from one
example to the next, so a symlink planted by one example is in the way of the next). Each
example opens a session and sends random Plan entries (paths with `..`, `/`, NUL, long and
non-UTF-8 names; any kind, mode, owner, xattrs, link target), random Transfer frames
(encodings, sizes, pieces, hashes, restarts; some well formed), maybe Verify, and Finish.
After every call and every example:

- the call ended OK or with a documented status code, never UNKNOWN, INTERNAL or a deadline;
- nothing appeared outside the root (`outside` beside it stays empty, the directory holding
  both gains nothing) and no directory under the root really lies elsewhere;
- the receiver still opens a session for a new client.

One bound remains by design: accepted file sizes stay small, because the receiver hashes a
file's holes as zeros and a size near its 16 TiB bound takes minutes (sizes past the bound,
refused at once, are drawn). Bugs the search found, or that were found while writing it,
each have a plain test below or in test_limits.py (ids from 2**63 on, a FIFO at a file's
live name, an unreadable xattr in Verify, restarts not checked like planned entries).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import zstandard
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from common.content_hash import FileDigest, piece_hash
from common.pb.migrate.v1 import receiver_pb2 as pb
from tests.receiver.faults_wire import DOCUMENTED_CODES, Target, escapes, snapshot
from tests.receiver.wire_client import (
    MTIME_NS,
    Run,
    StreamOutcome,
    collect,
    data_frame,
    fifo_entry,
    file_end,
    file_entry,
    whole_file,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the receiver must run as root")

CALL_TIMEOUT_S = 10.0
# 200 fixed examples by default (deterministic, about 10 s). CVM_FUZZ_EXAMPLES=N runs N
# examples of a fresh random search instead, for a longer hunt.
EXAMPLES = int(os.environ.get("CVM_FUZZ_EXAMPLES", "200"))
DERANDOMIZE = "CVM_FUZZ_EXAMPLES" not in os.environ
KINDS = [k for k in pb.EntryKind.values()]


# -- strategies -----------------------------------------------------------------------------

# Names the contract allows, among them the awkward ones a real tree holds.
GOOD_NAMES = st.one_of(
    st.sampled_from([b"a", b"b", b"c", b"\xff\xfe", b"new\nline", b"sp ace", b"x" * 255, b"-"]),
    st.binary(min_size=1, max_size=8).map(
        lambda n: b"_" + n.replace(b"/", b"_").replace(b"\0", b"_")
    ),
)
# Names it forbids, or that sit right at a limit.
BAD_NAMES = st.sampled_from([b".", b"..", b"", b"y" * 256, b"a\0b"])
NAMES = st.one_of(GOOD_NAMES, BAD_NAMES)
# Device numbers whose opening is harmless: /dev/null, /dev/zero, and majors nothing here
# registers (240, "local/experimental use"), which fail with ENXIO.
SAFE_RDEVS = [0, os.makedev(1, 3), os.makedev(1, 5), os.makedev(240, 0), os.makedev(240, 7)]


GOOD_XATTR_NAMES = st.sampled_from(
    [
        b"user.a",
        b"user.b",
        b"trusted.t",
        b"security.capability",
        b"system.posix_acl_access",
        b"system.posix_acl_default",
        b"user." + b"n" * 250,
        b"nonamespace",
    ]
)
XATTR_NAMES = st.one_of(
    GOOD_XATTR_NAMES, st.sampled_from([b"", b"user.\0x", b"u" * 256]), st.binary(max_size=12)
)
UINT32 = st.integers(0, 2**32 - 1)
UINT64 = st.integers(0, 2**64 - 1)
ANY_ID = UINT64
INT64 = st.integers(-(2**63), 2**63 - 1)
IDS = st.one_of(st.integers(1, 8), ANY_ID)
# Small on purpose (see the module docstring), or past the receiver's 16 TiB bound.
SMALL_SIZES = st.one_of(st.integers(0, 4096), st.sampled_from([65536, 1 << 20]))
SIZES = st.one_of(SMALL_SIZES, st.sampled_from([(16 << 40) + 1, 2**63, 2**64 - 1]))
VALID_KINDS = [k for k in KINDS if k != pb.ENTRY_KIND_UNSPECIFIED]


@dataclass(frozen=True)
class Escapes:
    """Paths and link targets that point out of the root, for this run's `outside`."""

    paths: list[bytes]
    targets: list[bytes]


def escapes_for(outside: Path) -> Escapes:
    absolute = os.fsencode(outside)
    return Escapes(
        paths=[
            b"../outside/x",
            b"a/../../outside/x",
            absolute + b"/x",
            b"/",
            b"//",
            b"a//b",
            b"./a",
            b"a/.",
            b"a/../b",
            b"d/" * 5000 + b"x",
            b"../x",
            b"..",
        ],
        targets=[b"../outside", b"../../outside", absolute, b"/", b"", b"\0", b"x" * 5000, b".."],
    )


def paths(escape: Escapes, *, clean: bool) -> st.SearchStrategy[bytes]:
    good = st.lists(GOOD_NAMES, min_size=1, max_size=4).map(b"/".join)
    if clean:
        return good
    return st.one_of(
        good,
        st.lists(NAMES, max_size=4).map(b"/".join),
        st.lists(st.sampled_from([b"a", b"b", b".."]), min_size=1, max_size=5).map(b"/".join),
        st.sampled_from(escape.paths),
        st.binary(max_size=24),
    )


def entries(escape: Escapes, *, clean: bool = False) -> st.SearchStrategy[pb.Entry]:
    """Entries that keep the contract (`clean`: only their targets and values are hostile)
    or that may break it anywhere."""
    good_targets = st.one_of(
        st.sampled_from([t for t in escape.targets if t and b"\0" not in t and len(t) < 4096]),
        st.binary(min_size=1, max_size=16).map(lambda t: t.replace(b"\0", b"_")),
    )
    good_xattrs = st.builds(pb.Xattr, name=GOOD_XATTR_NAMES, value=st.binary(max_size=64))
    any_xattrs = st.builds(pb.Xattr, name=XATTR_NAMES, value=st.binary(max_size=64))
    return st.builds(
        pb.Entry,
        id=IDS,
        path=paths(escape, clean=clean),
        kind=st.sampled_from(VALID_KINDS) if clean else st.integers(0, 40),
        mode=st.integers(0, 0o7777) if clean else st.one_of(st.integers(0, 0o7777), UINT32),
        uid=st.one_of(st.integers(0, 70000), UINT32),
        gid=st.one_of(st.integers(0, 70000), UINT32),
        mtime_ns=st.one_of(st.just(MTIME_NS), INT64),
        size=SMALL_SIZES if clean else SIZES,
        link_target=(
            good_targets
            if clean
            else st.one_of(good_targets, st.binary(max_size=16), st.sampled_from(escape.targets))
        ),
        rdev=st.sampled_from(SAFE_RDEVS),
        xattrs=st.lists(good_xattrs if clean else any_xattrs, max_size=3),
        ctime_ns=st.one_of(st.just(0), INT64),
    )


def batches_of_entries(escape: Escapes) -> st.SearchStrategy[list[pb.Entry]]:
    """A Plan batch: all entries keeping the contract (so the batch gets decided), or any."""
    return st.one_of(
        st.lists(entries(escape, clean=True), min_size=1, max_size=5),
        st.lists(entries(escape), max_size=4),
    )


@st.composite
def random_frame(draw: st.DrawFn, ids: Sequence[int]) -> pb.DataFrame:
    """A frame that may break any rule: pieces, sizes, hashes, encoding."""
    runs = draw(st.lists(st.binary(max_size=3000), max_size=3))
    pieces = []
    position_ids = st.one_of(st.sampled_from(ids), ANY_ID)
    for data in runs:
        pieces.append(
            pb.Piece(
                file_id=draw(position_ids),
                offset=draw(st.one_of(st.integers(0, 5000), UINT64)),
                length=len(data) if draw(st.integers(0, 3)) else draw(UINT32),
                xxh3_64=piece_hash(data) if draw(st.integers(0, 3)) else draw(UINT64),
            )
        )
    raw = b"".join(runs)
    encoding = draw(
        st.sampled_from([pb.ENCODING_RAW, pb.ENCODING_ZSTD, pb.ENCODING_UNSPECIFIED, 9])
    )
    how = draw(st.integers(0, 3))
    if how == 0:
        payload = draw(st.binary(max_size=200))
    elif encoding == pb.ENCODING_ZSTD:
        payload = zstandard.ZstdCompressor().compress(raw)
    else:
        payload = raw
    raw_size = len(raw) if draw(st.integers(0, 3)) else draw(UINT32)
    frame = pb.DataFrame(payload=payload, raw_size=raw_size, pieces=pieces)
    frame.encoding = encoding  # type: ignore[assignment]  # 9 is no Encoding: on purpose
    return frame


@st.composite
def transfer_requests(
    draw: st.DrawFn, sent: Sequence[pb.Entry], escape: Escapes
) -> list[pb.TransferRequest]:
    """Requests about the entries `sent` in Plan: arbitrary messages, and well-formed whole
    files (which the receiver takes if it asked for that file).

    What is drawn depends only on `sent`, never on the receiver's answers: its state carries
    over from example to example, and hypothesis must be able to replay an example."""
    ids = [e.id for e in sent] or [1]
    files = [e for e in sent if e.kind == pb.ENTRY_KIND_FILE and e.size <= 1 << 20]
    files = files or [file_entry(1, b"a", 3)]
    requests = []
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.integers(0, 4)) <= 1:
            entry = draw(st.sampled_from(files))
            seed = draw(st.binary(min_size=1, max_size=8))
            content = (seed * (entry.size // len(seed) + 1))[: entry.size]
            frame = data_frame([Run(entry.id, 0, content)]) if content else None
            requests.append(pb.TransferRequest(frame=frame, ends=[file_end(entry.id, content)]))
            continue
        request = pb.TransferRequest()
        if draw(st.booleans()):
            request.frame.CopyFrom(draw(random_frame(ids)))
        for _ in range(draw(st.integers(0, 2))):
            digest = FileDigest()
            digest.update_at(0, draw(st.binary(max_size=64)))
            request.ends.append(
                pb.FileEnd(
                    file_id=draw(st.one_of(st.sampled_from(ids), ANY_ID)),
                    size=draw(st.one_of(SMALL_SIZES, st.sampled_from([e.size for e in files]))),
                    xxh3_128=digest.digest() if draw(st.booleans()) else draw(st.binary()),
                    unchanged=draw(st.booleans()),
                )
            )
        request.abandoned_file_ids.extend(draw(st.lists(IDS, max_size=2)))
        if draw(st.integers(0, 4)) == 0:
            restart = draw(entries(escape))
            if draw(st.booleans()):
                like = draw(st.sampled_from(files))
                restart.id, restart.path = like.id, like.path
            request.restarts.append(restart)
        requests.append(request)
    return requests


# -- checks ---------------------------------------------------------------------------------


def _assert_documented(what: str, code: grpc.StatusCode, details: str) -> None:
    assert code in DOCUMENTED_CODES, f"{what} ended {code.name}: {details}"


def _stamp(session_id: str, requests: list[pb.TransferRequest]) -> list[pb.TransferRequest]:
    if requests:
        requests[0].session_id = session_id
    else:
        requests = [pb.TransferRequest(session_id=session_id)]
    return requests


@dataclass
class Example:
    target: Target
    neighbours: set[str]

    def stream(self, method: str, requests: Sequence[object]) -> StreamOutcome[object]:
        client = self.target.client
        call = getattr(client.stub, method)(
            iter(requests), metadata=client.auth, timeout=CALL_TIMEOUT_S
        )
        outcome = collect(call)
        event(f"{method} {outcome.code.name}")  # pytest --hypothesis-show-statistics
        _assert_documented(method, outcome.code, outcome.details)
        return outcome

    def finish(self, session_id: str) -> None:
        client = self.target.client
        request = pb.FinishRequest(session_id=session_id)
        try:
            client.stub.Finish(request, metadata=client.auth, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            assert isinstance(exc, grpc.Call)
            _assert_documented("Finish", exc.code(), exc.details() or "")

    def check_invariants(self) -> None:
        self.target.assert_outside_untouched()
        assert escapes(self.target.root) == []
        beside = set(os.listdir(self.target.root.parent))
        assert beside == self.neighbours, f"new entries beside the root: {beside}"
        self.finish(self.target.assert_still_serves(timeout_s=CALL_TIMEOUT_S))


def _exercise(run: Example, data: st.DataObject, escape: Escapes, real_session: str) -> None:
    """Plan, Transfer, maybe Verify, in the session `real_session` (or one that is not)."""
    session_id = real_session
    if data.draw(st.integers(0, 15), label="unknown session") == 7:
        session_id = data.draw(st.text(max_size=20), label="bogus session")

    batches = data.draw(st.lists(batches_of_entries(escape), min_size=1, max_size=2), label="plan")
    plan = run.stream(
        "Plan",
        [
            pb.PlanRequest(session_id=session_id if i == 0 else "", entries=batch)
            for i, batch in enumerate(batches)
        ],
    )
    del plan  # its answers may only shape what is sent, never what is drawn
    sent = [e for batch in batches for e in batch]
    requests = data.draw(transfer_requests(sent, escape), label="transfer")
    run.stream("Transfer", _stamp(session_id, requests))

    if data.draw(st.booleans(), label="verify"):
        verify = [pb.VerifyRequest(session_id=session_id, entries=batch) for batch in batches]
        run.stream("Verify", verify)
    if session_id != real_session:
        run.finish(session_id)


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=DERANDOMIZE,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
@given(data=st.data())
def test_random_messages_end_in_documented_codes_and_never_escape(
    target: Target, data: st.DataObject
) -> None:
    escape = escapes_for(target.outside)
    run = Example(target, {"root", "outside", "state"})
    client = target.client

    rules = data.draw(
        st.one_of(
            st.just([]),
            st.lists(
                st.one_of(st.sampled_from([b"- /a", b"+ b/", b"!", b"- *"]), st.binary()),
                max_size=2,
            ),
        ),
        label="exclude rules",
    )
    hello = pb.HelloRequest(
        protocol_version=1,
        exclude_rules=rules,
        mirror_deletions=data.draw(st.booleans(), label="mirror"),
        compare_content=data.draw(st.booleans(), label="compare"),
    )
    try:
        opened = client.stub.Hello(hello, metadata=client.auth, timeout=CALL_TIMEOUT_S)
        real_session = opened.session_id
    except grpc.RpcError as exc:
        assert isinstance(exc, grpc.Call)
        _assert_documented("Hello", exc.code(), exc.details() or "")
        real_session = client.hello().session_id
    try:
        _exercise(run, data, escape, real_session)
    finally:
        # Finished even when the example fails, as a sender would: the receiver keeps 64
        # sessions (test_limits.py::test_sessions_never_finished_do_not_lock_out_new_senders).
        run.finish(real_session)
    run.check_invariants()


# -- found while writing the fuzzer ---------------------------------------------------------


def test_a_fifo_at_a_planned_files_live_name_does_not_hang_the_plan(target: Target) -> None:
    """The target holds a FIFO where the source now has a regular file (found while writing
    the fuzzer, which plans both at one path in two sessions).

    Planning the file looks for a live version to offer a delta against. It used to open
    whatever was there for reading without O_NONBLOCK (receiver/tree.py,
    TreeWriter.live_file), which blocks on a FIFO until some writer opens it: the Plan never
    answered, its worker thread never ended, and the receiver no longer exited on SIGTERM;
    a device node there was opened for reading as well.
    """
    sid = target.session()
    assert target.client.plan_ok(sid, [[fifo_entry(1, b"p")]])[0].action == pb.ACTION_DONE
    sid = target.session()
    started = time.monotonic()
    outcome = target.client.plan(sid, [[file_entry(2, b"p", 10)]])
    took = time.monotonic() - started
    assert outcome.code == grpc.StatusCode.OK, f"{outcome.code.name} after {took:.1f} s"
    [decision] = [d for r in outcome.responses for d in r.decisions]
    assert decision.action == pb.ACTION_SEND
    sent = target.client.transfer(sid, [whole_file(2, b"0123456789")])
    assert sent.code == grpc.StatusCode.OK, sent.details
    assert (target.root / "p").read_bytes() == b"0123456789"
    assert snapshot(target.outside) == {}


def test_verify_of_an_unreadable_xattr_ends_in_a_documented_code(target: Target) -> None:
    """A directory planned with an empty security.capability: setxattr takes the value, but
    reading it back fails with EINVAL. Verify read xattrs (receiver/verify.py, Checker ->
    _xattrs_at -> receiver/metadata.py read_xattrs) without catching OSError, so the stream
    ended UNKNOWN ("Exception iterating responses") instead of reporting a difference; any
    OS error while reading the target (EIO, ENOTSUP on a filesystem without xattrs) did
    the same. (Found by the fuzzer.)"""
    entry = pb.Entry(
        id=1,
        path=b"d",
        kind=pb.ENTRY_KIND_DIRECTORY,
        mode=0o755,
        mtime_ns=MTIME_NS,
        xattrs=[pb.Xattr(name=b"security.capability", value=b"")],
    )
    sid = target.session()
    target.client.plan_ok(sid, [[entry]])
    target.client.finish(sid)
    sid = target.session()
    call = target.client.stub.Verify(
        iter([pb.VerifyRequest(session_id=sid, entries=[entry])]),
        metadata=target.client.auth,
        timeout=CALL_TIMEOUT_S,
    )
    outcome = collect(call)
    assert outcome.code in DOCUMENTED_CODES, f"{outcome.code.name}: {outcome.details}"
    target.assert_still_serves()


RESTART_BREAKS = {
    "xattr-name-with-nul": lambda e: e.xattrs.append(pb.Xattr(name=b"user.\0x", value=b"v")),
    "mode-with-type-bits": lambda e: setattr(e, "mode", 0o170644),
    "size-past-the-bound": lambda e: setattr(e, "size", (16 << 40) + 1),
}


@pytest.mark.parametrize("how", RESTART_BREAKS)
def test_a_restart_is_held_to_the_rules_of_a_planned_entry(target: Target, how: str) -> None:
    """TransferRequest.restarts carries a whole new Entry for a file being sent ("the source
    changed while read"). receiver/incoming.py, IncomingStream._restart, used to check only
    its path and kind, not what Plan checks: an xattr name with NUL ended the stream UNKNOWN
    (ValueError from os.setxattr), and the size bound was skipped (see test_limits.py).
    (Found while fuzzing restarts.)"""
    sid = target.session()
    [decision] = target.client.plan_ok(sid, [[file_entry(1, b"r", 3)]])
    assert decision.action == pb.ACTION_SEND
    changed = file_entry(1, b"r", 3)
    RESTART_BREAKS[how](changed)
    outcome = target.client.transfer(
        sid, [pb.TransferRequest(restarts=[changed]), whole_file(1, b"abc")]
    )
    assert outcome.code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.OK), (
        f"{outcome.code.name}: {outcome.details}"
    )
    if outcome.code == grpc.StatusCode.OK:  # then the file failed alone, or is whole
        acks = [a for r in outcome.responses for a in r.acks if a.file_id == 1]
        assert acks and (acks[-1].error or acks[-1].committed), acks
    target.assert_still_serves()
