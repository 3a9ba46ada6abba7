"""cvm-migrate: move a Linux server's tree to a cvm-migrate receiver.

This is the one place that reads argv and the environment, installs signal
handling, turns errors into messages and exit codes, and exits.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from common import frame_codec, grpc_config
from common.errors import (
    ConfigError,
    ExitCode,
    Interrupted,
    MigrateError,
    PartialTransfer,
    all_error_classes,
)
from common.excludes import (
    ExcludeFile,
    ExcludePattern,
    ExcludeRuleError,
    ExcludeRules,
    RuleSource,
    default_excludes_file,
)
from common.token import TOKEN_ENV, load_token
from common.version import SOFTWARE_VERSION
from sender.connection import Endpoint
from sender.migration import RunOptions, run_migration
from sender.report import human_summary, write_summary_json
from sender.stats import RunStats
from sender.walk import WalkOptions

log = logging.getLogger("cvm-migrate")

DEFAULT_STREAMS = 2
DEFAULT_WINDOW_MIB = 64
# Below 64 KiB per message grpcio's throughput falls off (DESIGN.md).
_MIN_CHUNK_BYTES = 64 * 1024
# go2tencentcloud's --log-level: 1 errors and warnings, 2 progress, 3 debug.
_LOG_LEVELS = {"1": logging.WARNING, "2": logging.INFO, "3": logging.DEBUG}
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


def _exit_code_table() -> str:
    codes = sorted((cls.exit_code, cls.__name__) for cls in all_error_classes())
    return "\n".join(f"  {code:>3}  {name}" for code, name in codes)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cvm-migrate",
        description="Migrate a Linux server, as files, to a cvm-migrate receiver.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=f"exit codes:\n    0  success\n    2  usage error\n{_exit_code_table()}",
    )
    parser.add_argument("--version", action="version", version=SOFTWARE_VERSION)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="migrate SRC to a receiver")
    run.set_defaults(func=command_run)
    run.add_argument(
        "source", metavar="SRC", type=Path, help="the tree to migrate (e.g. / or /host)"
    )
    run.add_argument("--to", required=True, metavar="HOST:PORT", help="the receiver's address")
    run.add_argument("--insecure", action="store_true", help="plaintext gRPC on a trusted link")
    run.add_argument(
        "--token-file", type=Path, help=f"file holding the token (default: ${TOKEN_ENV})"
    )
    run.add_argument(
        "--exclude", dest="rules", action=_AppendRule, metavar="PATTERN", help="rsync exclude rule"
    )
    run.add_argument(
        "--exclude-from",
        dest="rules",
        action=_AppendRule,
        metavar="FILE",
        help="file of rsync exclude rules",
    )
    run.add_argument(
        "--no-default-excludes",
        action="store_true",
        help="do not apply go2tencentcloud's rsync_excludes_linux.txt",
    )
    run.add_argument(
        "--delete", action="store_true", help="remove from the target what SRC no longer has"
    )
    run.add_argument(
        "--checksum", "-c", action="store_true", help="compare content hashes, not size and mtime"
    )
    run.add_argument(
        "--one-file-system", "-x", action="store_true", help="do not cross filesystem boundaries"
    )
    run.add_argument(
        "--streams",
        type=int,
        default=DEFAULT_STREAMS,
        help="parallel streams (default %(default)s)",
    )
    run.add_argument(
        "--chunk-size",
        type=float,
        default=grpc_config.DEFAULT_CHUNK_BYTES / grpc_config.MiB,
        metavar="MIB",
        help="raw bytes per frame, in MiB (default %(default)s)",
    )
    run.add_argument(
        "--compress-level",
        type=int,
        default=frame_codec.DEFAULT_LEVEL,
        help="zstd level, 0 for none (default %(default)s)",
    )
    run.add_argument(
        "--summary-json", type=Path, metavar="FILE", help="write the run's summary here"
    )
    run.add_argument(
        "--log-level", choices=sorted(_LOG_LEVELS), default="2", help="1 warnings, 2 info, 3 debug"
    )
    return parser


def _rule_sources(args: argparse.Namespace) -> list[RuleSource]:
    sources: list[RuleSource] = list(args.rules or [])
    if not args.no_default_excludes:
        sources.append(ExcludeFile(default_excludes_file()))
    return sources


def _own_dirs() -> frozenset[tuple[int, int]]:
    found = set()
    for path in _OWN_DIRS:
        try:
            st = path.stat()
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return frozenset(found)


def run_options(args: argparse.Namespace) -> RunOptions:
    if not args.insecure:
        raise ConfigError(
            "TLS is not available in this version yet: pass --insecure to use plaintext "
            "gRPC on a trusted private link"
        )
    if args.streams < 1:
        raise ConfigError("--streams must be at least 1")
    if not 0 <= args.compress_level <= 22:
        raise ConfigError("--compress-level must be between 0 and 22")
    chunk_bytes = int(args.chunk_size * grpc_config.MiB)
    if not _MIN_CHUNK_BYTES <= chunk_bytes <= grpc_config.MAX_FRAME_RAW_BYTES:
        top = grpc_config.MAX_FRAME_RAW_BYTES // grpc_config.MiB
        raise ConfigError(f"--chunk-size must be between 0.0625 and {top} MiB")
    token = load_token(args.token_file, os.environ)
    if token is None:
        raise ConfigError(f"no token: set {TOKEN_ENV} or pass --token-file")
    try:
        rules = ExcludeRules.from_sources(_rule_sources(args))
    except ExcludeRuleError as exc:
        raise ConfigError(str(exc)) from exc
    return RunOptions(
        source=args.source,
        endpoint=Endpoint(args.to, token),
        walk=WalkOptions(rules=rules, one_file_system=args.one_file_system, never=_own_dirs()),
        streams=args.streams,
        chunk_bytes=chunk_bytes,
        compress_level=args.compress_level,
        window_bytes=DEFAULT_WINDOW_MIB * grpc_config.MiB,
        delete=args.delete,
        checksum=args.checksum,
    )


def command_run(args: argparse.Namespace) -> int:
    stats = RunStats()
    exit_code = ExitCode.OK
    try:
        run_migration(run_options(args), stats)
        if stats.files_failed:
            raise PartialTransfer(stats.files_failed)
    except MigrateError as exc:
        exit_code = exc.exit_code
        print(f"cvm-migrate: error: {exc}", file=sys.stderr)
    except KeyboardInterrupt:
        exit_code = Interrupted.exit_code
        print(f"cvm-migrate: error: {Interrupted('SIGINT')}", file=sys.stderr)
    summary = stats.summary(exit_code)
    print(human_summary(summary, str(args.source), args.to))
    if args.summary_json:
        write_summary_json(args.summary_json, summary)
    return exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=_LOG_LEVELS[args.log_level],
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args))
    except MigrateError as exc:
        print(f"cvm-migrate: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"cvm-migrate: error: {Interrupted('SIGINT')}", file=sys.stderr)
        return Interrupted.exit_code


if __name__ == "__main__":
    sys.exit(main())
