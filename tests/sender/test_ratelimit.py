"""The --bwlimit token bucket, on a fake clock: the average rate holds within 5%."""

from __future__ import annotations

import pytest

from sender.ratelimit import TokenBucket, from_kbytes_per_s


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.mark.parametrize(
    ("rate", "frame"), [(1 << 20, 1 << 20), (100 * 1024, 1 << 20), (10 << 20, 4096)]
)
def test_ten_seconds_of_frames_stay_within_five_percent_of_the_rate(rate: int, frame: int) -> None:
    time = FakeTime()
    bucket = TokenBucket(rate, clock=lambda: time.now, sleep=time.sleep)
    sent = 0
    while time.now < 10.0:
        bucket.take(frame)
        sent += frame
    assert sent / time.now == pytest.approx(rate, rel=0.05)


def test_idle_time_earns_only_a_short_burst() -> None:
    time = FakeTime()
    bucket = TokenBucket(1000, clock=lambda: time.now, sleep=time.sleep)
    time.now = 3600.0  # an hour idle
    bucket.take(1000)  # a quarter second of burst, then the rest is waited for
    assert time.now == pytest.approx(3600.75)


def test_zero_means_no_limit_and_the_unit_is_kibibytes() -> None:
    assert from_kbytes_per_s(0) is None
    bucket = from_kbytes_per_s(10)
    assert bucket is not None and bucket.rate == 10 * 1024
