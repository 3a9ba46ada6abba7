"""Target space: room under the receiver's root for what the run will write.

The source is counted as the run would walk it (same excludes, one
filesystem if asked), each inode once, in bytes allocated on the source
(sender/tree_count.py); the count then gives the run's progress its totals.
"""

from __future__ import annotations

from sender.checks.context import CheckContext
from sender.checks.reachability import unreached
from sender.checks.result import CheckResult, Status, human_size

NAME = "target space"
# Planned above this share of what is free: the target ends up nearly full.
WARN_SHARE = 0.9
_NOT_COUNTED = "files already on the target are not counted"


def judge(needed: int, free: int) -> Status:
    if needed > free:
        return Status.FAIL
    if needed > WARN_SHARE * free:
        return Status.WARN
    return Status.PASS


def check_target_space(context: CheckContext) -> CheckResult:
    skipped = unreached(context, NAME)
    if skipped is not None:
        return skipped
    if context.walk is None:
        return CheckResult(NAME, Status.SKIP, "no exclude rules given to plan the run with")
    contact = context.receiver
    assert contact is not None and contact.hello is not None
    hello = contact.hello
    try:
        count = context.count_source()
    except OSError as exc:
        return CheckResult(
            NAME,
            Status.FAIL,
            f"cannot read the source {context.source}: {exc.strerror}",
            "pass a readable directory as SRC",
        )
    byte_status = judge(count.allocated_bytes, hello.free_bytes)
    # btrfs has no inode limit and reports 0 free inodes: nothing to compare with.
    inode_status = judge(count.inodes, hello.free_inodes) if hello.free_inodes else Status.PASS
    inode_words = f"{hello.free_inodes:,} inodes" if hello.free_inodes else "no inode limit"
    words = (
        f"{context.source} needs {human_size(count.allocated_bytes)} in {count.inodes:,} inodes; "
        f"the target has {human_size(hello.free_bytes)} and {inode_words} free"
    )
    if Status.FAIL in (byte_status, inode_status):
        short = count.allocated_bytes - hello.free_bytes
        shortfall = f", {human_size(short)} short" if short > 0 else ""
        return CheckResult(
            NAME,
            Status.FAIL,
            f"{words}{shortfall} ({_NOT_COUNTED})",
            "grow the target's disk or mount a larger one at the receiver's root, "
            "or leave more out with --exclude",
        )
    if Status.WARN in (byte_status, inode_status):
        return CheckResult(
            NAME,
            Status.WARN,
            f"{words}: over {WARN_SHARE:.0%} of it ({_NOT_COUNTED})",
            "grow the target's disk so the migrated system has room to run",
        )
    return CheckResult(NAME, Status.PASS, words)
