"""SELinux: a system copied with labels that do not fit may not boot or let anyone in.

What the target boots with is the source's /etc/selinux/config, which the run
copies; the running state (/sys/fs/selinux/enforce) is reported too.
"""

from __future__ import annotations

from pathlib import Path

from sender.checks.context import CheckContext
from sender.checks.host_paths import host_path
from sender.checks.result import CheckResult, Status

NAME = "selinux"
_FIX = (
    "create /.autorelabel on the target before its first boot, or set SELINUX=permissive "
    "in the target's /etc/selinux/config for the first boot"
)


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def configured_mode(config_text: str) -> str:
    """SELINUX= of /etc/selinux/config, lower case; "" when not set."""
    mode = ""
    for line in config_text.splitlines():
        key, equals, value = line.strip().partition("=")
        if equals and key.strip() == "SELINUX":
            mode = value.strip().strip("\"'").lower()
    return mode


def check_selinux(context: CheckContext) -> CheckResult:
    config = host_path(context.host_root, "/etc/selinux/config")
    mode = configured_mode(_read(config))
    enforcing_now = _read(host_path(context.host_root, "/sys/fs/selinux/enforce")).strip() == "1"
    if mode == "enforcing" or enforcing_now:
        where = f"SELINUX=enforcing in {config}" if mode == "enforcing" else "enforcing now"
        return CheckResult(
            NAME,
            Status.WARN,
            f"SELinux is {where}: files copied without relabelling may block boot or login "
            "on the target",
            _FIX,
        )
    if mode in ("permissive", "disabled"):
        return CheckResult(NAME, Status.PASS, f"SELinux is {mode}")
    return CheckResult(NAME, Status.PASS, "SELinux is not configured")
