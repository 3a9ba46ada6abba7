"""Root privileges: only root can read every file and give the copies their owners."""

from __future__ import annotations

from sender.checks.context import CheckContext
from sender.checks.result import CheckResult, Status

NAME = "root privileges"


def check_root_privileges(context: CheckContext) -> CheckResult:
    if context.euid == 0:
        return CheckResult(NAME, Status.PASS, "running as root")
    return CheckResult(
        NAME,
        Status.FAIL,
        f"running as uid {context.euid}: a non-root sender cannot read every file "
        "or keep owners, device nodes and capabilities",
        "run as root (sudo cvm-migrate ..., or the sender container as root)",
    )
