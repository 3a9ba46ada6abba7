"""cvm-migrate-receiver: serve a root directory to cvm-migrate senders."""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import resource
import signal
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import grpc

from common.errors import ConfigError, ExitCode, MigrateError, ReceiverSetupError
from common.metrics_http import serve_registry
from common.tls import load_identity, load_or_create_identity
from common.token import TOKEN_ENV, generate_token, load_token
from common.version import SOFTWARE_VERSION
from receiver.metrics import registry_for
from receiver.receiver import Receiver
from receiver.server import ReceiverServer, server_credentials

log = logging.getLogger("cvm-migrate-receiver")

DEFAULT_PORT = 7710
DEFAULT_METRICS_PORT = 9710
SHUTDOWN_GRACE_S = 10.0
# Then, for the streams it cancelled to finish the step they were in.
CANCELLED_STREAMS_S = 5.0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvm-migrate-receiver",
        description="Receive a migrated tree under --root from cvm-migrate senders.",
    )
    parser.add_argument(
        "--root", type=Path, required=True, help="directory the tree is written under"
    )
    parser.add_argument(
        "--listen",
        default=f"0.0.0.0:{DEFAULT_PORT}",
        help="HOST:PORT to serve gRPC on (default %(default)s)",
    )
    parser.add_argument(
        "--state-dir", type=Path, required=True, help="directory for the journal and the token"
    )
    parser.add_argument(
        "--insecure", action="store_true", help="plaintext gRPC, for a trusted private link"
    )
    parser.add_argument(
        "--tls-cert", type=Path, help="certificate (PEM); default: self-signed, in --state-dir"
    )
    parser.add_argument("--tls-key", type=Path, help="private key (PEM) of --tls-cert")
    parser.add_argument(
        "--client-ca", type=Path, help="require sender certificates signed by this CA (mutual TLS)"
    )
    parser.add_argument(
        "--token-file", type=Path, help=f"file holding the shared token (default: ${TOKEN_ENV})"
    )
    parser.add_argument(
        "--metrics-listen",
        metavar="HOST:PORT",
        help=f"serve Prometheus /metrics here (default 0.0.0.0:{DEFAULT_METRICS_PORT}; 'off')",
    )
    parser.add_argument("--log-level", choices=["debug", "info", "warning"], default="info")
    parser.add_argument("--version", action="version", version=SOFTWARE_VERSION)
    return parser


def resolve_token(args: argparse.Namespace) -> str:
    """The configured token, or one generated once and kept in the state dir."""
    token = load_token(args.token_file, os.environ)
    if token is not None:
        return token
    kept = args.state_dir / "token"
    if kept.exists():
        return kept.read_text().strip()
    token = generate_token()
    fd = os.open(kept, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    log.warning("no token given: generated one, kept in %s: %s", kept, token)
    return token


def credentials(args: argparse.Namespace) -> grpc.ServerCredentials | None:
    """TLS credentials, or None with --insecure; logs the fingerprint to pin."""
    if args.insecure:
        if args.tls_cert or args.client_ca:
            raise ConfigError("--insecure cannot go with --tls-cert or --client-ca")
        log.warning("serving plaintext gRPC (--insecure): use only on a trusted private link")
        return None
    if (args.tls_cert is None) != (args.tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together")
    if args.tls_cert is not None:
        identity = load_identity(args.tls_cert, args.tls_key)
    else:
        identity = load_or_create_identity(args.state_dir, datetime.datetime.now(datetime.UTC))
    client_ca = None
    if args.client_ca is not None:
        try:
            client_ca = args.client_ca.read_bytes()
        except OSError as exc:
            raise ConfigError(f"cannot read --client-ca {args.client_ca}: {exc.strerror}") from exc
    (args.state_dir / "fingerprint").write_text(identity.fingerprint + "\n")
    log.info("TLS certificate fingerprint: %s", identity.fingerprint)
    return server_credentials(identity, client_ca)


def serve_metrics(listen: str | None, receiver: Receiver) -> None:
    """Start /metrics. The default port may be taken (metrics are then off); a chosen one not."""
    if listen == "off":
        return
    address = listen or f"0.0.0.0:{DEFAULT_METRICS_PORT}"
    try:
        port = serve_registry(address, registry_for(receiver.stats))
    except (OSError, ValueError) as exc:
        if listen is not None:
            raise ReceiverSetupError(f"cannot serve metrics on {listen}: {exc}") from exc
        log.warning("metrics are off: cannot listen on %s: %s", address, exc)
        return
    log.info("metrics on http://%s:%d/metrics", address.rpartition(":")[0], port)


def raise_open_files_limit() -> None:
    """Up to the hard limit: each open partial file holds up to three descriptors."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def serve(args: argparse.Namespace) -> int:
    if not args.root.is_dir():
        raise ConfigError(f"--root {args.root} is not a directory")
    try:
        args.state_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --state-dir {args.state_dir}: {exc.strerror}") from exc
    raise_open_files_limit()
    token = resolve_token(args)
    tls = credentials(args)
    receiver = Receiver(args.root, args.state_dir, clock_ns=time.time_ns)
    try:
        server = ReceiverServer(receiver, token, args.listen, tls)
    except (OSError, RuntimeError) as exc:
        receiver.close()
        raise ReceiverSetupError(f"cannot listen on {args.listen}: {exc}") from exc
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    serve_metrics(args.metrics_listen, receiver)
    server.start()
    log.info("serving %s on %s (receiver %s)", args.root, args.listen, SOFTWARE_VERSION)
    # Waiting in slices: a signal delivered to one of gRPC's threads only runs
    # its Python handler once the main thread wakes up.
    while not stopping.wait(0.5):
        pass
    log.info("stopping: no new calls, %.0f s for running streams to end", SHUTDOWN_GRACE_S)
    server.stop(SHUTDOWN_GRACE_S)
    busy = receiver.wait_idle(CANCELLED_STREAMS_S)
    if busy:
        log.warning("stopping: %d sessions still busy after their streams were cancelled", busy)
    receiver.close()
    log.info("stopped cleanly")
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return serve(args)
    except MigrateError as exc:
        log.error("%s", exc)
        return exc.exit_code


if __name__ == "__main__":
    sys.exit(main())
