"""`cvm-migrate check` through the real sender.cli.main, until the CLI registers it itself.

Run as a script: `python tests/sender/checks_cli_shim.py check ...`. It builds the CLI's own
parser, adds `check` with sender.checks.register when the parser lacks it, and leaves
everything else (logging, client.json, errors and exit codes) to sender.cli.main.
"""

from __future__ import annotations

import argparse
import sys

from sender import cli
from sender.checks import register

_build_parser = cli.build_parser


def build_parser_with_check() -> argparse.ArgumentParser:
    parser = _build_parser()
    commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if "check" not in commands.choices:
        register(commands)
    return parser


if __name__ == "__main__":
    cli.build_parser = build_parser_with_check
    sys.exit(cli.main(sys.argv[1:]))
