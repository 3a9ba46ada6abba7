"""Checks before a migration: the source system, the log space, and the receiver.

`cvm-migrate check` runs them on their own; a run calls `preflight` first.
Each check is a function of a CheckContext returning one CheckResult.
"""

from sender.checks.command import command_check, register
from sender.checks.context import CheckContext, default_host_root
from sender.checks.preflight import CHECKS, preflight
from sender.checks.result import CheckResult, Report, Status

__all__ = [
    "CHECKS",
    "CheckContext",
    "CheckResult",
    "Report",
    "Status",
    "command_check",
    "default_host_root",
    "preflight",
    "register",
]
