"""A hostile or broken peer against a real receiver process: nothing escapes its root.

Every test talks raw gRPC (tests/receiver/wire_client.py) to `python -m receiver` serving
tmp_path/"root", with an "outside" directory beside it that must stay as it was. Each
refusal is checked for its status code, for what it left on disk, and for a receiver
that still answers Hello afterwards.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import zstandard

from common import grpc_config
from common.content_hash import piece_hash
from common.pb.migrate.v1 import receiver_pb2 as pb
from tests.receiver.faults_wire import MAX_RECEIVER_HWM_BYTES, MiB, Target, live_names, snapshot
from tests.receiver.wire_client import (
    MTIME_NS,
    RPC_TIMEOUT_S,
    Run,
    bearer,
    collect,
    data_frame,
    directory_entry,
    fifo_entry,
    file_end,
    file_entry,
    hardlink_entry,
    symlink_entry,
    whole_file,
)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the receiver must run as root")

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BOMB_BYTES = 1 << 30
# Content is recognisable in the outside directory if anything ever leaks there.
SECRET = b"written through a symlink"


def _plan_then_send(target: Target, content: bytes) -> tuple[str, int]:
    """A session with file `f` planned for sending `content`; (session, file id)."""
    sid = target.session()
    [decision] = target.client.plan_ok(sid, [[file_entry(7, b"f", len(content))]])
    assert decision.action == pb.ACTION_SEND
    return sid, 7


# -- a. paths the contract forbids --------------------------------------------------------

BAD_PATHS = [
    pytest.param(b"..", id="dotdot"),
    pytest.param(b"../outside/x", id="dotdot-escape"),
    pytest.param(b"a/../../outside/x", id="dotdot-inner"),
    pytest.param(b"/etc/x", id="absolute"),
    pytest.param(b"/", id="slash"),
    pytest.param(b"a\0b", id="nul"),
    pytest.param(b"a//b", id="empty-component"),
    pytest.param(b"a/", id="trailing-slash"),
    pytest.param(b".", id="dot"),
    pytest.param(b"a/./b", id="dot-inner"),
    pytest.param(b"x" * 256, id="component-256"),
    pytest.param(b"a/" + b"y" * 256, id="inner-component-256"),
]

ENTRY_MAKERS: dict[str, Callable[[bytes], pb.Entry]] = {
    "file": lambda path: file_entry(2, path, 5),
    "directory": lambda path: directory_entry(2, path),
    "symlink": lambda path: symlink_entry(2, path, b"a"),
    "fifo": lambda path: fifo_entry(2, path),
    "hardlink": lambda path: hardlink_entry(2, path, b"a/f"),
}


@pytest.mark.parametrize("path", BAD_PATHS)
def test_a_forbidden_path_is_refused_for_every_kind(target: Target, path: bytes) -> None:
    sid = target.session()
    # A real directory `a`, so a path through it would reach the filesystem unless refused.
    target.client.plan_ok(sid, [[directory_entry(1, b"a")]])
    before = snapshot(target.root)
    for kind, make in ENTRY_MAKERS.items():
        outcome = target.client.plan(sid, [[make(path)]])
        assert outcome.code == INVALID, f"{kind} at {path!r}: {outcome.code} {outcome.details}"
    assert snapshot(target.root) == before
    target.assert_outside_untouched()
    target.assert_still_serves()


def test_a_batch_with_one_forbidden_path_is_refused_whole(target: Target) -> None:
    """The contract: a path that breaks it is refused "and nothing is written"; BadRequest
    says the same of the whole request. Entries before the bad one in its batch count."""
    sid = target.session()
    before = snapshot(target.root)
    batch = [
        directory_entry(1, b"made-before"),
        symlink_entry(2, b"link-before", b"made-before"),
        fifo_entry(3, b"fifo-before"),
        file_entry(4, b"../outside/x", 5),
    ]
    outcome = target.client.plan(sid, [batch])
    assert outcome.code == INVALID, outcome.details
    target.assert_outside_untouched()
    target.assert_still_serves()
    assert snapshot(target.root) == before, "a refused batch left entries behind"


@pytest.mark.parametrize(
    "depth",
    [pytest.param(1500, id="deeper-than-recursion-limit"), pytest.param(4097, id="over-max-depth")],
)
def test_a_very_deep_path_is_refused_or_fails_alone(target: Target, depth: int) -> None:
    """A path of many one-byte components: within split_relpath's MAX_DEPTH it names
    directories that do not exist (ACTION_FAILED), beyond it INVALID_ARGUMENT. Either
    way a clear answer, never an unhandled exception."""
    sid = target.session()
    path = b"/".join([b"d"] * depth)
    outcome = target.client.plan(sid, [[file_entry(1, path, 5)]])
    if outcome.code == grpc.StatusCode.OK:
        [decision] = outcome.responses[0].decisions
        assert decision.action == pb.ACTION_FAILED
    else:
        assert outcome.code == INVALID, f"{outcome.code}: {outcome.details}"
    assert snapshot(target.root) == {}
    target.assert_still_serves()


@pytest.mark.parametrize("kind", ["fifo", "symlink", "directory"])
def test_a_xattr_name_with_nul_is_refused(target: Target, kind: str) -> None:
    """Linux cannot name an attribute with NUL; such an entry breaks the contract like a
    path with NUL does. It must be refused or fail alone, at Plan or at Finish."""
    entry = ENTRY_MAKERS[kind](b"n")
    entry.xattrs.add(name=b"user.a\0b", value=b"v")
    sid = target.session()
    outcome = target.client.plan(sid, [[entry]])
    if outcome.code == grpc.StatusCode.OK:
        [decision] = outcome.responses[0].decisions
        assert decision.action in (pb.ACTION_FAILED, pb.ACTION_DONE)
        try:
            finished = target.client.finish(sid)
        except grpc.RpcError as exc:
            pytest.fail(f"Finish: {exc.code()}: {exc.details()}")
        assert decision.action == pb.ACTION_FAILED or finished.failed == 1
    else:
        assert outcome.code == INVALID, f"{outcome.code}: {outcome.details}"
    target.assert_outside_untouched()
    target.assert_still_serves()


# -- b. symlinks planted earlier in the same session ---------------------------------------

SYMLINK_TARGETS: dict[str, Callable[[Path], bytes]] = {
    "absolute": lambda outside: os.fsencode(outside),
    "relative": lambda outside: b"../outside",
    "dangling": lambda outside: b"../outside/missing",
}


@pytest.mark.parametrize("how", SYMLINK_TARGETS)
def test_b_symlink_planted_earlier_is_never_followed(target: Target, how: str) -> None:
    sid = target.session()
    planted = target.client.plan_ok(
        sid, [[symlink_entry(1, b"evil", SYMLINK_TARGETS[how](target.outside))]]
    )
    assert [d.action for d in planted] == [pb.ACTION_DONE]
    through = [
        file_entry(10, b"evil/pwned", len(SECRET)),
        directory_entry(11, b"evil/sub"),
        symlink_entry(12, b"evil/l", b"/etc/passwd"),
        fifo_entry(13, b"evil/fifo"),
        file_entry(14, b"evil/missing/deeper", len(SECRET)),
        hardlink_entry(15, b"evil/h", b"evil"),
    ]
    outcome = target.client.plan(sid, [[file_entry(9, b"harmless", 0)], through])
    if outcome.code == grpc.StatusCode.OK:
        decisions = {d.id: d for d in outcome.responses[1].decisions}
        for entry in through[:-1]:  # the hardlink is deferred to Finish, DONE is right
            assert decisions[entry.id].action == pb.ACTION_FAILED, entry.path
            assert decisions[entry.id].error
    else:
        assert outcome.code in (INVALID, grpc.StatusCode.FAILED_PRECONDITION), outcome.details
    target.assert_outside_untouched()

    # The refused files were never planned for sending, so their content is refused too.
    sent = target.client.transfer(sid, [whole_file(10, SECRET)])
    assert sent.code == INVALID, sent.details
    target.assert_outside_untouched()

    target.client.finish(sid)
    target.assert_outside_untouched()
    assert os.readlink(target.root / "evil") == os.fsdecode(SYMLINK_TARGETS[how](target.outside))
    target.assert_still_serves()


def test_b_directory_replaced_by_symlink_in_later_batch(target: Target) -> None:
    """A directory the Plan stream already resolved (and cached) turns into a symlink."""
    sid = target.session()
    decisions = target.client.plan_ok(
        sid,
        [
            [directory_entry(1, b"d"), file_entry(2, b"d/f", 0)],
            [symlink_entry(3, b"d", os.fsencode(target.outside))],
            [file_entry(4, b"d/g", 0), directory_entry(5, b"d/sub"), fifo_entry(6, b"d/p")],
        ],
    )
    assert [d.action for d in decisions[-3:]] == [pb.ACTION_FAILED] * 3
    assert (target.root / "d").is_symlink()
    target.assert_outside_untouched()
    target.assert_still_serves()


def test_b_parent_replaced_by_symlink_after_file_was_planned(target: Target) -> None:
    """The file was planned for sending while `d` was a directory; its content arrives
    after `d` became a symlink to outside. The content must not follow it, and the
    refusal must be a per-file error or a clear status (not an unhandled exception)."""
    sid = target.session()
    [_, send] = target.client.plan_ok(
        sid, [[directory_entry(1, b"d"), file_entry(2, b"d/f", len(SECRET))]]
    )
    assert send.action == pb.ACTION_SEND
    target.client.plan_ok(sid, [[symlink_entry(3, b"d", os.fsencode(target.outside))]])

    outcome = target.client.transfer(sid, [whole_file(2, SECRET)])
    target.assert_outside_untouched()
    target.assert_still_serves()
    if outcome.code == grpc.StatusCode.OK:
        acks = [a for r in outcome.responses for a in r.acks if a.file_id == 2]
        assert acks and all(a.error and not a.committed for a in acks), acks
    else:
        assert outcome.code in (INVALID, grpc.StatusCode.FAILED_PRECONDITION), (
            f"{outcome.code}: {outcome.details}"
        )


def test_b_finish_does_not_apply_directory_metadata_through_a_symlink(target: Target) -> None:
    sid = target.session()
    target.client.plan_ok(sid, [[directory_entry(1, b"d", mode=0o777)]])
    target.client.plan_ok(sid, [[symlink_entry(2, b"d", os.fsencode(target.outside))]])
    before = os.stat(target.outside)
    target.client.finish(sid)
    after = os.stat(target.outside)
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)
    target.assert_outside_untouched()
    target.assert_still_serves()


# -- c. hardlinks ----------------------------------------------------------------------------

ESCAPING_LINK_TARGETS: dict[str, Callable[[Path], bytes]] = {
    "dotdot": lambda outside: b"../outside/x",
    "dotdot-inner": lambda outside: b"a/../../outside/x",
    "absolute": lambda outside: os.fsencode(outside / "x"),
    "nul": lambda outside: b"a\0x",
    "empty": lambda outside: b"",
}


@pytest.mark.parametrize("how", ESCAPING_LINK_TARGETS)
def test_c_hardlink_target_outside_the_root_is_refused(target: Target, how: str) -> None:
    (target.outside / "x").write_bytes(SECRET)
    sid = target.session()
    before = snapshot(target.root)
    outcome = target.client.plan(
        sid, [[hardlink_entry(1, b"h", ESCAPING_LINK_TARGETS[how](target.outside))]]
    )
    assert outcome.code == INVALID, outcome.details
    target.client.finish(sid)
    assert snapshot(target.root) == before
    assert os.stat(target.outside / "x").st_nlink == 1
    target.assert_still_serves()


def test_c_hardlink_through_symlinks_does_not_link_outside(target: Target) -> None:
    outside_file = target.outside / "x"
    outside_file.write_bytes(SECRET)
    sid = target.session()
    target.client.plan_ok(
        sid,
        [
            [
                symlink_entry(1, b"to-file", os.fsencode(outside_file)),
                symlink_entry(2, b"to-dir", os.fsencode(target.outside)),
                symlink_entry(3, b"to-dir-rel", b"../outside"),
            ],
            [
                hardlink_entry(10, b"h-file", b"to-file"),
                hardlink_entry(11, b"h-dir", b"to-dir/x"),
                hardlink_entry(12, b"h-dir-rel", b"to-dir-rel/x"),
            ],
        ],
    )
    finished = target.client.finish(sid)
    assert os.stat(outside_file).st_nlink == 1
    assert outside_file.read_bytes() == SECRET
    assert sorted(os.listdir(target.outside)) == ["x"]
    outside_inode = os.stat(outside_file).st_ino
    for entry in os.scandir(target.root):
        assert entry.inode() != outside_inode, entry.name
    assert finished.failed >= 1 or finished.hardlinks == 0
    target.assert_still_serves()


# -- d. the token ----------------------------------------------------------------------------

BAD_CREDENTIALS: dict[str, Callable[[str], tuple[tuple[str, str], ...]]] = {
    "missing": lambda token: (),
    "wrong": lambda token: tuple(bearer("x" * len(token))),
    "prefix-of-token": lambda token: tuple(bearer(token[:-1])),
    "token-plus-one": lambda token: tuple(bearer(token + "0")),
    "no-scheme": lambda token: (("authorization", token),),
    "other-scheme": lambda token: (("authorization", "Basic " + token),),
    "empty-bearer": lambda token: (("authorization", "Bearer "),),
    "other-key": lambda token: (("x-token", "Bearer " + token),),
}


class _Withheld(Iterator[object]):
    """A request stream that sends nothing until released: a receiver that answers
    UNAUTHENTICATED while it waits has refused before reading any message."""

    def __init__(self) -> None:
        self.released = threading.Event()

    def __next__(self) -> object:
        self.released.wait(RPC_TIMEOUT_S)
        raise StopIteration


def _call_code(
    stub_method: Callable[..., Any],
    streaming: bool,
    request: object,
    md: tuple[tuple[str, str], ...],
) -> grpc.StatusCode:
    if streaming:
        withheld = _Withheld()
        try:
            call = stub_method(withheld, metadata=md, timeout=RPC_TIMEOUT_S / 2)
            return collect(call).code
        finally:
            withheld.released.set()
    try:
        stub_method(request, metadata=md, timeout=RPC_TIMEOUT_S)
    except grpc.RpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


RPCS: dict[str, tuple[bool, object]] = {
    "Hello": (False, pb.HelloRequest(protocol_version=1)),
    "Plan": (True, None),
    "Transfer": (True, None),
    "Finish": (False, pb.FinishRequest()),
    "Status": (False, pb.StatusRequest()),
}


@pytest.mark.parametrize("rpc", RPCS)
def test_d_call_without_the_right_token_is_unauthenticated(target: Target, rpc: str) -> None:
    streaming, request = RPCS[rpc]
    method = getattr(target.client.stub, rpc)
    sid = target.session()
    if rpc == "Finish":
        request = pb.FinishRequest(session_id=sid)
    for name, credentials in BAD_CREDENTIALS.items():
        code = _call_code(method, streaming, request, credentials(target.process.token))
        assert code == grpc.StatusCode.UNAUTHENTICATED, f"{rpc} with {name} token: {code}"
    # The session the refused calls named is untouched: not finished, nothing planned.
    status = target.client.stub.Status(
        pb.StatusRequest(session_id=sid), metadata=target.client.auth, timeout=RPC_TIMEOUT_S
    )
    assert (status.entries_planned, status.finished) == (0, False)
    assert snapshot(target.root) == {}
    target.assert_still_serves()


def test_d_transfer_with_content_and_wrong_token_writes_nothing(target: Target) -> None:
    sid, file_id = _plan_then_send(target, SECRET)
    request = whole_file(file_id, SECRET)
    request.session_id = sid
    call = target.client.stub.Transfer(
        iter([request]), metadata=bearer("wrong"), timeout=RPC_TIMEOUT_S
    )
    assert collect(call).code == grpc.StatusCode.UNAUTHENTICATED
    assert live_names(target.root) == set()
    # The file still waits for its content: the refused stream did not consume it.
    assert target.client.transfer(sid, [whole_file(file_id, SECRET)]).code == grpc.StatusCode.OK
    assert (target.root / "f").read_bytes() == SECRET
    target.assert_still_serves()


# -- e. content that fails its hashes ------------------------------------------------------


def test_e_piece_hash_mismatch_is_data_loss(target: Target) -> None:
    sid = target.session()
    target.client.plan_ok(
        sid, [[file_entry(1, b"good", len(SECRET)), file_entry(2, b"bad", len(SECRET))]]
    )
    frame = data_frame([Run(1, 0, SECRET), Run(2, 0, SECRET)])
    frame.pieces[1].xxh3_64 ^= 1
    request = pb.TransferRequest(frame=frame, ends=[file_end(1, SECRET), file_end(2, SECRET)])
    outcome = target.client.transfer(sid, [request])
    assert outcome.code == grpc.StatusCode.DATA_LOSS, outcome.details
    assert live_names(target.root) == set(), "a file of the refused frame is at its live name"
    target.assert_outside_untouched()
    target.assert_still_serves()


def test_e_whole_file_digest_mismatch_is_data_loss(target: Target) -> None:
    sid, file_id = _plan_then_send(target, SECRET)
    request = pb.TransferRequest(
        frame=data_frame([Run(file_id, 0, SECRET)]),
        ends=[file_end(file_id, SECRET.upper())],
    )
    outcome = target.client.transfer(sid, [request])
    assert outcome.code == grpc.StatusCode.DATA_LOSS, outcome.details
    assert live_names(target.root) == set()
    target.assert_outside_untouched()
    target.assert_still_serves()


def test_e_corrupt_zstd_payload_is_data_loss(target: Target) -> None:
    content = b"compressible " * 1000
    sid, file_id = _plan_then_send(target, content)
    frame = data_frame([Run(file_id, 0, content)])
    assert frame.encoding in (pb.ENCODING_ZSTD, pb.ENCODING_ZSTD_STREAM_START)
    frame.payload = frame.payload[:8] + bytes(len(frame.payload) - 8)
    outcome = target.client.transfer(sid, [pb.TransferRequest(frame=frame)])
    assert outcome.code == grpc.StatusCode.DATA_LOSS, outcome.details
    assert live_names(target.root) == set()
    target.assert_still_serves()


def test_e_good_file_still_commits(target: Target) -> None:
    """The control for the tests above: the same client, honest, gets a committed file."""
    sid, file_id = _plan_then_send(target, SECRET)
    outcome = target.client.transfer(sid, [whole_file(file_id, SECRET)])
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    assert any(a.committed for r in outcome.responses for a in r.acks if a.file_id == file_id)
    assert (target.root / "f").read_bytes() == SECRET


# -- f. decompression bombs and oversized frames -------------------------------------------

REFUSED_FRAME = (grpc.StatusCode.DATA_LOSS, INVALID, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _zstd_bomb(raw_bytes: int, *, size_in_header: bool) -> bytes:
    """One zstd frame of `raw_bytes` zeros, built a MiB at a time (about 32 KiB per GiB)."""
    compressor = zstandard.ZstdCompressor(level=1, write_content_size=size_in_header)
    stream = compressor.compressobj(size=raw_bytes if size_in_header else -1)
    chunk = bytes(MiB)
    parts = [stream.compress(chunk) for _ in range(raw_bytes // MiB)]
    return b"".join([*parts, stream.flush()])


@pytest.mark.parametrize("size_in_header", [True, False], ids=["size-in-header", "no-size"])
def test_f_decompression_bomb_is_refused_with_flat_memory(
    target: Target, size_in_header: bool
) -> None:
    declared = 1 * MiB
    sid, file_id = _plan_then_send(target, bytes(declared))
    frame = pb.DataFrame(
        encoding=pb.ENCODING_ZSTD,
        payload=_zstd_bomb(BOMB_BYTES, size_in_header=size_in_header),
        raw_size=declared,
        pieces=[
            pb.Piece(
                file_id=file_id, offset=0, length=declared, xxh3_64=piece_hash(bytes(declared))
            )
        ],
    )
    outcome = target.client.transfer(sid, [pb.TransferRequest(frame=frame)])
    assert outcome.code in REFUSED_FRAME, f"{outcome.code}: {outcome.details}"
    target.assert_still_serves()
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES
    assert live_names(target.root) == set()
    target.assert_outside_untouched()


def test_f_frame_over_max_raw_size_is_refused(target: Target) -> None:
    limit = target.client.hello().max_frame_raw_bytes
    assert limit == grpc_config.MAX_FRAME_RAW_BYTES
    sid, file_id = _plan_then_send(target, bytes(limit + 1))
    outcome = target.client.transfer(
        sid, [pb.TransferRequest(frame=data_frame([Run(file_id, 0, bytes(limit + 1))]))]
    )
    assert outcome.code in REFUSED_FRAME, f"{outcome.code}: {outcome.details}"
    target.assert_still_serves()
    assert target.peak_rss_bytes() < MAX_RECEIVER_HWM_BYTES
    assert live_names(target.root) == set()


def test_f_frame_at_max_raw_size_is_accepted(target: Target) -> None:
    """The control: exactly max_frame_raw_bytes is allowed."""
    limit = target.client.hello().max_frame_raw_bytes
    content = bytes(limit)
    sid, file_id = _plan_then_send(target, content)
    outcome = target.client.transfer(sid, [whole_file(file_id, content)])
    assert outcome.code == grpc.StatusCode.OK, outcome.details
    assert (target.root / "f").stat().st_size == limit


# -- g. pieces that break the order or the planned size -----------------------------------

SIZE = 8192
HALF = SIZE // 2
A, B = b"a" * HALF, b"b" * HALF


def _frames(*frames: list[Run]) -> list[pb.TransferRequest]:
    return [pb.TransferRequest(frame=data_frame(runs)) for runs in frames]


def _sum_mismatch() -> list[pb.TransferRequest]:
    frame = data_frame([Run(7, 0, A)])
    frame.raw_size += 1
    return [pb.TransferRequest(frame=frame)]


BAD_PIECES: dict[str, Callable[[], list[pb.TransferRequest]]] = {
    "backwards-across-frames": lambda: _frames([Run(7, HALF, B)], [Run(7, 0, A)]),
    "backwards-in-one-frame": lambda: _frames([Run(7, HALF, B), Run(7, 0, A)]),
    "overlapping": lambda: _frames([Run(7, 0, A)], [Run(7, HALF - 1, B)]),
    "repeated": lambda: _frames([Run(7, 0, A)], [Run(7, 0, A)]),
    "past-planned-size": lambda: _frames([Run(7, 0, A + B + b"c")]),
    "starting-past-planned-size": lambda: _frames([Run(7, SIZE, b"c")]),
    "far-past-planned-size": lambda: _frames([Run(7, 1 << 62, b"c")]),
    "end-with-other-size": lambda: [
        pb.TransferRequest(frame=data_frame([Run(7, 0, A + B)]), ends=[file_end(7, A + B + b"c")])
    ],
    "pieces-do-not-add-up": _sum_mismatch,
}


@pytest.mark.parametrize("case", BAD_PIECES)
def test_g_pieces_out_of_order_or_past_size_are_invalid(target: Target, case: str) -> None:
    sid, file_id = _plan_then_send(target, A + B)
    assert file_id == 7
    outcome = target.client.transfer(sid, BAD_PIECES[case]())
    assert outcome.code == INVALID, f"{outcome.code}: {outcome.details}"
    assert live_names(target.root) == set()
    target.assert_outside_untouched()
    target.assert_still_serves()


# -- h. content for files that are not waiting for it -------------------------------------


def _plan_unsendable(target: Target) -> tuple[str, dict[str, int]]:
    """A session holding one entry of every kind that must not take content; their ids."""
    existing = target.root / "same"
    existing.write_bytes(SECRET)
    os.chmod(existing, 0o644)
    os.utime(existing, ns=(MTIME_NS, MTIME_NS))
    sid = target.session()
    decisions = target.client.plan_ok(
        sid,
        [
            [
                file_entry(1, b"same", len(SECRET)),
                directory_entry(2, b"dir"),
                symlink_entry(3, b"link", b"same"),
                file_entry(4, b"link/through", len(SECRET)),
                hardlink_entry(5, b"hard", b"same"),
                fifo_entry(6, b"fifo"),
            ]
        ],
    )
    assert [d.action for d in decisions] == [
        pb.ACTION_SKIP,
        pb.ACTION_DONE,
        pb.ACTION_DONE,
        pb.ACTION_FAILED,
        pb.ACTION_DONE,
        pb.ACTION_DONE,
    ]
    ids = {"never-planned": 99, "skipped": 1, "directory": 2, "symlink": 3, "failed": 4}
    return sid, ids | {"hardlink": 5, "fifo": 6}


UNSENDABLE = ["never-planned", "skipped", "directory", "symlink", "failed", "hardlink", "fifo"]


@pytest.mark.parametrize("message", ["piece", "end"])
def test_h_content_for_an_id_not_planned_for_sending_is_refused(
    target: Target, message: str
) -> None:
    sid, ids = _plan_unsendable(target)
    before = snapshot(target.root)
    for name in UNSENDABLE:
        request = whole_file(ids[name], SECRET)
        if message == "end":
            request.ClearField("frame")
        outcome = target.client.transfer(sid, [request])
        assert outcome.code == INVALID, f"{message} for {name}: {outcome.code} {outcome.details}"
    assert snapshot(target.root) == before
    assert (target.root / "same").read_bytes() == SECRET
    target.assert_outside_untouched()
    target.assert_still_serves()


def test_h_content_for_a_file_already_committed_is_refused(target: Target) -> None:
    sid, file_id = _plan_then_send(target, SECRET)
    assert target.client.transfer(sid, [whole_file(file_id, SECRET)]).code == grpc.StatusCode.OK
    again = target.client.transfer(sid, [whole_file(file_id, SECRET.upper())])
    assert again.code == INVALID, f"{again.code}: {again.details}"
    assert (target.root / "f").read_bytes() == SECRET
    target.assert_still_serves()


@pytest.mark.parametrize("then", ["piece", "end"])
def test_h_content_for_a_file_already_ended_on_the_stream_is_refused(
    target: Target, then: str
) -> None:
    """Before the sync group closes the ended file still waits to be published: a
    second piece or end for it must be refused as a contract breach, like any other."""
    sid, file_id = _plan_then_send(target, SECRET)
    second = (
        pb.TransferRequest(frame=data_frame([Run(file_id, 0, SECRET)]))
        if then == "piece"
        else pb.TransferRequest(ends=[file_end(file_id, SECRET)])
    )
    outcome = target.client.transfer(sid, [whole_file(file_id, SECRET), second])
    assert outcome.code == INVALID, f"{outcome.code}: {outcome.details}"
    assert live_names(target.root) in (set(), {"f"})
    if (target.root / "f").exists():
        assert (target.root / "f").read_bytes() == SECRET
    target.assert_still_serves()


def test_h_transfer_for_unknown_session_is_not_found(target: Target) -> None:
    _plan_then_send(target, SECRET)
    outcome = target.client.transfer("no-such-session", [whole_file(7, SECRET)])
    assert outcome.code == grpc.StatusCode.NOT_FOUND, outcome.details
    assert live_names(target.root) == set()
    target.assert_still_serves()
