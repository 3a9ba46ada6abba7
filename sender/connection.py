"""Talking to a receiver: channels, the token, and gRPC errors made plain."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import grpc

from common import grpc_config
from common.errors import AuthError, ConnectError, MigrateError, TargetFull, TransferError
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc
from common.version import PROTOCOL_VERSION, SOFTWARE_VERSION
from sender.transport import Endpoint

# Finish creates hardlinks and applies directory metadata for the whole tree.
FINISH_TIMEOUT_S = 3600.0


class ReceiverClient:
    """One channel (one HTTP/2 connection) to the receiver."""

    def __init__(self, endpoint: Endpoint) -> None:
        self.endpoint = endpoint
        self._channel = endpoint.open_channel()
        self._stub = pb_grpc.ReceiverServiceStub(self._channel)
        self._metadata = (
            (grpc_config.AUTH_METADATA_KEY, grpc_config.AUTH_SCHEME + endpoint.token),
        )

    def close(self) -> None:
        self._channel.close()

    def hello(self, options: pb.HelloRequest | None = None) -> pb.HelloResponse:
        """Open a session; `options` carries rules and modes, versions are filled in."""
        request = pb.HelloRequest()
        if options is not None:
            request.CopyFrom(options)
        request.protocol_version = PROTOCOL_VERSION
        request.sender_version = SOFTWARE_VERSION
        request.source_hostname = socket.gethostname()
        return self._stub.Hello(
            request,
            metadata=self._metadata,
            timeout=self.endpoint.connect_timeout_s,
            wait_for_ready=True,
        )

    def plan(self, requests: Iterator[pb.PlanRequest]) -> Iterator[pb.PlanResponse]:
        return self._stub.Plan(requests, metadata=self._metadata)  # type: ignore[no-any-return]

    def transfer(self, requests: Iterator[pb.TransferRequest]) -> Iterator[pb.TransferResponse]:
        return self._stub.Transfer(requests, metadata=self._metadata)  # type: ignore[no-any-return]

    def status(self, session_id: str = "") -> pb.StatusResponse:
        return self._stub.Status(  # type: ignore[no-any-return]
            pb.StatusRequest(session_id=session_id),
            metadata=self._metadata,
            timeout=self.endpoint.connect_timeout_s,
            wait_for_ready=True,
        )

    def verify(self, requests: Iterator[pb.VerifyRequest]) -> Iterator[pb.VerifyResponse]:
        return self._stub.Verify(requests, metadata=self._metadata)  # type: ignore[no-any-return]

    def finish(self, session_id: str) -> pb.FinishResponse:
        return self._stub.Finish(
            pb.FinishRequest(session_id=session_id),
            metadata=self._metadata,
            timeout=FINISH_TIMEOUT_S,
        )


# What a dropped link, a restarted receiver or a shutting-down one looks like.
_LINK_LOST = (
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.DEADLINE_EXCEEDED,
    grpc.StatusCode.CANCELLED,
)


def translate(exc: grpc.RpcError, address: str) -> MigrateError:
    """The command-ending error for a failed call, in the user's terms."""
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    if code in _LINK_LOST:
        return ConnectError(address, details)
    if code == grpc.StatusCode.NOT_FOUND and "no session" in details:
        return ConnectError(address, "the receiver restarted and forgot the session")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return AuthError(address, details)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and "no space" in details:
        return TargetFull(details)
    return TransferError(f"{code.name}: {details}")
