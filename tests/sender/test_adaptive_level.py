"""--compress-level auto: the level follows whichever end of the frame queue waits."""

from __future__ import annotations

from itertools import pairwise

import pytest

from sender.adaptive_level import (
    HIGHEST_LEVEL,
    LOWEST_LEVEL,
    START_LEVEL,
    AdaptiveLevel,
    Judgement,
)

# (link wait, gRPC starved, compressing) per frame, in seconds.
Waits = tuple[float, float, float]
LINK_BOUND = (0.05, 0.0, 0.01)  # the frame maker waited 50 ms to hand each frame over
MAKER_BOUND = (0.0, 0.05, 0.04)  # gRPC waited 50 ms for each frame; compressing took 40
DISK_BOUND = (0.0, 0.05, 0.005)  # gRPC waited as long, but reading took the maker's time
BALANCED = (0.02, 0.02, 0.02)
IDLE = (0.0, 0.0, 0.0)
NOISE = (0.001, 0.0, 0.0)  # a link wait too small to act on


JUDGED = Judgement().frames  # frames per judgement
STEP = JUDGED * Judgement().streak  # frames per level change, at the fastest


def _levels(controller: AdaptiveLevel, waits: Waits, frames: int) -> list[int]:
    return [controller.observe(*waits) for _ in range(frames)]


def test_starts_at_the_old_default_and_within_its_bounds() -> None:
    assert AdaptiveLevel().level == START_LEVEL == 3
    assert (LOWEST_LEVEL, HIGHEST_LEVEL) == (0, 9)
    with pytest.raises(ValueError):
        AdaptiveLevel(start=10)


def test_rises_one_level_at_a_time_while_the_link_is_the_bottleneck() -> None:
    levels = _levels(AdaptiveLevel(), LINK_BOUND, 200)
    assert levels[-1] == HIGHEST_LEVEL
    steps = [b - a for a, b in pairwise([START_LEVEL, *levels])]
    assert set(steps) <= {0, 1}
    # The same verdict on judgements in a row before moving: never two changes closer.
    changes = [i for i, step in enumerate(steps) if step]
    assert all(b - a >= STEP for a, b in pairwise(changes))
    assert max(levels) == HIGHEST_LEVEL


def test_falls_to_raw_while_reading_and_compressing_are_the_bottleneck() -> None:
    levels = _levels(AdaptiveLevel(), MAKER_BOUND, 200)
    assert levels[-1] == LOWEST_LEVEL == 0
    assert min(levels) == LOWEST_LEVEL
    steps = [a - b for a, b in pairwise([START_LEVEL, *levels])]
    assert set(steps) <= {0, 1}


@pytest.mark.parametrize(
    "waits",
    [BALANCED, IDLE, NOISE, DISK_BOUND],
    ids=["balanced", "no-waits", "waits-too-small", "disk-bound"],
)
def test_holds_still_when_a_level_change_would_not_help(waits: Waits) -> None:
    assert set(_levels(AdaptiveLevel(), waits, 500)) == {START_LEVEL}


def test_alternating_signals_within_a_judgement_do_not_move_it() -> None:
    controller = AdaptiveLevel()
    levels = [controller.observe(*(LINK_BOUND if i % 2 else MAKER_BOUND)) for i in range(400)]
    assert set(levels) == {START_LEVEL}


def test_one_judgement_alone_does_not_move_it() -> None:
    controller = AdaptiveLevel()
    levels = _levels(controller, LINK_BOUND, JUDGED) + _levels(controller, BALANCED, JUDGED)
    levels += _levels(controller, LINK_BOUND, JUDGED) + _levels(controller, BALANCED, JUDGED)
    assert set(levels) == {START_LEVEL}


def test_follows_the_link_when_it_changes() -> None:
    controller = AdaptiveLevel()
    up = _levels(controller, LINK_BOUND, 3 * STEP)
    assert up[-1] == START_LEVEL + 3
    down = _levels(controller, MAKER_BOUND, 2 * STEP)
    assert down[-1] == START_LEVEL + 1


def test_stays_within_custom_bounds() -> None:
    controller = AdaptiveLevel(start=1, lowest=1, highest=2)
    assert set(_levels(controller, LINK_BOUND, 100)) == {1, 2}
    assert controller.level == 2
    assert set(_levels(controller, MAKER_BOUND, 100)) == {1, 2}
    assert controller.level == 1
