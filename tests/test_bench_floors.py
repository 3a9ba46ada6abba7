"""bench/floors.py on a tiny tree, without root: the jobs do what they say, the scratch dir
is the only thing deleted, and the table's floors are derived from the medians."""

from __future__ import annotations

import json
import os
from dataclasses import asdict
from pathlib import Path

import pytest

from bench import datasets as ds
from bench import floors


def _tree(root: Path) -> None:
    (root / "b" / "c").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"x" * 10)
    (root / "b" / "big").write_bytes(os.urandom(3 * floors.CHUNK + 5))
    (root / "b" / "c" / "empty").write_bytes(b"")
    (root / "b" / "link").symlink_to("../a.txt")


def test_list_tree_is_sorted_and_counts_every_entry(tmp_path: Path) -> None:
    _tree(tmp_path)
    tree = floors.list_tree(tmp_path)
    assert tree.dirs == ["b", "b/c"]
    assert tree.files == [("a.txt", 10), ("b/big", 3 * floors.CHUNK + 5), ("b/c/empty", 0)]
    assert tree.entries == 6
    assert floors.walk_lstat(tmp_path) == 6


@pytest.mark.parametrize("threads", [1, 4])
def test_read_and_write_move_every_byte(tmp_path: Path, threads: int) -> None:
    src, dest = tmp_path / "src", tmp_path / "dest"
    src.mkdir()
    dest.mkdir()
    _tree(src)
    tree = floors.list_tree(src)
    assert floors.read_all(src, tree, threads) == tree.bytes
    assert floors.write_tree(dest, tree, threads) == tree.bytes
    copied = floors.list_tree(dest)
    assert (copied.dirs, copied.files) == (tree.dirs, tree.files)  # no temp names left


def test_only_a_floors_scratch_dir_is_deleted(tmp_path: Path) -> None:
    other = tmp_path / "target"
    other.mkdir()
    with pytest.raises(ValueError):
        floors.remove_scratch(other)
    assert other.exists()
    scratch = floors.fresh_scratch(tmp_path / floors.SCRATCH_NAME)
    (scratch / "f").write_bytes(b"1")
    floors.remove_scratch(scratch)
    assert not scratch.exists()


def test_floors_are_best_read_plus_best_write() -> None:
    def sample(measurement: str, round_no: int, seconds: float) -> floors.Sample:
        return floors.Sample("d", measurement, round_no, seconds, 100, 10**6)

    samples = [
        sample("read x1", 1, 3.0),
        sample("read x1", 2, 5.0),
        sample("read x4", 1, 2.0),
        sample("write+sync x1", 1, 1.5),
        sample("write+sync x4", 1, 2.5),
    ]
    rows = floors.with_floors(floors.median_rows(samples))
    by_name = {r.measurement: r for r in rows}
    assert by_name["read x1"].seconds == 4.0
    assert by_name["floor serial (read + write)"].seconds == 3.5
    assert by_name["floor overlapped (max)"].seconds == 2.0
    table = floors.markdown_table(rows).splitlines()
    assert table[0] == "| dataset | measurement | seconds | min-max s | files/s | MB/s |"
    assert table[2] == "| d | read x1 | 4.00 | 3.00-5.00 | 25 | 0.2 |"


def test_main_without_root_writes_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(floors.os, "sync", lambda: None)  # other suites' dirty pages: not ours
    data, results = tmp_path / "data", tmp_path / "results"
    root = data / "datasets" / "system"
    root.mkdir(parents=True)
    _tree(root)
    (data / "datasets" / "system.done").write_text(json.dumps(asdict(ds.tree_stats(root))))
    argv = ["--data", str(data), "--datasets", "system", "--rounds", "2", "--no-drop-caches"]
    assert floors.main([*argv, "--results", str(results)]) == 0
    assert not (data / "work" / floors.SCRATCH_NAME).exists()
    assert sorted(os.listdir(data / "datasets")) == ["system", "system.done"]
    document = json.loads((results / "floors.json").read_text())
    assert len(document["samples"]) == 2 * 5
    measurements = [r["measurement"] for r in document["rows"]]
    assert measurements[0] == "walk+lstat"
    assert measurements[-2:] == ["floor serial (read + write)", "floor overlapped (max)"]
    assert "| system | read x4 |" in (results / "floors.md").read_text()
    assert "floor overlapped" in capsys.readouterr().out
