"""Bounded retries with exponential backoff and full jitter for Tencent Cloud API calls.

Written here rather than taken from the SDK: `StandardRetryer` in 3.1.x keeps the first
error and re-raises it even after a later attempt succeeded (TESTING.md).

What may be retried is a table, not a guess (rclone's fserrors: retryable vs. fatal):
- RequestLimitExceeded* on any action: the request was refused before it did anything, so
  sending it again cannot run a command or create an image twice.
- Network errors and InternalError only on read-only Describe* actions: a RunCommand or
  CreateImage whose answer was lost may have happened, so it is never sent blindly again.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

THROTTLE_PREFIX = "RequestLimitExceeded"
# Failures of the call rather than of the request: the cloud may or may not have acted.
TRANSIENT_CODES = frozenset(
    {"ClientNetworkError", "ServerNetworkError", "InternalError", "ResourceUnavailable"}
)
READ_ONLY_PREFIX = "Describe"


class ApiFailure(Exception):
    """One refused or failed API call, as the cloud (or the SDK) reported it."""

    def __init__(self, action: str, code: str, message: str, request_id: str | None) -> None:
        super().__init__(action, code, message, request_id)
        self.action = action
        self.code = code
        self.message = message
        self.request_id = request_id

    def __str__(self) -> str:
        return f"{self.action}: {self.code}: {self.message} (RequestId {self.request_id})"


def is_throttle(code: str) -> bool:
    return code.startswith(THROTTLE_PREFIX)


def is_retryable(failure: ApiFailure) -> bool:
    if is_throttle(failure.code):
        return True
    return failure.action.startswith(READ_ONLY_PREFIX) and failure.code in TRANSIENT_CODES


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try: at most `max_attempts` calls and `max_elapsed_s` seconds in all.

    Tencent Cloud's default limit is 20 requests/s per action (the API docs of
    CreateSecurityGroupPolicies, DescribeInstances); a throttled caller is back under it
    within a second or two, so 0.5 s doubling to a 8 s cap is enough.
    """

    max_attempts: int = 6
    base_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_elapsed_s: float = 60.0

    def delay_cap(self, retry_number: int) -> float:
        """The upper bound of the wait before retry number `retry_number` (0 for the first)."""
        return float(min(self.max_delay_s, self.base_delay_s * 2.0**retry_number))


class Retrier:
    """Calls a function until it succeeds, fails for good, or the policy's bounds are hit."""

    def __init__(
        self,
        policy: RetryPolicy,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
        rng: random.Random | None = None,
        on_retry: Callable[[ApiFailure, float], None] | None = None,
    ) -> None:
        self._policy = policy
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._on_retry = on_retry

    def delay(self, retry_number: int) -> float:
        """Full jitter (uniform in [0, cap]): spreads out callers throttled together."""
        return self._rng.uniform(0.0, self._policy.delay_cap(retry_number))

    def call(self, fn: Callable[[], T]) -> T:
        """fn's result; re-raises its last ApiFailure if not retryable or out of budget."""
        start = self._clock()
        attempt = 1
        while True:
            try:
                return fn()
            except ApiFailure as failure:
                if not is_retryable(failure) or attempt >= self._policy.max_attempts:
                    raise
                wait = self.delay(attempt - 1)
                if self._clock() + wait - start > self._policy.max_elapsed_s:
                    raise
                if self._on_retry is not None:
                    self._on_retry(failure, wait)
                self._sleep(wait)
                attempt += 1
