"""Getting the receiver's token back from the instance without TAT ever holding it in clear.

Everything TAT carries is kept in its records: the command Content and Parameters, and the
Output, which anyone allowed to call DescribeInvocationTasks can read for as long as the
invocation is kept. So the token is generated on the instance (never sent), and the install
script prints it only encrypted to a key pair made for this one deploy: the public key
travels in the script, the private key never leaves this process. The instance needs the
`openssl` command (RSA-OAEP with SHA-256, OpenSSL >= 1.0.2) and nothing else.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

_KEY_BITS = 2048
_OAEP = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class SealError(ValueError):
    """The sealed token could not be opened."""


class TokenSeal:
    """An ephemeral RSA key pair: the public half seals on the instance, this one opens."""

    def __init__(self) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=_KEY_BITS)

    def public_pem(self) -> str:
        return (
            self._key.public_key()
            .public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            .decode("ascii")
        )

    def open(self, sealed_b64: str) -> str:
        """The token from the script's base64 RSA-OAEP ciphertext."""
        try:
            sealed = base64.b64decode(sealed_b64, validate=True)
            token = self._key.decrypt(sealed, _OAEP).decode("ascii")
        except (binascii.Error, ValueError) as exc:
            raise SealError(f"cannot decrypt the token the instance printed: {exc}") from exc
        if not token or not token.isprintable() or " " in token:
            raise SealError("the instance printed an empty or malformed token")
        return token
