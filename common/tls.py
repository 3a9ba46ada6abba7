"""TLS material: the receiver's self-signed certificate and its fingerprint.

A receiver started without --tls-cert creates an EC key and a self-signed
certificate in its state directory once, and logs the SHA-256 fingerprint of
the certificate's DER encoding. A sender pins that fingerprint: it is the
whole trust decision, so the certificate's names do not matter and always
read TLS_NAME.
"""

from __future__ import annotations

import datetime
import hashlib
import os
import ssl
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from common.errors import ConfigError

# The name in every self-signed receiver certificate; a pinning sender checks
# the certificate against this name (grpc.ssl_target_name_override).
TLS_NAME = "cvm-migrate-receiver"
FINGERPRINT_PREFIX = "sha256:"
_VALIDITY = datetime.timedelta(days=3650)


@dataclass(frozen=True)
class ServerIdentity:
    certificate_pem: bytes
    private_key_pem: bytes

    @property
    def fingerprint(self) -> str:
        return fingerprint_of_pem(self.certificate_pem)


def fingerprint_of_der(der: bytes) -> str:
    return FINGERPRINT_PREFIX + hashlib.sha256(der).hexdigest()


def fingerprint_of_pem(pem: bytes) -> str:
    return fingerprint_of_der(ssl.PEM_cert_to_DER_cert(pem.decode()))


def normalize_fingerprint(text: str) -> str:
    """'sha256:HEX' in lower case, from 'sha256:HEX', 'HEX' or 'AA:BB:...'."""
    hex_part = text.strip().lower().removeprefix(FINGERPRINT_PREFIX).replace(":", "")
    if len(hex_part) != 64 or any(c not in "0123456789abcdef" for c in hex_part):
        raise ConfigError(f"--fingerprint {text!r} is not a SHA-256 fingerprint (sha256:64 hex)")
    return FINGERPRINT_PREFIX + hex_part


def self_signed(now: datetime.datetime) -> ServerIdentity:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, TLS_NAME)])
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(TLS_NAME)]), critical=False)
        # Its own trust anchor: a pinning sender hands it to gRPC as the root.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    return ServerIdentity(
        certificate.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def load_or_create_identity(state_dir: Path, now: datetime.datetime) -> ServerIdentity:
    """The identity kept in the state dir, created on first use."""
    cert_path, key_path = state_dir / "tls.crt", state_dir / "tls.key"
    if cert_path.exists() and key_path.exists():
        return ServerIdentity(cert_path.read_bytes(), key_path.read_bytes())
    identity = self_signed(now)
    _write_private(key_path, identity.private_key_pem)
    cert_path.write_bytes(identity.certificate_pem)
    return identity


def load_identity(cert_file: Path, key_file: Path) -> ServerIdentity:
    try:
        return ServerIdentity(cert_file.read_bytes(), key_file.read_bytes())
    except OSError as exc:
        raise ConfigError(f"cannot read {exc.filename}: {exc.strerror}") from exc


def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
