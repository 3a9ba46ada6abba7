"""Clock skew between this host and the receiver.

Skewed clocks break TLS (the receiver's certificate is backdated only five
minutes, common/tls.py), expire tokens early, and leave files with mtimes in
the future, which make later incremental passes compare wrongly.
"""

from __future__ import annotations

from sender.checks.context import CheckContext
from sender.checks.reachability import unreached
from sender.checks.result import CheckResult, Status

NAME = "clock skew"
PASS_WITHIN_S = 5.0
# Beyond the receiver certificate's five minutes of backdating.
WARN_WITHIN_S = 300.0
_FIX = "sync time (chronyd/ntpd) on both hosts"


def measured_skew(
    sent_at: float, answered_at: float, receiver_time_s: float
) -> tuple[float, float]:
    """(skew, uncertainty) in seconds; skew > 0 means the receiver's clock is ahead.

    The receiver read its clock somewhere between our two readings, so the
    midpoint is the best guess and half the round trip bounds the error.
    """
    round_trip = max(0.0, answered_at - sent_at)
    return receiver_time_s - (sent_at + answered_at) / 2, round_trip / 2


def check_clock_skew(context: CheckContext) -> CheckResult:
    skipped = unreached(context, NAME)
    if skipped is not None:
        return skipped
    contact = context.receiver
    assert contact is not None and contact.hello is not None
    skew, error = measured_skew(
        contact.sent_at, contact.answered_at, contact.hello.receiver_time_unix_ns / 1e9
    )
    side = "ahead of" if skew > 0 else "behind"
    words = f"the receiver's clock is {abs(skew):.1f} s {side} this host's (±{error:.2f} s)"
    # Judged by the least skew the measurement allows, so a slow link never fails it.
    least = max(0.0, abs(skew) - error)
    if least <= PASS_WITHIN_S:
        return CheckResult(NAME, Status.PASS, words)
    if least <= WARN_WITHIN_S:
        return CheckResult(NAME, Status.WARN, words, _FIX)
    return CheckResult(NAME, Status.FAIL, f"{words}: TLS, tokens and file times go wrong", _FIX)
