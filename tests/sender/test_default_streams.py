"""--streams: one per usable CPU by default, within bounds; an explicit count wins."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from common.errors import ConfigError
from sender.cli import build_parser
from sender.options import (
    MAX_DEFAULT_STREAMS,
    MIN_DEFAULT_STREAMS,
    default_streams,
    run_options,
)


@pytest.mark.parametrize(
    ("cpus", "streams"),
    [(1, MIN_DEFAULT_STREAMS), (2, 2), (4, 4), (8, 8), (64, MAX_DEFAULT_STREAMS)],
)
def test_default_is_one_per_cpu_within_bounds(cpus: int, streams: int) -> None:
    assert default_streams(cpus) == streams


def _options(tmp_path: Path, *extra: str) -> int:
    args = build_parser().parse_args(
        ["run", str(tmp_path), "--to", "127.0.0.1:1", "--insecure", *extra]
    )
    return run_options(args, {"CVM_MIGRATE_TOKEN": "t" * 32}).streams


def test_run_uses_this_machines_cpus_unless_told(tmp_path: Path) -> None:
    usable = len(os.sched_getaffinity(0))
    assert _options(tmp_path) == default_streams(usable)
    assert _options(tmp_path, "--streams", "5") == 5


def test_zero_streams_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--streams"):
        _options(tmp_path, "--streams", "0")
