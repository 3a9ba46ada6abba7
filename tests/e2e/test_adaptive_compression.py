"""--compress-level: auto compresses harder while the link is the bottleneck; fixed levels
and 0 behave as they always did. Real sender and receiver processes over loopback, judged
by the summary and by rsync."""

from __future__ import annotations

import random
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from sender.adaptive_level import START_LEVEL
from tests.oracle import copy_differences

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import RunSender, StartReceiver

MiB = 1 << 20
# Small frames, so a run of a few MiB gives the controller hundreds of frames to judge.
CHUNK_ARGS = ("--chunk-size", "0.0625", "--streams", "1")


def _write_text_tree(root: Path, *, files: int = 12, file_bytes: int = 1 * MiB) -> int:
    """Prose-like files from a fixed vocabulary: level 1 leaves a lot that higher levels
    find. Their total size."""
    rng = random.Random(20261128)
    vocabulary = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 10)))
        for _ in range(3000)
    ]
    root.mkdir()
    for i in range(files):
        words: list[str] = []
        size = 0
        while size < file_bytes:
            line = " ".join(rng.choices(vocabulary, k=12)) + "\n"
            words.append(line)
            size += len(line)
        (root / f"notes-{i:02}.txt").write_text("".join(words)[:file_bytes])
    (root / "small").mkdir()
    for i in range(50):
        (root / "small" / f"s{i}.cfg").write_text(f"key{i} = {rng.choice(vocabulary)}\n" * 40)
    return files * file_bytes


def _migrate(
    tmp_path: Path,
    name: str,
    src: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
    *args: str,
) -> dict[str, Any]:
    root = tmp_path / name
    root.mkdir()
    process = receiver(root, tmp_path / f"{name}-state")
    result = run_sender(src, process, "--no-default-excludes", *CHUNK_ARGS, *args)
    assert copy_differences(src, root) == []
    assert result.summary is not None
    return result.summary


def test_auto_compresses_harder_on_a_slow_link(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    src = tmp_path / "src"
    _write_text_tree(src)
    fixed = _migrate(tmp_path, "fixed", src, receiver, run_sender, "--compress-level", "1")
    auto = _migrate(
        tmp_path, "auto", src, receiver, run_sender, "--compress-level", "auto", "--bwlimit", "512"
    )
    levels = {int(level): n for level, n in auto["frames_per_level"].items()}
    assert max(levels) > START_LEVEL, auto
    assert auto["compress_level_mean"] > START_LEVEL, auto
    assert fixed["frames_per_level"].keys() == {"1"}
    assert auto["bytes_sent_raw"] == fixed["bytes_sent_raw"]
    assert auto["bytes_sent_wire"] < fixed["bytes_sent_wire"], (auto, fixed)


@pytest.mark.parametrize("level", [0, 5])
def test_a_fixed_level_stays_put(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender, level: int
) -> None:
    src = tmp_path / "src"
    raw = _write_text_tree(src, files=4)
    summary = _migrate(tmp_path, "dst", src, receiver, run_sender, "--compress-level", str(level))
    assert summary["frames_per_level"].keys() == {str(level)}
    assert summary["compress_level_mean"] == level
    assert summary["bytes_sent_raw"] >= raw
    if level == 0:
        assert summary["bytes_sent_wire"] == summary["bytes_sent_raw"]
    else:
        assert summary["bytes_sent_wire"] < summary["bytes_sent_raw"] / 2


def test_a_level_that_is_neither_auto_nor_a_number_is_refused(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    src = tmp_path / "src"
    src.mkdir()
    root = tmp_path / "dst"
    root.mkdir()
    process = receiver(root, tmp_path / "state")
    for bad in ("fast", "23", "-1"):
        result = run_sender(src, process, "--compress-level", bad, check=False)
        assert result.returncode != 0
        assert "--compress-level" in result.stderr, result.describe()
