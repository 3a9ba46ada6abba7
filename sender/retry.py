"""Running a migration again after the link drops or the receiver restarts.

Each attempt resumes from what the receiver acknowledged, so running again
costs a re-walk, not a re-send. Attempts are spaced by exponential backoff
with full jitter and stop once the retry budget, counted from the first
failure, is spent.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from common.errors import MigrateError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetryPolicy:
    # How long after the first failure attempts may still start.
    retry_for_s: float = 300.0
    first_delay_s: float = 1.0
    max_delay_s: float = 30.0

    def delay(self, failures: int, draw: float) -> float:
        """The pause before attempt `failures + 1`: full jitter over the backoff."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2 ** (failures - 1))
        return ceiling * draw


def with_retries(
    attempt: Callable[[], None],
    policy: RetryPolicy,
    *,
    worth_retrying: Callable[[MigrateError], bool] = lambda error: True,
    on_retry: Callable[[MigrateError, float], None] = lambda error, delay: None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    draw: Callable[[], float] = random.random,
) -> None:
    """Call `attempt` until it succeeds, fails for good, or the budget is spent."""
    failures = 0
    deadline: float | None = None
    while True:
        try:
            attempt()
            return
        except MigrateError as error:
            if not (error.retryable and worth_retrying(error)):
                raise
            now = clock()
            deadline = now + policy.retry_for_s if deadline is None else deadline
            if now >= deadline:
                raise
            failures += 1
            pause = min(policy.delay(failures, draw()), deadline - now)
            log.warning("%s; trying again in %.1f s", error, pause)
            on_retry(error, pause)
            sleep(pause)
