"""`cvm-migrate verify`: identical trees pass; each kind of difference is reported.

A real receiver holds a migrated copy; the test then changes the source and
the target in one way per kind of difference and reads verify's lines and JSON.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.conftest import ReceiverProcess, RunSender, StartReceiver

REPO = Path(__file__).resolve().parents[2]
VERIFY_MISMATCH = 12


def _verify(
    src: Path, receiver: ReceiverProcess, tmp_path: Path, *args: str
) -> tuple[int, str, dict[str, object]]:
    report = tmp_path / "verify.json"
    report.unlink(missing_ok=True)
    command = [sys.executable, "-m", "sender", "verify", str(src), "--to", receiver.address]
    command += ["--insecure", "--no-default-excludes", "--json", str(report), *args]
    done = subprocess.run(
        command,
        cwd=tmp_path,
        env={**os.environ, "CVM_MIGRATE_TOKEN": receiver.token, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return done.returncode, done.stdout, json.loads(report.read_text())


def _build(src: Path) -> None:
    (src / "dir").mkdir(parents=True)
    for name in ("same", "content", "mode", "gone", "kind"):
        (src / "dir" / name).write_text(f"{name}\n")
    os.symlink("same", src / "dir" / "link")
    os.link(src / "dir" / "same", src / "hardlink")


@pytest.fixture
def migrated(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> tuple[Path, Path, ReceiverProcess]:
    src, dst = tmp_path / "src", tmp_path / "dst"
    dst.mkdir()
    _build(src)
    target = receiver(dst, tmp_path / "state")
    run_sender(src, target, "--no-default-excludes")
    return src, dst, target


def test_identical_trees_verify_clean(
    migrated: tuple[Path, Path, ReceiverProcess], tmp_path: Path
) -> None:
    src, _, target = migrated
    code, out, report = _verify(src, target, tmp_path)
    assert code == 0, out
    assert report["identical"] is True
    assert report["differences"] == []
    assert report["checked"] == 9  # root, dir, 5 files, a symlink, a hardlink


def test_each_kind_of_difference_is_reported(
    migrated: tuple[Path, Path, ReceiverProcess], tmp_path: Path
) -> None:
    src, dst, target = migrated
    (src / "dir" / "content").write_text("CONTENT\n")  # same size, other bytes
    os.utime(src / "dir" / "content", ns=(0, os.stat(dst / "dir" / "content").st_mtime_ns))
    (src / "dir" / "mode").chmod(0o600)
    (dst / "dir" / "gone").unlink()
    (dst / "extra").write_text("only on the target\n")
    (dst / "dir" / "kind").unlink()
    (dst / "dir" / "kind").mkdir()
    os.unlink(dst / "hardlink")
    (dst / "hardlink").write_text("same\n")
    os.symlink("elsewhere", dst / "dir" / "link.tmp")
    os.replace(dst / "dir" / "link.tmp", dst / "dir" / "link")
    # Restore the directories' mtimes so only the intended differences remain.
    for path in (dst, dst / "dir"):
        st = os.stat(src / path.relative_to(dst))
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))

    code, out, report = _verify(src, target, tmp_path)

    assert code == VERIFY_MISMATCH, out
    found = {(d["kind"], d["path"]) for d in report["differences"]}  # type: ignore[attr-defined]
    assert found == {
        ("content", "/dir/content"),
        ("metadata", "/dir/mode"),
        ("missing", "/dir/gone"),
        ("extra", "/extra"),
        ("type", "/dir/kind"),
        ("metadata", "/hardlink"),
        ("metadata", "/dir/link"),
    }
    assert report["counts"] == {"content": 1, "metadata": 3, "missing": 1, "extra": 1, "type": 1}
    assert "mode 0600 != 0644" in out
    assert "content  /dir/content" in out


def test_excluded_extra_paths_are_not_reported(
    migrated: tuple[Path, Path, ReceiverProcess], tmp_path: Path
) -> None:
    src, dst, target = migrated
    (dst / "notes.keep").write_text("the target's own\n")
    st = os.stat(src)
    os.utime(dst, ns=(st.st_atime_ns, st.st_mtime_ns))
    code, out, report = _verify(src, target, tmp_path, "--exclude", "*.keep")
    assert code == 0, out
    assert report["identical"] is True
