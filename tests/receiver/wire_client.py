"""A raw client of the receiver's wire contract, for tests that send what no sender would.

It builds entries, frames and file ends the way the contract describes them
(proto/migrate/v1/receiver.proto) and lets a test bend any of them; streams come back
as the responses received plus the status they ended with, never as an exception.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

import grpc

from common import grpc_config
from common.content_hash import FileDigest, piece_hash
from common.frame_codec import FrameEncoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc

# Long enough for a loaded two-core machine, short enough that a receiver which waits
# for a message it should never read fails the test instead of hanging it.
RPC_TIMEOUT_S = 20.0
# Any fixed time: these tests never compare against the clock.
MTIME_NS = 1_700_000_000_123_456_789

Metadata = Sequence[tuple[str, str]]
Response = TypeVar("Response")


def bearer(token: str) -> Metadata:
    """The `authorization` metadata the receiver expects for `token`."""
    return ((grpc_config.AUTH_METADATA_KEY, grpc_config.AUTH_SCHEME + token),)


# -- entries ------------------------------------------------------------------------------


def file_entry(entry_id: int, path: bytes, size: int, *, mode: int = 0o644) -> pb.Entry:
    return pb.Entry(
        id=entry_id, path=path, kind=pb.ENTRY_KIND_FILE, mode=mode, size=size, mtime_ns=MTIME_NS
    )


def directory_entry(entry_id: int, path: bytes, *, mode: int = 0o755) -> pb.Entry:
    return pb.Entry(
        id=entry_id, path=path, kind=pb.ENTRY_KIND_DIRECTORY, mode=mode, mtime_ns=MTIME_NS
    )


def symlink_entry(entry_id: int, path: bytes, target: bytes) -> pb.Entry:
    return pb.Entry(
        id=entry_id,
        path=path,
        kind=pb.ENTRY_KIND_SYMLINK,
        mode=0o777,
        link_target=target,
        mtime_ns=MTIME_NS,
    )


def fifo_entry(entry_id: int, path: bytes) -> pb.Entry:
    return pb.Entry(id=entry_id, path=path, kind=pb.ENTRY_KIND_FIFO, mode=0o600, mtime_ns=MTIME_NS)


def hardlink_entry(entry_id: int, path: bytes, existing: bytes) -> pb.Entry:
    return pb.Entry(
        id=entry_id, path=path, kind=pb.ENTRY_KIND_HARDLINK, link_target=existing, mtime_ns=MTIME_NS
    )


# -- content ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """Bytes of one file at one offset: one Piece of a frame."""

    file_id: int
    offset: int
    data: bytes


def data_frame(runs: Sequence[Run], *, level: int = 3) -> pb.DataFrame:
    """A correct frame carrying `runs`, compressed when that pays, as a sender builds it."""
    raw = b"".join(run.data for run in runs)
    encoding, payload = FrameEncoder(level).encode(raw)
    return pb.DataFrame(
        encoding=encoding,
        payload=payload,
        raw_size=len(raw),
        pieces=[
            pb.Piece(
                file_id=run.file_id,
                offset=run.offset,
                length=len(run.data),
                xxh3_64=piece_hash(run.data),
            )
            for run in runs
        ],
    )


def file_end(file_id: int, content: bytes) -> pb.FileEnd:
    """The end of a file whose whole content is `content`."""
    digest = FileDigest()
    digest.update_at(0, content)
    return pb.FileEnd(file_id=file_id, size=len(content), xxh3_128=digest.digest())


def whole_file(file_id: int, content: bytes) -> pb.TransferRequest:
    """One message carrying a whole small file and its end."""
    return pb.TransferRequest(
        frame=data_frame([Run(file_id, 0, content)]), ends=[file_end(file_id, content)]
    )


# -- calls --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StreamOutcome(Generic[Response]):
    """What a streaming call answered before it ended, and how it ended."""

    responses: list[Response]
    code: grpc.StatusCode
    details: str


def collect(call: Iterator[Response]) -> StreamOutcome[Response]:
    """Drain a response stream; an error status becomes part of the outcome."""
    responses: list[Response] = []
    try:
        for response in call:
            responses.append(response)
    except grpc.RpcError as exc:
        return StreamOutcome(responses, exc.code(), exc.details() or "")
    return StreamOutcome(responses, grpc.StatusCode.OK, "")


def _stamp_first(
    session_id: str, requests: Iterable[pb.TransferRequest]
) -> Iterator[pb.TransferRequest]:
    for i, request in enumerate(requests):
        if i == 0:
            stamped = pb.TransferRequest()
            stamped.CopyFrom(request)
            stamped.session_id = session_id
            request = stamped
        yield request


class WireClient:
    """One channel to a receiver; every call carries the token."""

    def __init__(self, address: str, token: str) -> None:
        self.channel = grpc.insecure_channel(address, options=grpc_config.CHANNEL_OPTIONS)
        self.stub = pb_grpc.ReceiverServiceStub(self.channel)
        self.auth = bearer(token)

    def close(self) -> None:
        self.channel.close()

    def hello(self) -> pb.HelloResponse:
        request = pb.HelloRequest(protocol_version=1, source_hostname="hostile-test")
        response: pb.HelloResponse = self.stub.Hello(
            request, metadata=self.auth, timeout=RPC_TIMEOUT_S
        )
        return response

    def plan(
        self, session_id: str, batches: Sequence[Sequence[pb.Entry]]
    ) -> StreamOutcome[pb.PlanResponse]:
        """One Plan stream sending `batches`, the session named in the first."""
        requests = [
            pb.PlanRequest(session_id=session_id if i == 0 else "", entries=batch)
            for i, batch in enumerate(batches)
        ]
        return collect(self.stub.Plan(iter(requests), metadata=self.auth, timeout=RPC_TIMEOUT_S))

    def plan_ok(self, session_id: str, batches: Sequence[Sequence[pb.Entry]]) -> list[pb.Decision]:
        """Every decision of a Plan stream that must end OK."""
        outcome = self.plan(session_id, batches)
        assert outcome.code == grpc.StatusCode.OK, outcome.details
        return [d for response in outcome.responses for d in response.decisions]

    def transfer(
        self, session_id: str, requests: Iterable[pb.TransferRequest]
    ) -> StreamOutcome[pb.TransferResponse]:
        """One Transfer stream: `requests` (the first stamped with the session), half-close."""
        call = self.stub.Transfer(
            _stamp_first(session_id, requests), metadata=self.auth, timeout=RPC_TIMEOUT_S
        )
        return collect(call)

    def finish(self, session_id: str) -> pb.FinishResponse:
        response: pb.FinishResponse = self.stub.Finish(
            pb.FinishRequest(session_id=session_id), metadata=self.auth, timeout=RPC_TIMEOUT_S
        )
        return response
