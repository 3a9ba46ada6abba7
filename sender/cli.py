"""cvm-migrate: move a Linux server's tree to a cvm-migrate receiver.

This is the one place that reads argv and the environment, turns errors into
messages and exit codes, and exits.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import grpc
from rich.console import Console

from common.errors import (
    ChecksFailed,
    ExitCode,
    Interrupted,
    MigrateError,
    PartialTransfer,
    VerifyMismatch,
    all_error_classes,
)
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from common.version import SOFTWARE_VERSION
from sender.checks import CheckContext, preflight
from sender.checks import register as register_checks
from sender.cloud.commands import register as register_cloud_commands
from sender.connection import ReceiverClient, translate
from sender.daemon import detach
from sender.logs import DEFAULT_LOG_FILE, LEVELS, setup_logging
from sender.metrics import serve_sender_metrics
from sender.migration import RunOptions, run_migration
from sender.options import (
    add_target_options,
    add_transfer_options,
    add_tree_options,
    apply_client_config,
    endpoint_from_args,
    run_options,
)
from sender.progress import reporter_for
from sender.report import describe_status, human_summary, write_summary_json
from sender.retry import RetryPolicy, with_retries
from sender.stats import RunStats
from sender.tree_count import TreeCount
from sender.verify import KIND_NAMES, describe_difference, run_verify

log = logging.getLogger("cvm-migrate")

# `cvm-migrate check` exits 0 (pass), 1 (warnings) or 2 (a check failed).
CHECKS_FAILED = 2


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
    _add_log_options(run)
    add_tree_options(run)
    add_target_options(run)
    add_transfer_options(run)
    run.add_argument(
        "--retry-for",
        type=float,
        default=RetryPolicy.retry_for_s,
        metavar="SECONDS",
        help="after the link drops, keep trying this long (default %(default)s)",
    )
    run.add_argument("--summary-json", type=Path, metavar="FILE", help="write the summary here")
    run.add_argument(
        "--ignore-check",
        action="store_true",
        default=None,
        help="skip the pre-migration checks (go2tencentcloud's IgnoreCheck)",
    )
    run.add_argument(
        "--daemon",
        action="store_true",
        default=None,
        help="run detached; follow the log file (go2tencentcloud's Daemon)",
    )
    run.add_argument(
        "--json-progress", action="store_true", help="progress as JSON lines on stdout"
    )
    run.add_argument(
        "--metrics-listen", metavar="HOST:PORT", help="serve the run's Prometheus /metrics here"
    )
    run.set_defaults(func=command_run)

    verify = commands.add_parser("verify", help="compare SRC with what the receiver holds")
    _add_log_options(verify)
    add_tree_options(verify)
    add_target_options(verify)
    verify.add_argument("--json", type=Path, metavar="FILE", help="write the differences here")
    verify.set_defaults(func=command_verify)

    status = commands.add_parser("status", help="ask the receiver how the current session stands")
    _add_log_options(status)
    add_target_options(status)
    status.set_defaults(func=command_status)

    register_checks(commands)
    register_cloud_commands(commands)
    return parser


def _add_log_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--log-level", choices=sorted(LEVELS), default="2", help="1 warnings, 2 info, 3 debug"
    )
    parser.add_argument(
        "--log-file", type=Path, metavar="FILE", help=f"log here (default {DEFAULT_LOG_FILE})"
    )


def command_run(args: argparse.Namespace) -> int:
    if args.daemon:
        worker = detach()
        if worker is not None:
            print(f"cvm-migrate: running in the background as PID {worker}; log: {args.log_path}")
            return ExitCode.OK
        args.console = Console(stderr=True, force_terminal=False)
        setup_logging(args.log_level, args.log_file, console=None)
    stats = RunStats()
    if args.metrics_listen:
        port = serve_sender_metrics(args.metrics_listen, stats)
        log.info("metrics on port %d", port)
    exit_code = ExitCode.OK
    try:
        options = run_options(args, os.environ)
        if not args.ignore_check:
            counted = run_preflight(options)
            if counted is not None:  # progress starts with its totals, no pre-scan
                stats.set_scan(counted.files, counted.file_bytes, complete=True)
        with reporter_for(stats, json_lines=args.json_progress, console=args.console):
            with_retries(
                lambda: run_migration(options, stats),
                RetryPolicy(retry_for_s=args.retry_for),
                # A receiver never reached is a wrong address or a closed port, not a
                # dropped link: say so after the connect timeout instead of minutes.
                worth_retrying=lambda error: stats.sessions_opened > 0,
                on_retry=lambda error, pause: stats.start_again(),
            )
        if stats.files_failed:
            raise PartialTransfer(stats.files_failed)
    except MigrateError as exc:
        exit_code = exc.exit_code
        log.error("%s", exc)
    except KeyboardInterrupt:
        exit_code = Interrupted.exit_code
        log.error("%s", Interrupted("SIGINT"))
    summary = stats.summary(exit_code)
    if args.json_progress:
        print(json.dumps({"event": "summary", **summary}), flush=True)
    else:
        print(human_summary(summary, str(args.source), args.to))
    if args.summary_json:
        write_summary_json(args.summary_json, summary)
    return exit_code


def run_preflight(options: RunOptions) -> TreeCount | None:
    """The checks `cvm-migrate check` makes; a failure stops the run before any data.
    Returns the source's count, if a check made one."""
    context = CheckContext.for_run(options)
    report = preflight(context)
    for result in report.results:
        level = {"FAIL": logging.ERROR, "WARN": logging.WARNING}.get(result.status, logging.INFO)
        log.log(level, "check: %s", result.line())
    if report.exit_code == CHECKS_FAILED:
        failed = [r.name for r in report.results if r.status == "FAIL"]
        raise ChecksFailed(", ".join(failed))
    return context.source_count


def command_status(args: argparse.Namespace) -> int:
    client = ReceiverClient(endpoint_from_args(args, os.environ))
    try:
        status = client.status()
    except grpc.RpcError as exc:
        raise translate(exc, args.to) from None
    finally:
        client.close()
    print(describe_status(status))
    return ExitCode.OK


def command_verify(args: argparse.Namespace) -> int:
    stats = RunStats()
    found: list[dict[str, str]] = []

    def report(difference: pb.Difference) -> None:
        print(describe_difference(difference))
        if args.json:
            found.append(
                {
                    "kind": KIND_NAMES.get(difference.kind, "unknown"),
                    "path": display(difference.path),
                    "detail": difference.detail,
                }
            )

    totals = run_verify(run_options(args, os.environ), stats, report)
    print(totals.line())
    if args.json:
        document = {
            "identical": totals.identical and not stats.files_failed,
            "checked": totals.checked,
            "counts": dict(totals.counts),
            "unreadable": stats.files_failed,
            "differences": found,
        }
        write_summary_json(args.json, document)
    if not totals.identical:
        raise VerifyMismatch(f"{sum(totals.counts.values())} differences")
    if stats.files_failed:
        raise PartialTransfer(stats.files_failed)
    return ExitCode.OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.console = Console(stderr=True)
    args.log_path = setup_logging(
        getattr(args, "log_level", "2"), getattr(args, "log_file", None), args.console
    )
    try:
        apply_client_config(args)
        return int(args.func(args))
    except MigrateError as exc:
        log.error("%s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        log.error("%s", Interrupted("SIGINT"))
        return Interrupted.exit_code


if __name__ == "__main__":
    sys.exit(main())
