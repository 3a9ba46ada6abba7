"""The gRPC servicer: thin. It reads messages, calls the Receiver, answers.

Faults raised below are turned into status codes by the interceptor in
`interceptors`; the only cleanup here is what a broken stream must release.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

import grpc

from common import grpc_config
from common.frame_codec import FrameDecoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc
from receiver.receiver import Receiver
from receiver.transfer import serve_transfer
from receiver.verify import Checker

Message = TypeVar("Message")
# Extra paths per VerifyResponse, once the sender's side is done.
_EXTRAS_PER_MESSAGE = 1000


class ReceiverServicer(pb_grpc.ReceiverServiceServicer):
    def __init__(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def Hello(self, request: pb.HelloRequest, context: grpc.ServicerContext) -> pb.HelloResponse:
        return self._receiver.hello(request)

    def Plan(
        self, request_iterator: Iterator[pb.PlanRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.PlanResponse]:
        first = next(request_iterator, None)
        if first is None:
            return
        session = self._receiver.session(first.session_id)
        with session.used() as writer:
            # The next batch is read only after this one's answer is taken:
            # gRPC flow control is the back-pressure.
            for request in _chain(first, request_iterator):
                yield pb.PlanResponse(decisions=session.plan(request.entries, writer))

    def Transfer(
        self, request_iterator: Iterator[pb.TransferRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.TransferResponse]:
        first = next(request_iterator, None)
        if first is None:
            return
        session = self._receiver.session(first.session_id)
        yield from serve_transfer(session, self._decoder(), _chain(first, request_iterator))

    def Finish(self, request: pb.FinishRequest, context: grpc.ServicerContext) -> pb.FinishResponse:
        session = self._receiver.session(request.session_id)
        with session.used() as writer:
            return session.finish(writer)

    def Verify(
        self, request_iterator: Iterator[pb.VerifyRequest], context: grpc.ServicerContext
    ) -> Iterator[pb.VerifyResponse]:
        first = next(request_iterator, None)
        if first is None:
            return
        session = self._receiver.session(first.session_id)
        with session.used() as writer:
            checker = Checker(writer.dirs)
            for request in _chain(first, request_iterator):
                differences = session.verify(request.entries, checker)
                yield pb.VerifyResponse(differences=differences, checked=len(request.entries))
            for batch in _batched(session.extras(writer.dirs), _EXTRAS_PER_MESSAGE):
                yield pb.VerifyResponse(differences=batch)

    @staticmethod
    def _decoder() -> FrameDecoder:
        return FrameDecoder(grpc_config.MAX_FRAME_RAW_BYTES)

    def Status(self, request: pb.StatusRequest, context: grpc.ServicerContext) -> pb.StatusResponse:
        return self._receiver.status(request.session_id)


def _chain(first: Message, rest: Iterator[Message]) -> Iterator[Message]:
    yield first
    yield from rest


def _batched(items: Iterator[Message], size: int) -> Iterator[list[Message]]:
    batch: list[Message] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
