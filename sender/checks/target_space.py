"""Target space: room under the receiver's root for what the run will write.

The plan counts what the run would walk (same excludes, one filesystem if
asked) with each inode once. Bytes are those allocated on the source, not the
apparent sizes: the run keeps holes, so a sparse file needs only its data.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

from common.relpath import ROOT
from sender.checks.context import CheckContext
from sender.checks.reachability import unreached
from sender.checks.result import CheckResult, Status, human_size
from sender.walk import WalkOptions, walk

NAME = "target space"
# Planned above this share of what is free: the target ends up nearly full.
WARN_SHARE = 0.9
# st_blocks counts 512-byte units whatever the filesystem's block size (stat(2)).
_ST_BLOCK_BYTES = 512
_NOT_COUNTED = "files already on the target are not counted"


@dataclass(frozen=True)
class Plan:
    # Bytes allocated to every entry below SRC, hardlinked files once.
    allocated_bytes: int
    # Entries below SRC, hardlinked files once: the inodes the target needs.
    inodes: int


def plan_tree(source: bytes, options: WalkOptions) -> Plan:
    allocated = inodes = 0
    seen_links: set[tuple[int, int]] = set()
    for found in walk(source, options, warn=lambda message: None):
        st = found.st
        if found.relpath == ROOT:
            continue  # the receiver's root exists already
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode):
            key = (st.st_dev, st.st_ino)
            if key in seen_links:
                continue
            seen_links.add(key)
        allocated += st.st_blocks * _ST_BLOCK_BYTES
        inodes += 1
    return Plan(allocated, inodes)


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
    # A symlink to the source directory is followed, as the run does for SRC.
    source = os.fsencode(os.path.realpath(context.source))
    try:
        plan = plan_tree(source, context.walk)
    except OSError as exc:
        return CheckResult(
            NAME,
            Status.FAIL,
            f"cannot read the source {context.source}: {exc.strerror}",
            "pass a readable directory as SRC",
        )
    byte_status = judge(plan.allocated_bytes, hello.free_bytes)
    # btrfs has no inode limit and reports 0 free inodes: nothing to compare with.
    inode_status = judge(plan.inodes, hello.free_inodes) if hello.free_inodes else Status.PASS
    inode_words = f"{hello.free_inodes:,} inodes" if hello.free_inodes else "no inode limit"
    words = (
        f"{context.source} needs {human_size(plan.allocated_bytes)} in {plan.inodes:,} inodes; "
        f"the target has {human_size(hello.free_bytes)} and {inode_words} free"
    )
    if Status.FAIL in (byte_status, inode_status):
        short = plan.allocated_bytes - hello.free_bytes
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
