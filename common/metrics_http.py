"""Serving a Prometheus registry over HTTP at HOST:PORT/metrics, for both ends."""

from __future__ import annotations

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry


def serve_registry(listen: str, registry: CollectorRegistry) -> int:
    """Serve in a background thread; the port bound (PORT may be 0).

    Raises OSError when the address cannot be bound, ValueError when it is not HOST:PORT.
    """
    host, _, port = listen.rpartition(":")
    server, _ = start_http_server(int(port), addr=host.strip("[]") or "0.0.0.0", registry=registry)
    return int(server.server_port)
