"""The shared secret both ends hold: where it comes from and how it is compared."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from pathlib import Path

from common.errors import ConfigError

TOKEN_ENV = "CVM_MIGRATE_TOKEN"


def load_token(token_file: Path | None, environ: Mapping[str, str]) -> str | None:
    """The token from --token-file, else from CVM_MIGRATE_TOKEN, else None."""
    if token_file is not None:
        try:
            token = token_file.read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read the token file {token_file}: {exc.strerror}") from exc
        if not token:
            raise ConfigError(f"the token file {token_file} is empty")
        return token
    token = environ.get(TOKEN_ENV, "").strip()
    return token or None


def generate_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(presented: str, expected: str) -> bool:
    """Constant-time comparison, so timing tells nothing about the token."""
    return hmac.compare_digest(presented.encode(), expected.encode())
