"""End to end over a link that drops, and through an HTTP CONNECT proxy.

The link is a shaped veth pair between two network namespaces (tests/e2e/faults_netns.py):
the receiver serves 192.0.2.2 in one, the sender runs in the other, and the test cuts the
sender's side of the link. The proxy is tinyproxy on loopback (tests/e2e/faults_proxy.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.e2e.faults_netns import DST_ADDRESS, Link, shaped_link
from tests.e2e.faults_proxy import TinyProxy, start_tinyproxy
from tests.e2e.faults_support import (
    MIB,
    Receiver,
    error_lines,
    launch_receiver,
    launch_sender,
    poll_until,
    temp_files,
    write_random_file,
)
from tests.oracle import copy_differences

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import ReceiverProcess, RunSender, StartReceiver

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

OK, CONNECT_FAILED = 0, 5
RECEIVER_PORT = 7710
RECEIVER_ADDRESS = f"{DST_ADDRESS}:{RECEIVER_PORT}"
# The sender's defaults: two streams, each with at most 64 MiB unacknowledged.
STREAMS = 2
WINDOW_BYTES = 64 * MIB
LINK_FILE_SIZE = 128 * MIB  # about 11 s at 100 mbit/s
CUT_AFTER = 24 * MIB


def _bytes_on_target(root: Path) -> int:
    """Bytes of regular files under `root`, partial ones included: the transfer's progress
    as the receiver's disk shows it (the namespace keeps the test off its Status RPC)."""
    total = 0
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except FileNotFoundError:
                continue  # a temporary file renamed meanwhile
    return total


def _link_source(src: Path) -> Path:
    write_random_file(src / "big.bin", LINK_FILE_SIZE)
    for i in range(20):
        (src / "small" / f"f{i:02d}").parent.mkdir(parents=True, exist_ok=True)
        (src / "small" / f"f{i:02d}").write_bytes(os.urandom(3000))
    return src


@pytest.fixture
def link() -> Iterator[Link]:
    with shaped_link("100mbit") as made:
        yield made


def _receiver_in(link: Link, tmp_path: Path) -> Receiver:
    dst = tmp_path / "dst"
    dst.mkdir()
    return launch_receiver(
        dst, tmp_path / "state", tmp_path / "receiver", listen=RECEIVER_ADDRESS,
        prefix=link.in_dst(),
    )  # fmt: skip


def _stop(rx: Receiver) -> None:
    code = rx.stop()
    assert code == 0, f"receiver exited {code}\n{rx.stderr()}"


# -- (a) the link drops ---------------------------------------------------------------------

# An outage shorter than the keepalive's detection (a ping after 10 s without a reply within
# 10 s) may leave the TCP connection alive: then one attempt is enough. A longer one ends
# the connection and needs a second attempt that resumes.
OUTAGES = {"8s": (8.0, 1), "30s": (30.0, 2)}


@pytest.mark.parametrize("outage", OUTAGES)
def test_a_link_down_then_up_and_the_run_completes(outage: str, link: Link, tmp_path: Path) -> None:
    outage_s, min_attempts = OUTAGES[outage]
    src = _link_source(tmp_path / "src")
    dst = tmp_path / "dst"
    rx = _receiver_in(link, tmp_path)
    try:
        with launch_sender(
            src, RECEIVER_ADDRESS, rx.token, tmp_path / "sender", "--retry-for", "120",
            prefix=link.in_src(),
        ) as sender:  # fmt: skip
            poll_until(
                lambda: sender.proc.poll() is not None or _bytes_on_target(dst) >= CUT_AFTER,
                f"{CUT_AFTER} bytes on the target",
                60.0,
            )
            assert sender.proc.poll() is None, f"finished before the cut\n{sender.describe()}"
            link.cut()
            try:
                time.sleep(outage_s)  # the outage itself
            finally:
                link.heal()
            code = sender.wait(240.0)
        assert code == OK, f"{sender.describe()}\n--- receiver\n{rx.stderr()}"
        summary = sender.summary()
        print(f"after a {outage} outage:", {k: v for k, v in summary.items() if k != "warnings"})
        assert summary["attempts"] >= min_attempts, summary
        # What was in flight may be sent again, but no more than every stream's window.
        bound = summary["bytes_total"] + 2 * WINDOW_BYTES * STREAMS
        assert summary["bytes_sent_raw"] <= bound, summary
        assert copy_differences(src, dst) == []
        assert temp_files(dst) == []
    finally:
        _stop(rx)


LONG_OUTAGE_RETRY_FOR_S = 10
GIVE_UP_BOUND_S = 60.0


def test_a_link_down_longer_than_retry_for_gives_up_naming_the_receiver(
    link: Link, tmp_path: Path
) -> None:
    src = _link_source(tmp_path / "src")
    dst = tmp_path / "dst"
    rx = _receiver_in(link, tmp_path)
    try:
        with launch_sender(
            src, RECEIVER_ADDRESS, rx.token, tmp_path / "sender",
            "--retry-for", str(LONG_OUTAGE_RETRY_FOR_S), prefix=link.in_src(),
        ) as sender:  # fmt: skip
            poll_until(
                lambda: sender.proc.poll() is not None or _bytes_on_target(dst) >= CUT_AFTER,
                f"{CUT_AFTER} bytes on the target",
                60.0,
            )
            assert sender.proc.poll() is None, f"finished before the cut\n{sender.describe()}"
            link.cut()
            cut_at = time.monotonic()
            try:
                # The link stays down until the sender gives up (or the bound has passed).
                code = sender.wait(GIVE_UP_BOUND_S + 30.0)
                took = time.monotonic() - cut_at
            finally:
                link.heal()
        print(f"gave up {took:.1f} s after the cut with exit {code}")
        assert code == CONNECT_FAILED, sender.describe()
        assert took < GIVE_UP_BOUND_S, f"gave up only after {took:.1f} s\n{sender.describe()}"
        [line] = error_lines(sender.stderr())
        assert RECEIVER_ADDRESS in line, line
        assert sender.summary()["exit_code"] == CONNECT_FAILED
    finally:
        _stop(rx)


# -- (b) through an HTTP CONNECT proxy ------------------------------------------------------

PROXY_USER, PROXY_PASSWORD = "migrator", "s3cret-pass"


def _proxy_source(src: Path) -> Path:
    write_random_file(src / "big.bin", 6 * MIB)
    for i in range(30):
        path = src / f"d{i % 3}" / f"f{i:02d}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(1000 + i))
    return src


def _port(rx: ReceiverProcess) -> int:
    return int(rx.address.rpartition(":")[2])


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[TinyProxy]]:
    started: list[TinyProxy] = []
    yield started
    for proxy in started:
        proxy.stop()


@pytest.mark.parametrize("trust", ["pinned", "insecure"])
@pytest.mark.parametrize("auth", [False, True], ids=["open", "basic-auth"])
def test_b_migration_through_the_proxy(
    trust: str,
    auth: bool,
    tmp_path: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
    proxies: list[TinyProxy],
) -> None:
    src = _proxy_source(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    rx = receiver(dst, tmp_path / "state", tls=trust == "pinned")
    credentials = (PROXY_USER, PROXY_PASSWORD) if auth else None
    proxy = start_tinyproxy(tmp_path / "proxy", _port(rx), basic_auth=credentials)
    proxies.append(proxy)
    url = proxy.url_with(*credentials) if credentials else proxy.url

    result = run_sender(src, rx, "--proxy", url)

    assert copy_differences(src, dst) == []
    connects = proxy.connects_to(_port(rx))
    print(f"{len(connects)} CONNECTs through the proxy")
    # One tunnel per channel (control and each stream), and one to fetch the pinned
    # certificate: nothing reached the receiver around the proxy.
    assert len(connects) >= 1 + STREAMS + (trust == "pinned"), proxy.log()
    assert result.summary is not None and result.summary["exit_code"] == OK


@pytest.mark.parametrize("trust", ["pinned", "insecure"])
def test_b_wrong_proxy_credentials_fail_clearly_and_write_nothing(
    trust: str,
    tmp_path: Path,
    receiver: StartReceiver,
    run_sender: RunSender,
    proxies: list[TinyProxy],
) -> None:
    src = _proxy_source(tmp_path / "src")
    dst = tmp_path / "dst"
    dst.mkdir()
    rx = receiver(dst, tmp_path / "state", tls=trust == "pinned")
    proxy = start_tinyproxy(tmp_path / "proxy", _port(rx), basic_auth=(PROXY_USER, PROXY_PASSWORD))
    proxies.append(proxy)

    started = time.monotonic()
    result = run_sender(
        src, rx, "--proxy", proxy.url_with(PROXY_USER, "wrong"), "--connect-timeout", "5",
        check=False,
    )  # fmt: skip
    took = time.monotonic() - started

    print(f"refused in {took:.1f} s: {result.stderr.strip().splitlines()[-1:]}")
    assert result.returncode == CONNECT_FAILED, result.describe()
    [line] = error_lines(result.stderr)
    assert rx.address in line, line
    # The proxy refused the credentials (tinyproxy answers 401, others 407): the user must be
    # told it was the proxy, not left to look for an unreachable receiver.
    assert "proxy" in line.lower(), line
    assert os.listdir(dst) == [], "something was written without getting through the proxy"
    assert "session" not in rx.stderr(), rx.stderr()
