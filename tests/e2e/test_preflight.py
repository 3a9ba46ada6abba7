"""`run` checks before it moves anything: a failed check stops it, IgnoreCheck skips them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from sender.cli import build_parser, run_preflight
from sender.options import run_options
from sender.tree_count import count_tree

if TYPE_CHECKING:
    from tests.conftest import ReceiverProcess, StartReceiver

REPO = Path(__file__).resolve().parents[2]
CHECKS_FAILED, TARGET_FULL = 14, 10


@pytest.fixture
def small_target(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "dst"
    root.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4M", "tmpfs", str(root)], check=True)
    try:
        yield root
    finally:
        subprocess.run(["umount", "-l", str(root)], check=False)


def _run(
    src: Path, target: ReceiverProcess, cwd: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "sender", "run", str(src), "--to", target.address]
    command += ["--insecure", "--no-default-excludes", *args]
    env = {**os.environ, "CVM_MIGRATE_TOKEN": target.token, "PYTHONPATH": str(REPO)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def test_a_failed_check_stops_the_run_before_any_data(
    tmp_path: Path, small_target: Path, receiver: StartReceiver
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "big").write_bytes(os.urandom(8 << 20))  # more than the 4 MiB target holds
    target = receiver(small_target, tmp_path / "state")

    stopped = _run(src, target, tmp_path)
    assert stopped.returncode == CHECKS_FAILED, stopped.stderr
    assert "FAIL" in stopped.stderr and "target space" in stopped.stderr
    assert list(small_target.iterdir()) == []

    config = tmp_path / "client.json"
    config.write_text(json.dumps({"Client": {"Extra": {"IgnoreCheck": True}}}))
    for skip in (["--ignore-check"], ["--config", str(config)]):
        went_on = _run(src, target, tmp_path, *skip)
        assert went_on.returncode == TARGET_FULL, went_on.stderr
        assert "target space" not in went_on.stderr


def test_the_preflight_count_gives_the_run_its_totals(
    tmp_path: Path, receiver: StartReceiver
) -> None:
    """The target-space check walks SRC; the run takes its totals from that walk
    instead of pre-scanning the tree once more."""
    src = tmp_path / "src"
    for i in range(20):
        (src / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (src / f"d{i % 3}" / f"f{i}").write_bytes(os.urandom(1000 + i))
    (tmp_path / "dst").mkdir()
    target = receiver(tmp_path / "dst", tmp_path / "state")
    args = build_parser().parse_args(
        ["run", str(src), "--to", target.address, "--insecure", "--no-default-excludes"]
    )
    options = run_options(args, {"CVM_MIGRATE_TOKEN": target.token})

    counted = run_preflight(options)
    assert counted is not None
    assert counted == count_tree(os.fsencode(src), options.walk)
    assert (counted.files, counted.file_bytes) == (20, sum(1000 + i for i in range(20)))
