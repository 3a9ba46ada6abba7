"""`cvm-migrate check`: the checks on their own, as lines or JSON, exit code 0/1/2."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from sender.checks.context import CheckContext, default_host_root
from sender.checks.preflight import preflight
from sender.logs import DEFAULT_LOG_FILE, LEVELS
from sender.options import add_target_options, add_tree_options, run_options

# A check should not wait the run's 20 s for a receiver that is not there.
CHECK_CONNECT_TIMEOUT_S = 5.0


def _make_optional(parser: argparse.ArgumentParser, dest: str, **changes: object) -> None:
    """Loosen an option the shared add_*_options functions declare as required."""
    for action in parser._actions:
        if action.dest == dest:
            action.required = False
            for name, value in changes.items():
                setattr(action, name, value)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `check` subcommand."""
    check = commands.add_parser(
        "check", help="check the source and, with --to, the receiver before a run"
    )
    check.add_argument(
        "--log-level", choices=sorted(LEVELS), default="2", help="1 warnings, 2 info, 3 debug"
    )
    check.add_argument(
        "--log-file", type=Path, metavar="FILE", help=f"log here (default {DEFAULT_LOG_FILE})"
    )
    add_tree_options(check)
    # SRC defaults to the host root: the whole server.
    _make_optional(check, "source", nargs="?", default=None)
    add_target_options(check)
    _make_optional(check, "to")
    check.set_defaults(connect_timeout=CHECK_CONNECT_TIMEOUT_S)
    check.add_argument(
        "--host-root",
        type=Path,
        metavar="PATH",
        help="where the server's / is mounted (default /host in a container that has it, else /)",
    )
    check.add_argument("--json", action="store_true", help="print a JSON report instead")
    check.set_defaults(func=command_check)


def command_check(args: argparse.Namespace) -> int:
    host_root = args.host_root or default_host_root()
    if args.source is None:
        args.source = host_root
    log_dir = args.log_file.parent if args.log_file else DEFAULT_LOG_FILE.parent
    if args.to:
        options = run_options(args, os.environ)
        context = CheckContext.for_run(options, host_root=host_root, log_dir=log_dir)
    else:
        context = CheckContext(host_root=host_root, source=args.source, log_dir=log_dir)
    report = preflight(context)
    print(report.to_json() if args.json else "\n".join(report.lines()), flush=True)
    return report.exit_code
