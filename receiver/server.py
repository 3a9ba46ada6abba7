"""The gRPC server around a Receiver: options, interceptors, health, shutdown."""

from __future__ import annotations

import logging
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from common import grpc_config
from common.pb.migrate.v1 import receiver_pb2_grpc as pb_grpc
from common.tls import ServerIdentity
from receiver.interceptors import FaultInterceptor, ObservingInterceptor, TokenInterceptor
from receiver.receiver import Receiver
from receiver.service import ReceiverServicer

log = logging.getLogger(__name__)

SERVICE_NAME = "migrate.v1.ReceiverService"
# Every stream holds a worker thread for its whole life: a sender uses one
# Plan stream and a few Transfer streams. Calls beyond the limit are refused
# with RESOURCE_EXHAUSTED instead of queueing without end.
_WORKERS = 64
_MAX_CONCURRENT_RPCS = 48


def server_credentials(identity: ServerIdentity, client_ca: bytes | None) -> grpc.ServerCredentials:
    """TLS with the receiver's identity; with `client_ca`, senders must present a
    certificate it signed (mutual TLS)."""
    return grpc.ssl_server_credentials(
        [(identity.private_key_pem, identity.certificate_pem)],
        root_certificates=client_ca,
        require_client_auth=client_ca is not None,
    )


class ReceiverServer:
    def __init__(
        self,
        receiver: Receiver,
        token: str,
        listen: str,
        credentials: grpc.ServerCredentials | None,
    ) -> None:
        """Serve on `listen`: TLS with `credentials`, plaintext when None."""
        self._server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="rpc"),
            interceptors=[
                ObservingInterceptor(receiver.stats),
                TokenInterceptor(token),
                FaultInterceptor(),
            ],
            options=grpc_config.SERVER_OPTIONS,
            maximum_concurrent_rpcs=_MAX_CONCURRENT_RPCS,
            compression=grpc.Compression.NoCompression,
        )
        pb_grpc.add_ReceiverServiceServicer_to_server(ReceiverServicer(receiver), self._server)
        self._health = health.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, self._server)
        if credentials is None:
            self.port = self._server.add_insecure_port(listen)
        else:
            self.port = self._server.add_secure_port(listen, credentials)
        if self.port == 0:
            raise OSError(f"cannot listen on {listen}")

    def start(self) -> None:
        self._server.start()
        for service in ("", SERVICE_NAME):
            self._health.set(service, health_pb2.HealthCheckResponse.SERVING)

    def stop(self, grace_s: float) -> None:
        """Stop accepting, let running streams end within `grace_s`, then cancel them."""
        self._health.enter_graceful_shutdown()
        self._server.stop(grace_s).wait()
