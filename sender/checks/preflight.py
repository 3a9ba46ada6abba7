"""All the checks, in the order they are shown."""

from __future__ import annotations

from collections.abc import Callable

from sender.checks import (
    clock_skew,
    host_root,
    log_space,
    os_family,
    privileges,
    reachability,
    selinux,
    target_space,
    virtio,
)
from sender.checks.context import CheckContext
from sender.checks.result import CheckResult, Report, Status

Check = Callable[[CheckContext], CheckResult]

CHECKS: tuple[tuple[str, Check], ...] = (
    (privileges.NAME, privileges.check_root_privileges),
    (host_root.NAME, host_root.check_host_root),
    (virtio.NAME, virtio.check_virtio_drivers),
    (selinux.NAME, selinux.check_selinux),
    (log_space.NAME, log_space.check_log_space),
    (reachability.NAME, reachability.check_receiver),
    (clock_skew.NAME, clock_skew.check_clock_skew),
    (target_space.NAME, target_space.check_target_space),
    (os_family.NAME, os_family.check_os_family),
)


def _run(name: str, check: Check, context: CheckContext) -> CheckResult:
    try:
        return check(context)
    except OSError as exc:  # a file the check reads is unreadable: say so, go on
        return CheckResult(name, Status.WARN, f"cannot check: {exc}", "")


def preflight(context: CheckContext) -> Report:
    """Run every check; the receiver is asked once (one Hello) for all that need it."""
    return Report(tuple(_run(name, check, context) for name, check in CHECKS))
