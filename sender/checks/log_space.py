"""Log space: the sender's logs must have room on the source."""

from __future__ import annotations

import os
from pathlib import Path

from sender.checks.context import CheckContext
from sender.checks.result import CheckResult, Status, human_size

NAME = "log space"
# sender/logs.py rotates ten files of 10 MiB: the most the logs ever take.
MIN_FREE_BYTES = 100 * 1024 * 1024


def _existing(path: Path) -> Path:
    """`path`, or its nearest ancestor that exists (logs/ is created on first use)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_log_space(context: CheckContext) -> CheckResult:
    where = _existing(context.log_dir)
    try:
        space = os.statvfs(where)
    except OSError as exc:
        return CheckResult(
            NAME,
            Status.WARN,
            f"cannot tell the free space at {where}: {exc.strerror}",
            "pass --log-file on a writable filesystem",
        )
    free = space.f_bavail * space.f_frsize
    if free < MIN_FREE_BYTES:
        return CheckResult(
            NAME,
            Status.WARN,
            f"only {human_size(free)} free for logs at {where}; "
            f"they may take {human_size(MIN_FREE_BYTES)}",
            "free space there, or pass --log-file on a larger filesystem",
        )
    return CheckResult(NAME, Status.PASS, f"{human_size(free)} free for logs at {where}")
