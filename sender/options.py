"""Command-line options shared by the sender's commands, and what they become."""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from common import grpc_config
from common.errors import ConfigError
from common.excludes import (
    ExcludeFile,
    ExcludePattern,
    ExcludeRuleError,
    ExcludeRules,
    RuleSource,
    default_excludes_file,
)
from common.tls import normalize_fingerprint
from common.token import TOKEN_ENV, load_token
from sender.adaptive_level import AUTO
from sender.client_config import ClientConfig, load_client_config
from sender.migration import RunOptions
from sender.transport import (
    DEFAULT_CONNECT_TIMEOUT_S,
    Endpoint,
    Proxy,
    Security,
    split_address,
)
from sender.walk import WalkOptions

log = logging.getLogger("cvm-migrate")

# Streams by default: one per CPU this process may run on, within these bounds.
# Each stream reads, hashes and compresses on its own thread (zstd and xxhash
# release the GIL), so more CPUs can keep more streams busy; two at least, so a
# stream waiting on a cold read or an acknowledgement leaves the other going
# (30,000 small files on 2 CPUs: 1, 2 or 3 streams within noise of each other);
# eight at most, well under the receiver's 48 calls at once.
MIN_DEFAULT_STREAMS, MAX_DEFAULT_STREAMS = 2, 8
DEFAULT_WINDOW_MIB = 64
# Below 64 KiB per message grpcio's throughput falls off (DESIGN.md).
_MIN_CHUNK_BYTES = 64 * 1024
# Directories of the sender's own that are never migrated when inside SRC.
_OWN_DIRS = (Path("logs"),)


class _AppendRule(argparse.Action):
    """Collects --exclude and --exclude-from in command-line order, as rsync applies them."""

    def __call__(self, parser: Any, namespace: Any, value: Any, option: Any = None) -> None:
        rules = list(getattr(namespace, self.dest) or [])
        if option == "--exclude":
            rules.append(ExcludePattern(os.fsencode(value)))
        else:
            rules.append(ExcludeFile(Path(value)))
        setattr(namespace, self.dest, rules)


def add_tree_options(parser: argparse.ArgumentParser) -> None:
    """SRC and what of it is migrated."""
    parser.add_argument("source", metavar="SRC", type=Path, help="the tree (e.g. / or /host)")
    parser.add_argument(
        "--exclude", dest="rules", action=_AppendRule, metavar="PATTERN", help="rsync exclude rule"
    )
    parser.add_argument(
        "--exclude-from",
        dest="rules",
        action=_AppendRule,
        metavar="FILE",
        help="file of rsync exclude rules",
    )
    parser.add_argument(
        "--no-default-excludes",
        action="store_true",
        help="do not apply go2tencentcloud's rsync_excludes_linux.txt",
    )
    parser.add_argument(
        "--one-file-system", "-x", action="store_true", help="do not cross filesystem boundaries"
    )


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Which receiver, and how to talk to it."""
    add_config_option(parser)
    parser.add_argument("--to", required=True, metavar="HOST:PORT", help="the receiver's address")
    parser.add_argument("--insecure", action="store_true", help="plaintext gRPC on a trusted link")
    parser.add_argument(
        "--fingerprint", metavar="sha256:HEX", help="pin the receiver's TLS certificate"
    )
    parser.add_argument(
        "--ca-cert", type=Path, metavar="FILE", help="trust receivers whose certificate FILE signed"
    )
    parser.add_argument(
        "--client-cert", type=Path, metavar="FILE", help="mutual TLS: our certificate"
    )
    parser.add_argument("--client-key", type=Path, metavar="FILE", help="mutual TLS: our key")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=DEFAULT_CONNECT_TIMEOUT_S,
        metavar="SECONDS",
        help="give up connecting after this long (default %(default)s)",
    )
    parser.add_argument(
        "--proxy", metavar="URL", help="HTTP CONNECT proxy, http://[user:pass@]host:port"
    )
    parser.add_argument(
        "--token-file", type=Path, help=f"file holding the token (default: ${TOKEN_ENV})"
    )


def add_transfer_options(parser: argparse.ArgumentParser) -> None:
    """How a run moves content."""
    parser.add_argument(
        "--delete", action="store_true", help="remove from the target what SRC no longer has"
    )
    parser.add_argument(
        "--checksum",
        "-c",
        action="store_true",
        default=None,
        help="compare content hashes, not size and mtime",
    )
    parser.add_argument(
        "--bwlimit",
        type=float,
        metavar="KBYTES_PER_S",
        help="limit bytes on the wire, in KBytes/s as rsync and go2tencentcloud (0: none)",
    )
    parser.add_argument(
        "--streams",
        type=int,
        help=f"parallel streams (default: one per CPU, {MIN_DEFAULT_STREAMS} to"
        f" {MAX_DEFAULT_STREAMS}; {default_streams()} here)",
    )
    parser.add_argument(
        "--chunk-size",
        type=float,
        default=grpc_config.DEFAULT_CHUNK_BYTES / grpc_config.MiB,
        metavar="MIB",
        help="raw bytes per frame, in MiB (default %(default)s)",
    )
    parser.add_argument(
        "--compress-level",
        type=_compress_level,
        default=AUTO,
        metavar="auto|N",
        help="zstd level: auto follows the link (harder while the link is the bottleneck,"
        " lighter down to none while reading and compressing are), 0 for none, 1-22 fixed"
        " (default auto)",
    )


def _compress_level(value: str) -> int:
    """--compress-level: 'auto' (AUTO) or a level, checked in run_options."""
    if value == "auto":
        return AUTO
    try:
        level = int(value)
    except ValueError:
        level = -1
    if level < 0:  # AUTO is -1: only "auto" may mean it
        raise argparse.ArgumentTypeError(f"not auto or a level from 0: {value!r}")
    return level


def default_streams(cpus: int | None = None) -> int:
    """One stream per usable CPU (its affinity mask: a container's cpuset), bounded."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0))
    return max(MIN_DEFAULT_STREAMS, min(cpus, MAX_DEFAULT_STREAMS))


def add_config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        metavar="client.json",
        help="go2tencentcloud's client.json (proxy, checks, daemon, bandwidth, checksum)",
    )


def apply_client_config(args: argparse.Namespace) -> ClientConfig:
    """Fill options not given on the command line from --config, if any."""
    config = ClientConfig()
    if getattr(args, "config", None) is not None:
        config = load_client_config(args.config)
        if config.ignored:
            log.info("client.json: not used here: %s", ", ".join(config.ignored))
    filled = {
        "proxy": config.proxy,
        "checksum": config.checksum,
        "bwlimit": config.bwlimit_kbytes_per_s,
        "ignore_check": config.ignore_check,
        "daemon": config.daemon,
    }
    for name, value in filled.items():
        if name in args and getattr(args, name) is None:
            setattr(args, name, value)
    args.default_excludes = config.excludes_file or default_excludes_file()
    return config


def _rules(args: argparse.Namespace) -> ExcludeRules:
    sources: list[RuleSource] = list(args.rules or [])
    if not args.no_default_excludes:
        default = getattr(args, "default_excludes", None) or default_excludes_file()
        sources.append(ExcludeFile(default))
    try:
        return ExcludeRules.from_sources(sources)
    except ExcludeRuleError as exc:
        raise ConfigError(str(exc)) from exc


def _own_dirs() -> frozenset[tuple[int, int]]:
    found = set()
    for path in _OWN_DIRS:
        try:
            st = path.stat()
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def _read(path: Path | None, what: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what} {path}: {exc.strerror}") from exc


def _security(args: argparse.Namespace) -> Security:
    chosen = [args.insecure, args.fingerprint is not None, args.ca_cert is not None]
    if sum(chosen) != 1:
        raise ConfigError(
            "say how to trust the receiver: --fingerprint sha256:HEX (the receiver logs it), "
            "--ca-cert FILE, or --insecure for plaintext on a trusted link (exactly one)"
        )
    if (args.client_cert is None) != (args.client_key is None):
        raise ConfigError("--client-cert and --client-key go together")
    if args.insecure:
        return Security(insecure=True)
    return Security(
        fingerprint=normalize_fingerprint(args.fingerprint) if args.fingerprint else None,
        ca_pem=_read(args.ca_cert, "CA certificate"),
        client_cert_pem=_read(args.client_cert, "client certificate"),
        client_key_pem=_read(args.client_key, "client key"),
    )


def endpoint_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> Endpoint:
    """The receiver to talk to, from the target options."""
    token = load_token(args.token_file, environ)
    if token is None:
        raise ConfigError(f"no token: set {TOKEN_ENV} or pass --token-file")
    split_address(args.to)
    proxy = Proxy.parse(args.proxy) if args.proxy else None
    return Endpoint(args.to, token, _security(args), proxy, args.connect_timeout)


def _chunk_bytes(args: argparse.Namespace) -> int:
    chunk_bytes = int(args.chunk_size * grpc_config.MiB)
    if not _MIN_CHUNK_BYTES <= chunk_bytes <= grpc_config.MAX_FRAME_RAW_BYTES:
        top = grpc_config.MAX_FRAME_RAW_BYTES // grpc_config.MiB
        raise ConfigError(f"--chunk-size must be between 0.0625 and {top} MiB")
    return chunk_bytes


def run_options(args: argparse.Namespace, environ: Mapping[str, str]) -> RunOptions:
    """RunOptions from the tree and target options, and the transfer ones where given."""
    transfer = "streams" in args
    if transfer and args.streams is not None and args.streams < 1:
        raise ConfigError("--streams must be at least 1")
    if transfer and args.compress_level != AUTO and not 0 <= args.compress_level <= 22:
        raise ConfigError("--compress-level must be auto or between 0 and 22")
    if transfer and (args.bwlimit or 0) < 0:
        raise ConfigError("--bwlimit must not be negative")
    return RunOptions(
        source=args.source,
        endpoint=endpoint_from_args(args, environ),
        walk=WalkOptions(
            rules=_rules(args), one_file_system=args.one_file_system, never=_own_dirs()
        ),
        streams=(args.streams if transfer else None) or default_streams(),
        chunk_bytes=_chunk_bytes(args) if transfer else grpc_config.DEFAULT_CHUNK_BYTES,
        compress_level=args.compress_level if transfer else AUTO,
        window_bytes=DEFAULT_WINDOW_MIB * grpc_config.MiB,
        delete=transfer and args.delete,
        checksum=transfer and bool(args.checksum),
        bwlimit_kbytes_per_s=(args.bwlimit or 0) if transfer else 0,
    )
