"""Health probe for the receiver's container: one grpc.health.v1 `Check`, exit 0 if SERVING.

The receiver image's HEALTHCHECK runs `python -m receiver.healthcheck`. It asks the receiver
in the same container (or network namespace) at CVM_MIGRATE_HEALTH_HOST (default 127.0.0.1)
and CVM_MIGRATE_HEALTH_PORT (default 7710, the receiver's default port): set the port with
`-e CVM_MIGRATE_HEALTH_PORT=...` when `--listen` uses another. The health service needs no
token.

TLS (CVM_MIGRATE_HEALTH_TLS: auto, the default, or on / off): in auto mode a receiver that
completes a TLS handshake is asked over TLS, any other over plaintext (--insecure). The probe
trusts the certificate the receiver presents, as the receiver's self-signed one is its own
trust anchor; a certificate issued by a CA needs that CA in CVM_MIGRATE_HEALTH_CA_CERT (a PEM
file). A receiver that requires client certificates (--client-ca) cannot be probed.

Exit 0 when the overall health ("") is SERVING, 1 otherwise, as docker and podman expect
from a health command; one line says why.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Mapping
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HOST_ENV = "CVM_MIGRATE_HEALTH_HOST"
PORT_ENV = "CVM_MIGRATE_HEALTH_PORT"
TLS_ENV = "CVM_MIGRATE_HEALTH_TLS"
CA_ENV = "CVM_MIGRATE_HEALTH_CA_CERT"
TIMEOUT_ENV = "CVM_MIGRATE_HEALTH_TIMEOUT_S"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7710
DEFAULT_TIMEOUT_S = 3.0
HEALTHY, UNHEALTHY = 0, 1


class ProbeError(Exception):
    """The probe cannot ask: bad settings, or nothing listening."""


def settings(environ: Mapping[str, str]) -> tuple[str, int, str, float]:
    """(host, port, TLS mode, timeout in seconds) from the environment."""
    host = environ.get(HOST_ENV, "").strip() or DEFAULT_HOST
    port_text = environ.get(PORT_ENV, "").strip() or str(DEFAULT_PORT)
    port = int(port_text) if port_text.isdigit() else -1
    if not 0 < port < 65536:
        raise ProbeError(f"{PORT_ENV}={port_text!r} is not a TCP port number")
    mode = environ.get(TLS_ENV, "").strip().lower() or "auto"
    if mode not in ("auto", "on", "off"):
        raise ProbeError(f"{TLS_ENV}={mode!r}: use auto, on or off")
    try:
        timeout_s = float(environ.get(TIMEOUT_ENV, "").strip() or DEFAULT_TIMEOUT_S)
    except ValueError:
        raise ProbeError(f"{TIMEOUT_ENV} is not a number of seconds") from None
    return host, port, mode, timeout_s


def presented_certificate(host: str, port: int, timeout_s: float) -> bytes | None:
    """The certificate (DER) the receiver presents, or None if it does not speak TLS."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # only to learn the certificate; trust comes after
    context.set_alpn_protocols(["h2"])
    try:
        sock = socket.create_connection((host, port), timeout=timeout_s)
    except OSError as exc:
        raise ProbeError(f"{host}:{port}: nothing answers: {exc.strerror or exc}") from exc
    with sock:
        try:
            with context.wrap_socket(sock) as tls:
                return tls.getpeercert(binary_form=True)
        except (ssl.SSLError, OSError):
            return None  # a plaintext gRPC server drops a ClientHello


def certificate_name(der: bytes) -> str | None:
    """The name to check the certificate against: its first DNS name, else its CN."""
    from cryptography import x509  # a dependency of the receiver, only needed for TLS

    certificate = x509.load_der_x509_certificate(der)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        dns = names.value.get_values_for_type(x509.DNSName)
        if dns:
            return dns[0]
    except x509.ExtensionNotFound:
        pass
    common = certificate.subject.get_attributes_for_oid(x509.oid.NameOID.COMMON_NAME)
    return str(common[0].value) if common else None


def channel(host: str, port: int, mode: str, timeout_s: float, ca_file: str) -> grpc.Channel:
    address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    # No proxy: grpc honours http_proxy/https_proxy even for loopback.
    options: list[tuple[str, str | int]] = [("grpc.enable_http_proxy", 0)]
    der = None if mode == "off" else presented_certificate(host, port, timeout_s)
    if der is None:
        if mode == "on":
            raise ProbeError(f"{address}: no TLS handshake ({TLS_ENV}=on)")
        return grpc.insecure_channel(address, options=options)
    if ca_file:
        try:
            roots = Path(ca_file).read_bytes()
        except OSError as exc:
            raise ProbeError(f"{CA_ENV}={ca_file}: {exc.strerror}") from exc
    else:
        roots = ssl.DER_cert_to_PEM_cert(der).encode()
    name = certificate_name(der)
    if name:
        options.append(("grpc.ssl_target_name_override", name))
    credentials = grpc.ssl_channel_credentials(root_certificates=roots)
    return grpc.secure_channel(address, credentials, options=options)


def check(environ: Mapping[str, str]) -> tuple[bool, str]:
    """Ask the receiver for its overall health: (serving, what to print)."""
    host, port, mode, timeout_s = settings(environ)
    request = health_pb2.HealthCheckRequest(service="")
    with channel(host, port, mode, timeout_s, environ.get(CA_ENV, "").strip()) as chan:
        try:
            reply = health_pb2_grpc.HealthStub(chan).Check(request, timeout=timeout_s)
        except grpc.RpcError as exc:
            if isinstance(exc, grpc.Call):
                return False, f"{host}:{port}: {exc.code().name}: {exc.details()}"
            return False, f"{host}:{port}: {exc}"
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return reply.status == health_pb2.HealthCheckResponse.SERVING, f"{host}:{port}: {status}"


def main(environ: Mapping[str, str] | None = None) -> int:
    try:
        serving, message = check(os.environ if environ is None else environ)
    except ProbeError as exc:
        serving, message = False, str(exc)
    print(f"healthcheck: {message}", file=sys.stdout if serving else sys.stderr)
    return HEALTHY if serving else UNHEALTHY


if __name__ == "__main__":
    sys.exit(main())
