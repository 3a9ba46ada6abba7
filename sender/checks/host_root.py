"""Host root: the host checks must look at the server, not at the sender's container."""

from __future__ import annotations

from pathlib import Path

from common.os_release import read_os_release
from sender.checks.context import CheckContext
from sender.checks.result import CheckResult, Status

NAME = "host root"


def check_host_root(context: CheckContext) -> CheckResult:
    root = context.host_root
    if root.resolve() == Path("/"):
        if context.in_container:
            return CheckResult(
                NAME,
                Status.WARN,
                "running in a container without the host's / at /host: the driver, SELinux "
                "and OS checks see the container's image, not the server",
                "mount the host's / at /host (docker run -v /:/host:ro ...) or pass --host-root",
            )
        return CheckResult(NAME, Status.PASS, "checking this system (/)")
    if not read_os_release(root).known:
        return CheckResult(
            NAME,
            Status.WARN,
            f"{root} has no etc/os-release: it does not look like a system's /",
            "pass --host-root where the host's / is mounted",
        )
    return CheckResult(NAME, Status.PASS, f"checking the system mounted at {root}")
