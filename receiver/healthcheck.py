"""Health probe for the receiver's container: one grpc.health.v1 `Check`, exit 0 if SERVING.

The receiver image's HEALTHCHECK runs `python -m receiver.healthcheck`. It asks the receiver
in the same container (or network namespace) at CVM_MIGRATE_HEALTH_HOST (default 127.0.0.1)
and CVM_MIGRATE_HEALTH_PORT (default 7710, the receiver's default port): set the port with
`-e CVM_MIGRATE_HEALTH_PORT=...` when `--listen` uses another. The health service needs no
token. Exit 0 when the overall health ("") is SERVING, 1 otherwise, as docker and podman
expect from a health command; one line on stdout or stderr says why.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HOST_ENV = "CVM_MIGRATE_HEALTH_HOST"
PORT_ENV = "CVM_MIGRATE_HEALTH_PORT"
TIMEOUT_ENV = "CVM_MIGRATE_HEALTH_TIMEOUT_S"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7710
DEFAULT_TIMEOUT_S = 3.0
HEALTHY, UNHEALTHY = 0, 1


def target(environ: Mapping[str, str]) -> str:
    """The `host:port` to probe; ValueError if the port is not a TCP port number."""
    host = environ.get(HOST_ENV, "").strip() or DEFAULT_HOST
    port_text = environ.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    port = int(port_text) if port_text.isdigit() else -1
    if not 0 < port < 65536:
        raise ValueError(f"{PORT_ENV}={port_text!r} is not a TCP port number")
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check(address: str, timeout_s: float) -> tuple[bool, str]:
    """Ask `address` for its overall health: (serving, what to print)."""
    # No proxy: grpc honours http_proxy/https_proxy even for loopback.
    options = [("grpc.enable_http_proxy", 0)]
    request = health_pb2.HealthCheckRequest(service="")
    try:
        with grpc.insecure_channel(address, options=options) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(request, timeout=timeout_s)
    except grpc.RpcError as exc:
        code = exc.code() if isinstance(exc, grpc.Call) else None
        details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
        return False, f"{address}: {code.name if code else 'error'}: {details}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{address}: {status}"


def main(environ: Mapping[str, str] | None = None) -> int:
    env = os.environ if environ is None else environ
    try:
        address = target(env)
        timeout_s = float(env.get(TIMEOUT_ENV, "") or DEFAULT_TIMEOUT_S)
    except ValueError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return UNHEALTHY
    serving, message = check(address, timeout_s)
    print(f"healthcheck: {message}", file=sys.stdout if serving else sys.stderr)
    return HEALTHY if serving else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
