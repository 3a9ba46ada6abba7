"""The progress rate: right from its first reading, then smoothed."""

from __future__ import annotations

import pytest

from sender.progress import RateMeter

MIB = 1 << 20


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_first_reading_is_the_rate_since_the_meter_was_made() -> None:
    clock = FakeClock()
    meter = RateMeter(clock)
    clock.now += 5.0
    # Half a run done in the first 5 s: its rate, not 0 B/s or a fraction of it.
    assert meter.update(50 * MIB) == pytest.approx(10 * MIB)


def test_later_readings_are_smoothed() -> None:
    clock = FakeClock()
    meter = RateMeter(clock)
    clock.now += 5.0
    meter.update(50 * MIB)  # 10 MiB/s
    clock.now += 5.0
    rate = meter.update(50 * MIB)  # nothing in the next 5 s
    # Over a 10 s window, 5 s of stall moves the rate halfway towards 0.
    assert rate == pytest.approx(5 * MIB)


def test_no_time_elapsed_keeps_the_rate() -> None:
    clock = FakeClock()
    meter = RateMeter(clock)
    assert meter.update(MIB) == 0.0
    clock.now += 2.0
    assert meter.update(3 * MIB) == pytest.approx(1.5 * MIB)
    assert meter.update(9 * MIB) == pytest.approx(1.5 * MIB)
