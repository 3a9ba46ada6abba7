"""How the sender reaches a receiver: plaintext, pinned TLS or CA-verified TLS,
directly or through an HTTP CONNECT proxy (go2tencentcloud's scenario 3).

Pinning works by fetching the receiver's certificate once, checking its
SHA-256 fingerprint, and then handing exactly that certificate to gRPC as the
only trusted root: a different certificate in gRPC's own handshake fails.
"""

from __future__ import annotations

import base64
import functools
import socket
import ssl
import urllib.parse
from dataclasses import dataclass, field

import grpc

from common import grpc_config
from common.errors import ConfigError, ConnectError, UntrustedReceiver
from common.tls import TLS_NAME, fingerprint_of_der

# How long connecting (TCP, proxy, TLS, the first call) may take before the
# receiver counts as unreachable.
DEFAULT_CONNECT_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class Proxy:
    """An HTTP proxy that tunnels with CONNECT, with optional basic auth."""

    host: str
    port: int
    username: str = ""
    password: str = field(default="", repr=False)

    @classmethod
    def parse(cls, url: str) -> Proxy:
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname or not parts.port:
            raise ConfigError(f"--proxy {url!r}: expected http://[user:pass@]host:port")
        return cls(
            parts.hostname,
            parts.port,
            urllib.parse.unquote(parts.username or ""),
            urllib.parse.unquote(parts.password or ""),
        )

    def url(self) -> str:
        """The form gRPC's grpc.http_proxy channel option takes."""
        auth = ""
        if self.username:
            user = urllib.parse.quote(self.username, safe="")
            auth = f"{user}:{urllib.parse.quote(self.password, safe='')}@"
        return f"http://{auth}{self.host}:{self.port}"

    def tunnel(self, host: str, port: int, timeout_s: float) -> socket.socket:
        """A TCP connection to host:port through the proxy."""
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        request = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
        if self.username:
            secret = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
            request += f"Proxy-Authorization: Basic {secret}\r\n"
        sock.sendall((request + "\r\n").encode())
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            if not chunk:
                break
            response += chunk
        status = response.split(b"\r\n", 1)[0].decode("latin-1")
        if " 200 " not in f"{status} ":
            sock.close()
            raise ConnectError(f"{host}:{port} through the proxy {self.host}:{self.port}", status)
        return sock


def split_address(address: str) -> tuple[str, int]:
    """('host', port) of 'host:port' or '[v6]:port'."""
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--to {address!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


@dataclass(frozen=True)
class Security:
    """How the receiver proves who it is; exactly one way is chosen."""

    insecure: bool = False
    fingerprint: str | None = None  # "sha256:HEX" of the receiver's certificate
    ca_pem: bytes | None = None  # a CA that signed the receiver's certificate
    client_cert_pem: bytes | None = None  # mutual TLS, when the receiver asks
    client_key_pem: bytes | None = field(default=None, repr=False)


class Endpoint:
    """A receiver's address, the token, and how to connect; channels share what
    is costly to work out (the pinned certificate)."""

    def __init__(
        self,
        address: str,
        token: str,
        security: Security,
        proxy: Proxy | None = None,
        connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S,
    ) -> None:
        self.address = address
        self.token = token
        self.security = security
        self.proxy = proxy
        self.connect_timeout_s = connect_timeout_s

    def open_channel(self) -> grpc.Channel:
        options: list[tuple[str, str | int]] = list(grpc_config.CHANNEL_OPTIONS)
        if self.proxy is not None:
            self._proxy_tunnels  # noqa: B018 - say what the proxy answered, not gRPC's timeout
            options.append(("grpc.http_proxy", self.proxy.url()))
        else:
            options.append(("grpc.enable_http_proxy", 0))  # no surprise proxy from the env
        if self.security.insecure:
            return grpc.insecure_channel(
                self.address, options=options, compression=grpc.Compression.NoCompression
            )
        credentials, name_override = self._credentials
        if name_override:
            options.append(("grpc.ssl_target_name_override", name_override))
        return grpc.secure_channel(
            self.address, credentials, options=options, compression=grpc.Compression.NoCompression
        )

    @functools.cached_property
    def _proxy_tunnels(self) -> bool:
        """Open one tunnel through the proxy first: gRPC would hide a refusal (a
        wrong password, a port not allowed) behind a connect timeout."""
        assert self.proxy is not None
        host, port = split_address(self.address)
        try:
            self.proxy.tunnel(host, port, self.connect_timeout_s).close()
        except OSError as exc:
            raise ConnectError(
                f"{self.address} through the proxy {self.proxy.host}:{self.proxy.port}", exc
            ) from exc
        return True

    @functools.cached_property
    def _credentials(self) -> tuple[grpc.ChannelCredentials, str | None]:
        security = self.security
        root, name = security.ca_pem, None
        if security.fingerprint is not None:
            root, name = self._pinned_certificate(security.fingerprint), TLS_NAME
        credentials = grpc.ssl_channel_credentials(
            root_certificates=root,
            private_key=security.client_key_pem,
            certificate_chain=security.client_cert_pem,
        )
        return credentials, name

    def _pinned_certificate(self, fingerprint: str) -> bytes:
        """The receiver's certificate, once its fingerprint is the one pinned."""
        host, port = split_address(self.address)
        try:
            if self.proxy is not None:
                sock = self.proxy.tunnel(host, port, self.connect_timeout_s)
            else:
                sock = socket.create_connection((host, port), timeout=self.connect_timeout_s)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE  # the fingerprint below is the check
            context.set_alpn_protocols(["h2"])
            with context.wrap_socket(sock, server_hostname=TLS_NAME) as tls:
                der = tls.getpeercert(binary_form=True)
        except ConnectError:
            raise
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(self.address, f"TLS handshake failed: {exc}") from exc
        if der is None or fingerprint_of_der(der) != fingerprint:
            seen = fingerprint_of_der(der) if der else "no certificate"
            raise UntrustedReceiver(self.address, fingerprint, seen)
        return ssl.DER_cert_to_PEM_cert(der).encode()
