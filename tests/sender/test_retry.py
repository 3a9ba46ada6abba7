"""The retry loop: bounded by time from the first failure, backoff with jitter,
only for errors worth retrying."""

from __future__ import annotations

import pytest

from common.errors import AuthError, ConnectError, MigrateError
from sender.retry import RetryPolicy, with_retries


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.pauses: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now += seconds


def _failing(times: int, error: MigrateError) -> tuple[list[int], object]:
    calls: list[int] = []

    def attempt() -> None:
        calls.append(1)
        if len(calls) <= times:
            raise error

    return calls, attempt


def _run(attempt: object, clock: FakeClock, policy: RetryPolicy, **kwargs: object) -> None:
    with_retries(
        attempt,  # type: ignore[arg-type]
        policy,
        clock=lambda: clock.now,
        sleep=clock.sleep,
        draw=lambda: 1.0,
        **kwargs,  # type: ignore[arg-type]
    )


def test_a_dropped_link_is_retried_with_growing_pauses_until_it_works() -> None:
    clock = FakeClock()
    calls, attempt = _failing(4, ConnectError("r:1", "link down"))
    _run(attempt, clock, RetryPolicy(retry_for_s=100, first_delay_s=1, max_delay_s=5))
    assert len(calls) == 5
    assert clock.pauses == [1, 2, 4, 5]


def test_the_budget_counts_from_the_first_failure_and_then_the_error_stands() -> None:
    clock = FakeClock()
    calls, attempt = _failing(100, ConnectError("r:1", "link down"))
    with pytest.raises(ConnectError):
        _run(attempt, clock, RetryPolicy(retry_for_s=10, first_delay_s=1, max_delay_s=4))
    assert clock.now == pytest.approx(10)
    assert len(calls) == len(clock.pauses) + 1


@pytest.mark.parametrize("error", [AuthError("r:1", "wrong token"), MigrateError("bug")])
def test_errors_about_the_data_or_the_setup_are_not_retried(error: MigrateError) -> None:
    clock = FakeClock()
    calls, attempt = _failing(1, error)
    with pytest.raises(type(error)):
        _run(attempt, clock, RetryPolicy())
    assert calls == [1]
    assert clock.pauses == []


def test_worth_retrying_can_refuse_a_retryable_error() -> None:
    clock = FakeClock()
    calls, attempt = _failing(1, ConnectError("r:1", "never reached"))
    with pytest.raises(ConnectError):
        _run(attempt, clock, RetryPolicy(), worth_retrying=lambda error: False)
    assert calls == [1]


@pytest.mark.parametrize("draw", [0.0, 0.3, 0.999])
def test_jitter_stays_within_the_backoff(draw: float) -> None:
    policy = RetryPolicy(first_delay_s=2, max_delay_s=60)
    for failures in range(1, 8):
        ceiling = min(60, 2 * 2 ** (failures - 1))
        assert 0 <= policy.delay(failures, draw) <= ceiling
