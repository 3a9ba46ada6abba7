"""Waiting for a cloud resource to reach a final state, with the clock passed in."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from sender.cloud.errors import CloudWaitTimeout

T = TypeVar("T")


@dataclass(frozen=True)
class Timing:
    """The clock and sleep of a run; tests pass fake ones so waits take no time."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]


def poll_until_final(
    fetch: Callable[[], tuple[str, T]],
    is_final: Callable[[str], bool],
    *,
    timing: Timing,
    interval_s: float,
    timeout_s: float,
    subject: tuple[str, str],
    on_state: Callable[[str], None] = lambda state: None,
) -> T:
    """Calls `fetch` (state, value) every `interval_s` until the state is final; its value.

    `subject` is (kind, id) for the CloudWaitTimeout raised after `timeout_s`;
    `on_state` hears each state change once.
    """
    start = timing.clock()
    last = ""
    while True:
        state, value = fetch()
        if state != last:
            on_state(state)
            last = state
        if is_final(state):
            return value
        if timing.clock() - start >= timeout_s:
            raise CloudWaitTimeout(subject[0], subject[1], round(timeout_s), state)
        timing.sleep(interval_s)
