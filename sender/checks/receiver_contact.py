"""One Hello to the receiver, timed, for the checks that need its answer.

Hello is what a run starts with, so reaching the receiver here means the
address, the port, TLS and the token all work. A failure is turned into what
went wrong and what to do, for the `receiver` check to report.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import grpc

from common.errors import MigrateError, UntrustedReceiver
from common.pb.migrate.v1 import receiver_pb2 as pb
from sender.connection import ReceiverClient
from sender.transport import Endpoint

_UNREACHABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


@dataclass(frozen=True)
class ReceiverContact:
    address: str
    hello: pb.HelloResponse | None
    # The local clock just before the call and when its answer was back, in seconds.
    sent_at: float = 0.0
    answered_at: float = 0.0
    # Why the receiver was not reached and what to do; empty when it was.
    problem: str = ""
    fix: str = ""


def _unreachable_fix() -> str:
    return (
        "check that the receiver runs on the target, that --to is its private IP and "
        "port, that the target's security group and firewall admit this host on that port, "
        "and that --insecure, --fingerprint or --ca-cert match how the receiver serves"
    )


def _failure(endpoint: Endpoint, exc: grpc.RpcError) -> ReceiverContact:
    code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
    details = (exc.details() if isinstance(exc, grpc.Call) else None) or str(exc)
    address = endpoint.address
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return ReceiverContact(
            address,
            None,
            problem=f"the receiver at {address} refused the token: {details}",
            fix="pass the token the receiver was started with "
            "(CVM_MIGRATE_TOKEN or --token-file; deploy prints it)",
        )
    if code in _UNREACHABLE:
        return ReceiverContact(
            address,
            None,
            problem=f"cannot reach {address} within {endpoint.connect_timeout_s:g} s: {details}",
            fix=_unreachable_fix(),
        )
    return ReceiverContact(
        address,
        None,
        problem=f"Hello failed with {code.name}: {details}",
        fix="see the receiver's log for the cause",
    )


def contact_receiver(
    endpoint: Endpoint, request: pb.HelloRequest, clock: Callable[[], float]
) -> ReceiverContact:
    """Hello to `endpoint`; never raises for what the receiver or the link does."""
    address = endpoint.address
    try:
        # With --fingerprint this fetches and checks the certificate already.
        client = ReceiverClient(endpoint)
    except UntrustedReceiver as exc:
        return ReceiverContact(
            address,
            None,
            problem=str(exc),
            fix="pin the fingerprint the receiver printed at startup (its state directory's "
            "`fingerprint` file); a different one means another server answers on that address",
        )
    except MigrateError as exc:
        return ReceiverContact(address, None, problem=str(exc), fix=_unreachable_fix())
    try:
        sent_at = clock()
        hello = client.hello(request)
        answered_at = clock()
    except grpc.RpcError as exc:
        return _failure(endpoint, exc)
    finally:
        client.close()
    return ReceiverContact(address, hello, sent_at, answered_at)
