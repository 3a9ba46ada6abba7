"""`cvm-migrate check` as a process: lines or JSON on stdout, exit code 0 pass, 1 warn, 2 fail.

The sender runs as its own process against real receivers over TCP (one per kind for the
module: a check only says Hello, which changes nothing there); the server it checks
is a fake host root (--host-root) built like a real one, with the running kernel's release
so the virtio check finds its modules.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, ReceiverProcess
from tests.sender.checks_host import FakeHost, healthy_host
from tests.sender.checks_receivers import shared_receiver

SHIM = REPO_ROOT / "tests" / "sender" / "checks_cli_shim.py"
CHECK_TIMEOUT_S = 60.0
CHECK_NAMES = [
    "root privileges",
    "host root",
    "virtio drivers",
    "selinux",
    "log space",
    "receiver",
    "clock skew",
    "target space",
    "os family",
]


def run_check(
    workdir: Path, *args: str, token: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(REPO_ROOT), env.get("PYTHONPATH"))))
    env.pop("CVM_MIGRATE_TOKEN", None)
    if token is not None:
        env["CVM_MIGRATE_TOKEN"] = token
    workdir.mkdir(exist_ok=True)  # logs/ goes here
    return subprocess.run(
        [sys.executable, str(SHIM), "check", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=workdir,
        timeout=CHECK_TIMEOUT_S,
    )


def report_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout, done.stderr
    report: dict[str, Any] = json.loads(done.stdout)
    assert set(report) == {"checks", "exit_code"}
    assert report["exit_code"] == done.returncode, done.stdout
    for check in report["checks"]:
        assert set(check) == {"name", "status", "message", "fix"}
        assert check["status"] in {"PASS", "WARN", "FAIL", "SKIP"}
    assert [c["name"] for c in report["checks"]] == CHECK_NAMES
    return report


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {c["name"]: c["status"] for c in report["checks"]}


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return healthy_host(tmp_path / "host", os.uname().release)


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A plaintext receiver whose root holds an Ubuntu, like the healthy host."""
    base = tmp_path_factory.mktemp("target")
    root = FakeHost(base / "root").os_release("ubuntu", "debian", "22.04").root
    with shared_receiver(root, base / "state", base / "logs") as process:
        yield process


@pytest.fixture(scope="module")
def tls_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """The same behind TLS with its self-signed certificate."""
    base = tmp_path_factory.mktemp("tls-target")
    root = FakeHost(base / "root").os_release("ubuntu", "debian", "22.04").root
    with shared_receiver(root, base / "state", base / "logs", tls=True) as process:
        yield process


def test_without_a_receiver_all_pass(host: FakeHost, tmp_path: Path) -> None:
    done = run_check(tmp_path / "work", "--host-root", str(host.root), "--json")
    report = report_of(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(report)["receiver"] == "SKIP"
    assert statuses(report)["virtio drivers"] == "PASS"


def test_against_a_receiver_all_pass(
    host: FakeHost, target: ReceiverProcess, tmp_path: Path
) -> None:
    done = run_check(
        tmp_path / "work",
        "--host-root",
        str(host.root),
        "--to",
        target.address,
        *target.trust_args,
        "--json",
        token=target.token,
    )
    report = report_of(done)
    assert done.returncode == 0, done.stdout + done.stderr
    assert set(statuses(report).values()) == {"PASS"}


def test_a_warning_exits_1_and_prints_one_line_per_check(
    host: FakeHost, target: ReceiverProcess, tmp_path: Path
) -> None:
    host.selinux(config="enforcing")
    done = run_check(
        tmp_path / "work",
        "--host-root",
        str(host.root),
        "--to",
        target.address,
        *target.trust_args,
        token=target.token,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(CHECK_NAMES)
    assert lines[0] == "PASS  root privileges: running as root"
    selinux = next(line for line in lines if line.startswith("WARN  selinux: "))
    assert " — fix: create /.autorelabel" in selinux
    assert any(line.startswith("PASS  receiver: ") for line in lines)


def test_a_wrong_token_exits_2(host: FakeHost, target: ReceiverProcess, tmp_path: Path) -> None:
    done = run_check(
        tmp_path / "work",
        "--host-root",
        str(host.root),
        "--to",
        target.address,
        *target.trust_args,
        "--json",
        token="not-the-token",
    )
    report = report_of(done)
    assert done.returncode == 2, done.stdout + done.stderr
    found = statuses(report)
    assert found["receiver"] == "FAIL"
    assert found["clock skew"] == found["target space"] == found["os family"] == "SKIP"
    receiver_check = next(c for c in report["checks"] if c["name"] == "receiver")
    assert "refused the token" in receiver_check["message"]


def test_missing_virtio_exits_2(tmp_path: Path) -> None:
    host = FakeHost(tmp_path / "host", os.uname().release).os_release("centos", "rhel fedora")
    host.modules(installed=("virtio_net", "virtio_pci", "virtio", "virtio_ring"))
    host.initramfs(["virtio_pci", "virtio", "virtio_ring"], compression="xz", style="rhel")
    done = run_check(tmp_path / "work", "--host-root", str(host.root), "--json")
    report = report_of(done)
    assert done.returncode == 2
    virtio = next(c for c in report["checks"] if c["name"] == "virtio drivers")
    assert virtio["status"] == "FAIL"
    assert "dracut" in virtio["fix"]


def test_a_pinned_tls_receiver(host: FakeHost, tls_target: ReceiverProcess, tmp_path: Path) -> None:
    done = run_check(
        tmp_path / "work",
        "--host-root",
        str(host.root),
        "--to",
        tls_target.address,
        *tls_target.trust_args,
        "--json",
        token=tls_target.token,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert statuses(report_of(done))["receiver"] == "PASS"


def test_no_trust_option_is_a_config_error(
    host: FakeHost, target: ReceiverProcess, tmp_path: Path
) -> None:
    done = run_check(
        tmp_path / "work", "--host-root", str(host.root), "--to", target.address, token="t"
    )
    assert done.returncode == 3, done.stdout + done.stderr  # ConfigError
    assert "say how to trust the receiver" in done.stderr
