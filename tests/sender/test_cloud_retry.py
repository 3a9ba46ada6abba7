"""The retrier: what it retries, how long it waits, and that it stops."""

from __future__ import annotations

import random

import pytest

from sender.cloud.retry import ApiFailure, Retrier, RetryPolicy, is_retryable
from tests.tencent_standin import FakeClock


def failure(action: str, code: str) -> ApiFailure:
    return ApiFailure(action, code, "boom", "req-1")


@pytest.mark.parametrize(
    ("action", "code", "retryable"),
    [
        ("DescribeInstances", "RequestLimitExceeded", True),
        ("DescribeInstances", "RequestLimitExceeded.UinLimitExceeded", True),
        ("DescribeInstances", "InternalError", True),
        ("DescribeInvocationTasks", "ClientNetworkError", True),
        ("DescribeImages", "ServerNetworkError", True),
        ("DescribeInstances", "AuthFailure.SignatureFailure", False),
        ("DescribeInstances", "InvalidParameter", False),
        ("RunCommand", "RequestLimitExceeded", True),
        ("RunCommand", "InternalError", False),
        ("RunCommand", "ClientNetworkError", False),
        ("CreateImage", "RequestLimitExceeded.GlobalRegionUinLimitExceeded", True),
        ("CreateImage", "ServerNetworkError", False),
        ("CreateSecurityGroupPolicies", "InternalError", False),
    ],
)
def test_what_is_retried(action: str, code: str, retryable: bool) -> None:
    assert is_retryable(failure(action, code)) is retryable


class Flaky:
    """Fails with `code` `failures` times, then returns "ok"."""

    def __init__(self, action: str, code: str, failures: int) -> None:
        self.failure = failure(action, code)
        self.left = failures
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.failure
        return "ok"


def retrier(clock: FakeClock, policy: RetryPolicy | None = None, seed: int = 1) -> Retrier:
    return Retrier(policy or RetryPolicy(), clock, clock.sleep, random.Random(seed))


def test_success_after_failures_returns_the_success() -> None:
    # StandardRetryer in SDK 3.1.x re-raises the first error even after a success.
    clock = FakeClock()
    fn = Flaky("DescribeInstances", "RequestLimitExceeded", 3)

    assert retrier(clock).call(fn) == "ok"
    assert fn.calls == 4
    assert len(clock.sleeps) == 3


def test_attempts_are_bounded() -> None:
    clock = FakeClock()
    fn = Flaky("DescribeInstances", "RequestLimitExceeded", 1000)

    with pytest.raises(ApiFailure):
        retrier(clock, RetryPolicy(max_attempts=4)).call(fn)
    assert fn.calls == 4
    assert len(clock.sleeps) == 3


def test_time_is_bounded() -> None:
    clock = FakeClock()
    policy = RetryPolicy(max_attempts=1000, base_delay_s=1.0, max_delay_s=10.0, max_elapsed_s=30.0)
    fn = Flaky("DescribeInstances", "RequestLimitExceeded", 10**6)

    with pytest.raises(ApiFailure):
        retrier(clock, policy).call(fn)
    assert sum(clock.sleeps) <= 30.0
    assert fn.calls < 1000


def test_a_slow_call_counts_against_the_time_budget() -> None:
    clock = FakeClock()

    def slow_throttled() -> str:
        clock.now += 100.0  # the call itself took longer than the whole budget
        raise failure("DescribeInstances", "RequestLimitExceeded")

    with pytest.raises(ApiFailure):
        retrier(clock, RetryPolicy(max_elapsed_s=60.0)).call(slow_throttled)
    assert clock.sleeps == []


def test_not_retryable_is_raised_at_once() -> None:
    clock = FakeClock()
    fn = Flaky("RunCommand", "InternalError", 1)

    with pytest.raises(ApiFailure) as raised:
        retrier(clock).call(fn)
    assert raised.value.code == "InternalError"
    assert fn.calls == 1
    assert clock.sleeps == []


def test_delay_caps_grow_exponentially_to_the_maximum() -> None:
    policy = RetryPolicy(base_delay_s=0.5, max_delay_s=8.0)
    assert [policy.delay_cap(n) for n in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


@pytest.mark.parametrize("retry_number", [0, 1, 3, 6])
def test_jitter_stays_in_zero_to_cap_and_spreads(retry_number: int) -> None:
    policy = RetryPolicy()
    r = retrier(FakeClock(), policy, seed=retry_number)
    cap = policy.delay_cap(retry_number)

    delays = [r.delay(retry_number) for _ in range(2000)]

    assert all(0.0 <= d <= cap for d in delays)
    # Full jitter: spread over the whole range, not clustered at the cap.
    assert min(delays) < 0.1 * cap
    assert max(delays) > 0.9 * cap
    assert 0.4 * cap < sum(delays) / len(delays) < 0.6 * cap
