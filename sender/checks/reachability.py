"""Receiver: reached with this token and this TLS trust, and speaking our protocol."""

from __future__ import annotations

from common.version import PROTOCOL_VERSION
from sender.checks.context import CheckContext
from sender.checks.result import CheckResult, Status

NAME = "receiver"


def check_receiver(context: CheckContext) -> CheckResult:
    contact = context.receiver
    if contact is None:
        return CheckResult(NAME, Status.SKIP, "no receiver given (--to)")
    if contact.hello is None:
        return CheckResult(NAME, Status.FAIL, contact.problem, contact.fix)
    hello = contact.hello
    if hello.protocol_version != PROTOCOL_VERSION:
        return CheckResult(
            NAME,
            Status.FAIL,
            f"the receiver at {contact.address} speaks protocol {hello.protocol_version} "
            f"but this sender speaks {PROTOCOL_VERSION}",
            "run the same cvm-migrate version on both ends",
        )
    return CheckResult(
        NAME,
        Status.PASS,
        f"{contact.address} answered and accepted the token "
        f"(receiver {hello.receiver_version}, protocol {hello.protocol_version})",
    )


def unreached(context: CheckContext, name: str) -> CheckResult | None:
    """The SKIP of a check that needs the receiver's answer, when there is none."""
    contact = context.receiver
    if contact is None:
        return CheckResult(name, Status.SKIP, "no receiver given (--to)")
    if contact.hello is None:
        return CheckResult(name, Status.SKIP, "the receiver was not reached")
    return None
