"""OS family: a system migrated onto a CVM of another distribution family.

The receiver reports the os-release under its root. A migration replaces that
system, but the CVM's image still decides things the files do not (the cloud's
agents, how the instance was prepared), so it should match the source's.
"""

from __future__ import annotations

from common.os_release import OsRelease, read_os_release
from sender.checks.context import CheckContext
from sender.checks.reachability import unreached
from sender.checks.result import CheckResult, Status

NAME = "os family"


def describe(release: OsRelease) -> str:
    return f"{release.id} {release.version_id}".strip()


def check_os_family(context: CheckContext) -> CheckResult:
    skipped = unreached(context, NAME)
    if skipped is not None:
        return skipped
    contact = context.receiver
    assert contact is not None and contact.hello is not None
    hello = contact.hello
    target = OsRelease(
        id=hello.target_os_id,
        id_like=tuple(hello.target_os_like.split()),
        version_id=hello.target_os_version,
    )
    source = read_os_release(context.host_root)
    if not target.known:
        return CheckResult(NAME, Status.SKIP, "the receiver does not know the target's OS")
    if not source.known:
        return CheckResult(
            NAME,
            Status.SKIP,
            f"no os-release under {context.host_root}: the source's OS is unknown",
        )
    shared = source.family() & target.family()
    if shared:
        return CheckResult(
            NAME,
            Status.PASS,
            f"source {describe(source)} and target {describe(target)} are both "
            f"{'/'.join(sorted(shared))}",
        )
    return CheckResult(
        NAME,
        Status.WARN,
        f"source {describe(source)} ({'/'.join(sorted(source.family()))}) and target "
        f"{describe(target)} ({'/'.join(sorted(target.family()))}) are different families",
        f"create the target CVM from a {describe(source)} image",
    )
