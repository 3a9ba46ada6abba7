"""Server interceptors: the token check, and faults turned into status codes.

Both wrap the method's own handler, so their replacement behaviour has the
method's streaming kind: a unary abort handler on a streaming method is a
known trap that leaves the client hanging or confused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import grpc

from common import grpc_config
from common.token import tokens_match
from receiver.faults import status_of
from receiver.stats import ReceiverStats

log = logging.getLogger(__name__)

# Health checks (docker HEALTHCHECK, load balancers) carry no token.
_OPEN_METHOD_PREFIX = "/grpc.health.v1.Health/"

Behavior = Callable[..., Any]


def _wrap(
    handler: grpc.RpcMethodHandler, wrap: Callable[[Behavior, bool], Behavior]
) -> grpc.RpcMethodHandler:
    """A handler like `handler` whose behaviour is `wrap(behaviour, streams_responses)`."""
    if handler.request_streaming and handler.response_streaming:
        make, behavior = grpc.stream_stream_rpc_method_handler, handler.stream_stream
    elif handler.request_streaming:
        make, behavior = grpc.stream_unary_rpc_method_handler, handler.stream_unary
    elif handler.response_streaming:
        make, behavior = grpc.unary_stream_rpc_method_handler, handler.unary_stream
    else:
        make, behavior = grpc.unary_unary_rpc_method_handler, handler.unary_unary
    return make(
        wrap(behavior, handler.response_streaming),
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


class TokenInterceptor(grpc.ServerInterceptor):
    """Refuses every call without the right token, before reading any message."""

    def __init__(self, token: str) -> None:
        self._token = token

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or details.method.startswith(_OPEN_METHOD_PREFIX):
            return handler
        metadata = dict(details.invocation_metadata or ())
        presented = str(metadata.get(grpc_config.AUTH_METADATA_KEY, ""))
        if presented.startswith(grpc_config.AUTH_SCHEME) and tokens_match(
            presented[len(grpc_config.AUTH_SCHEME) :], self._token
        ):
            return handler
        log.warning("refused %s: missing or wrong token", details.method)
        return _wrap(handler, _refuse)


def _refuse(behavior: Behavior, streams: bool) -> Behavior:
    def refuse(request: Any, context: grpc.ServicerContext) -> Any:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")

    def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")
        yield  # pragma: no cover - makes this a generator, as the method expects

    return refuse_stream if streams else refuse


class FaultInterceptor(grpc.ServerInterceptor):
    """Turns the receiver's faults into status codes and one log line each."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return handler
        return _wrap(
            handler, lambda behavior, streams: _map_faults(behavior, streams, details.method)
        )


def _map_faults(behavior: Behavior, streams: bool, method: str) -> Behavior:
    def abort_for(exc: Exception, context: grpc.ServicerContext) -> None:
        status = status_of(exc)
        if status is None:
            raise exc  # context.abort() itself, or a bug: gRPC reports those
        code, message = status
        log.warning("%s: %s: %s", method, code.name, message)
        context.abort(code, message)

    def call(request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return behavior(request, context)
        except Exception as exc:
            abort_for(exc, context)

    def call_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from behavior(request, context)
        except Exception as exc:
            abort_for(exc, context)

    return call_stream if streams else call


class ObservingInterceptor(grpc.ServerInterceptor):
    """Counts streams being served and calls that end in an error, by code.

    It goes first, so it also sees the token check's refusals.
    """

    def __init__(self, stats: ReceiverStats) -> None:
        self._stats = stats

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return handler
        method = details.method.rsplit("/", 1)[-1].lower()
        return _wrap(handler, lambda behavior, streams: self._observe(behavior, streams, method))

    def _observe(self, behavior: Behavior, streams: bool, method: str) -> Behavior:
        stats = self._stats

        def failed(context: grpc.ServicerContext) -> None:
            code = context.code() if hasattr(context, "code") else None
            stats.error(code.name if isinstance(code, grpc.StatusCode) else "UNKNOWN")

        def call(request: Any, context: grpc.ServicerContext) -> Any:
            try:
                return behavior(request, context)
            except Exception:
                failed(context)
                raise

        def call_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            stats.stream_started(method)
            try:
                yield from behavior(request, context)
            except Exception:
                failed(context)
                raise
            finally:
                stats.stream_ended(method)

        return call_stream if streams else call
