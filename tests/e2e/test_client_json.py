"""client.json and --bwlimit/--daemon through real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from tests.oracle import copy_differences

if TYPE_CHECKING:
    from tests.conftest import RunSender, StartReceiver

REPO = Path(__file__).resolve().parents[2]


def _client_json(directory: Path, **rsync: object) -> Path:
    path = directory / "client.json"
    path.write_text(json.dumps({"Client": {"Rsync": rsync, "Extra": {"IgnoreCheck": True}}}))
    return path


def test_checksum_from_client_json_catches_same_size_same_mtime_changes(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    (src / "conf").write_text("listen 80\n")
    target = receiver(dst, tmp_path / "state")
    run_sender(src, target, "--no-default-excludes")
    mtime = (src / "conf").stat().st_mtime_ns
    (src / "conf").write_text("listen 81\n")
    os.utime(src / "conf", ns=(mtime, mtime))

    quick = run_sender(src, target, "--no-default-excludes")
    assert quick.summary is not None and quick.summary["files_transferred"] == 0

    config = _client_json(tmp_path, Checksum=True)
    checked = run_sender(src, target, "--no-default-excludes", "--config", str(config))
    assert checked.summary is not None and checked.summary["files_transferred"] == 1
    assert copy_differences(src, dst) == []


def test_bandwidth_limit_from_client_json_slows_the_run_and_the_flag_wins(
    tmp_path: Path, receiver: StartReceiver, run_sender: RunSender
) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    src.mkdir(), dst.mkdir()
    (src / "blob").write_bytes(os.urandom(3 << 20))  # incompressible: wire == raw
    target = receiver(dst, tmp_path / "state")
    config = _client_json(tmp_path, BandwidthLimit=1024)  # KBytes/s

    limited = run_sender(src, target, "--no-default-excludes", "--config", str(config))
    assert limited.summary is not None
    # A lower bound only: the limit can make a run slower, never faster. At 1 MiB/s
    # with a quarter-second burst, 3 MiB needs at least 2.75 s.
    assert limited.summary["elapsed_s"] >= 2.5
    assert copy_differences(src, dst) == []

    (dst / "blob").unlink()
    unlimited = run_sender(
        src, target, "--no-default-excludes", "--config", str(config), "--bwlimit", "0"
    )
    assert unlimited.summary is not None
    assert unlimited.summary["bytes_sent_wire"] >= 3 << 20
    assert unlimited.summary["elapsed_s"] < limited.summary["elapsed_s"]


def test_daemon_returns_at_once_and_the_worker_finishes_the_job(
    tmp_path: Path, receiver: StartReceiver
) -> None:
    src, dst, work = tmp_path / "src", tmp_path / "dst", tmp_path / "work"
    for d in (src, dst, work):
        d.mkdir()
    (src / "file").write_text("migrated in the background\n")
    target = receiver(dst, tmp_path / "state")
    summary = work / "summary.json"
    command = [sys.executable, "-m", "sender", "run", str(src), "--to", target.address]
    command += ["--insecure", "--no-default-excludes", "--daemon", "--summary-json", str(summary)]
    env = {**os.environ, "CVM_MIGRATE_TOKEN": target.token, "PYTHONPATH": str(REPO)}
    done = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "running in the background as PID" in done.stdout

    deadline = time.monotonic() + 60
    while not summary.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert json.loads(summary.read_text())["exit_code"] == 0
    assert copy_differences(src, dst) == []
    assert "session" in (work / "logs" / "cvm-migrate.log").read_text()
