"""Why the receiver refuses a request, each reason with its gRPC status code.

The servicer raises these (or lets an OSError through); one interceptor turns
them into the status, so no handler carries try/except chains.
"""

from __future__ import annotations

import errno

import grpc

from common.frame_codec import FrameError
from common.relpath import InvalidPath


class ReceiverFault(Exception):
    code = grpc.StatusCode.INTERNAL


class BadRequest(ReceiverFault):
    """The request breaks the wire contract; nothing was written for it."""

    code = grpc.StatusCode.INVALID_ARGUMENT


class CorruptData(ReceiverFault):
    """Content that does not match its hash or its declared size."""

    code = grpc.StatusCode.DATA_LOSS


class UnknownSession(ReceiverFault):
    code = grpc.StatusCode.NOT_FOUND


class OutOfSpace(ReceiverFault):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class OverLimit(ReceiverFault):
    """More open files, streams or sessions than the receiver allows."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class ReadOnlyTarget(ReceiverFault):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ReceiverStopping(ReceiverFault):
    """The receiver is shutting down: a stream cancelled by it may not commit more."""

    code = grpc.StatusCode.UNAVAILABLE


# OS errors that no other entry could escape either: they end the stream.
_FATAL_ERRNOS: dict[int, type[ReceiverFault]] = {
    errno.ENOSPC: OutOfSpace,
    errno.EDQUOT: OutOfSpace,
    errno.EROFS: ReadOnlyTarget,
}


def fatal_for_session(exc: OSError, what: str) -> ReceiverFault | None:
    """The fault that ends the stream for this OS error, or None if it is one entry's."""
    fault = _FATAL_ERRNOS.get(exc.errno or 0)
    if fault is None:
        return None
    if fault is OutOfSpace:
        return OutOfSpace(f"{what}: no space left on the target (bytes or inodes): {exc.strerror}")
    return fault(f"{what}: {exc.strerror}")


def status_of(exc: BaseException) -> tuple[grpc.StatusCode, str] | None:
    """The status code and one-line message for an exception a handler raised."""
    if isinstance(exc, ReceiverFault):
        return exc.code, str(exc)
    if isinstance(exc, InvalidPath):
        return grpc.StatusCode.INVALID_ARGUMENT, str(exc)
    if isinstance(exc, FrameError):
        return grpc.StatusCode.DATA_LOSS, str(exc)
    if isinstance(exc, OSError):
        fault = fatal_for_session(exc, exc.filename or "target")
        if fault is not None:
            return fault.code, str(fault)
    return None
