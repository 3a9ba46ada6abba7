"""The images: Dockerfile.sender and Dockerfile.receiver, built and run with podman.

Both images are built on the local base image that scripts/container_base.sh prepares (no
registry is reachable here) and run the way the Dockerfiles' headers tell users to run them
with docker: the receiver as PID 1 without --init (and once under --init, serving TLS),
healthy by its own HEALTHCHECK, stopped cleanly by SIGTERM; the sender with the source's root
mounted read-only at /host. rsync then judges the copy, with the default excludes anchored at
the source as the sender anchors them at /host.

No podman is a failure, not a skip, so that CI cannot pass without running this: prepare
the machine with scripts/container_base.sh, or set CVM_MIGRATE_SKIP_CONTAINERS=1 to skip.
Builds reuse podman's layer cache in the persistent storage of container_base.sh, so an
unchanged tree builds in seconds.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import stat
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

from tests.oracle import copy_differences

REPO = Path(__file__).resolve().parents[2]
BASE_SCRIPT = REPO / "scripts" / "container_base.sh"
BASE_IMAGE = "localhost/base:bookworm"
RECEIVER_IMAGE = "localhost/receiver:ci"
SENDER_IMAGE = "localhost/sender:ci"
SKIP_ENV = "CVM_MIGRATE_SKIP_CONTAINERS"
# The list the sender applies by default, shipped as package data of common.
DEFAULT_EXCLUDES = REPO / "common" / "rsync_excludes_linux.txt"

BUILD_TIMEOUT_S = 900.0  # cold: every dependency wheel comes from PyPI
HEALTHY_TIMEOUT_S = 60.0
SENDER_TIMEOUT_S = 300.0
# `podman stop --time`: SIGTERM, then SIGKILL (exit 137) if the receiver is still running.
STOP_TIMEOUT_S = 10
PREPARE_HINT = (
    f"run `bash scripts/container_base.sh` as root to install podman and prepare "
    f"{BASE_IMAGE} (or set {SKIP_ENV}=1 to skip the container tests)"
)

FOREIGN_UID = 4242
FOREIGN_GID = 4343
MTIME_NS = 1_700_000_000 * 10**9 + 123_456_789

pytestmark = [
    pytest.mark.skipif(
        os.environ.get(SKIP_ENV) == "1", reason=f"{SKIP_ENV}=1: container tests skipped"
    ),
    pytest.mark.skipif(os.geteuid() != 0, reason="rootful podman and the source tree need root"),
]


# --- podman on the cached storage of scripts/container_base.sh ----------------------------


@dataclass(frozen=True)
class Podman:
    """`podman` with the project's containers.conf and storage (container_base.sh --print)."""

    argv: tuple[str, ...]

    def command(self, *args: str) -> list[str]:
        return [*self.argv, *args]

    def run(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(*args),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def build(self, dockerfile: str, tag: str) -> None:
        # --format docker: the OCI image format has no HEALTHCHECK, podman would drop it.
        done = self.run(
            "build",
            "--format",
            "docker",
            "--pull=never",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={BASE_IMAGE}",
            "--file",
            str(REPO / dockerfile),
            "--tag",
            tag,
            str(REPO),
            timeout=BUILD_TIMEOUT_S,
        )
        if done.returncode != 0:
            pytest.fail(
                f"podman build -f {dockerfile} exited {done.returncode}\n"
                f"{_tail(done.stdout)}\n{_tail(done.stderr)}"
            )


@pytest.fixture(scope="module")
def podman() -> Podman:
    if shutil.which("podman") is None:
        pytest.fail(f"podman is not installed: {PREPARE_HINT}", pytrace=False)
    printed = subprocess.run(
        ["bash", str(BASE_SCRIPT), "--print"], capture_output=True, text=True, check=True
    )
    tool = Podman(tuple(printed.stdout.splitlines()))
    if tool.run("image", "exists", BASE_IMAGE).returncode != 0:
        pytest.fail(f"no base image {BASE_IMAGE} in the cache: {PREPARE_HINT}", pytrace=False)
    return tool


@pytest.fixture(scope="module")
def images(podman: Podman) -> Podman:
    """Both images built from the work tree; unchanged layers come from the cache."""
    podman.build("Dockerfile.receiver", RECEIVER_IMAGE)
    podman.build("Dockerfile.sender", SENDER_IMAGE)
    return podman


# --- the receiver container -----------------------------------------------------------


@dataclass
class ReceiverContainer:
    """An attached `podman run --rm` of the receiver image; its exit code is the receiver's."""

    podman: Podman
    name: str
    address: str
    metrics_address: str
    token: str
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="backslashreplace")

    def wait_healthy(self) -> None:
        """Poll the image's own HEALTHCHECK (the gRPC health probe) until it passes."""
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        last = ""
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"receiver exited {self.proc.returncode}\n{self.output()}")
            done = self.podman.run("healthcheck", "run", self.name)
            if done.returncode == 0:
                return
            last = (done.stdout + done.stderr).strip()
            time.sleep(0.5)
        pytest.fail(f"receiver not healthy after {HEALTHY_TIMEOUT_S} s: {last}\n{self.output()}")

    def stop(self) -> tuple[int, float]:
        """`podman stop`, as `docker stop`: SIGTERM to PID 1, SIGKILL after STOP_TIMEOUT_S.
        The receiver's exit code and the seconds it took."""
        started = time.monotonic()
        stop = self.podman.run("stop", "--time", str(STOP_TIMEOUT_S), self.name, timeout=60)
        try:
            code = self.proc.wait(timeout=STOP_TIMEOUT_S + 20)
        except subprocess.TimeoutExpired:
            pytest.fail(f"podman run still attached after stop: {stop.stderr}\n{self.output()}")
        return code, time.monotonic() - started

    def assert_pid1(self) -> None:
        """No init and no shell in between: SIGTERM from `docker stop` reaches the receiver."""
        # comm is the name of the file the kernel executed (for a script, the script's),
        # truncated to 15 bytes; a shell or an init in between shows its own.
        comm = self.podman.run("exec", self.name, "cat", "/proc/1/comm").stdout.strip()
        cmdline = self.podman.run("exec", self.name, "cat", "/proc/1/cmdline").stdout
        assert comm == "cvm-migrate-receiver"[:15], (
            f"PID 1 is {comm!r} ({cmdline.split(chr(0))}), not the receiver"
        )


class StartReceiver(Protocol):
    def __call__(
        self, target: Path, state: Path, *args: str, init: bool = False
    ) -> ReceiverContainer: ...


@pytest.fixture
def start_receiver(
    images: Podman, tmp_path: Path, free_port: Callable[[], int]
) -> Iterator[StartReceiver]:
    """`start_receiver(target, state, *args, init=False)` runs the receiver image until it is
    healthy; with `init`, under podman's --init (catatonit), as `docker run --init` would."""
    started: list[ReceiverContainer] = []

    def start(target: Path, state: Path, *args: str, init: bool = False) -> ReceiverContainer:
        port, metrics_port = free_port(), free_port()
        name = f"cvm-migrate-test-receiver-{secrets.token_hex(4)}"
        token = secrets.token_hex(16)
        log = tmp_path / f"{name}.log"
        command = images.command(
            "run",
            "--rm",
            *(["--init"] if init else []),
            "--name",
            name,
            "--network",
            "host",
            "-v",
            f"{target}:/target",
            "-v",
            f"{state}:/state",
            "-e",
            f"CVM_MIGRATE_TOKEN={token}",
            "-e",
            f"CVM_MIGRATE_HEALTH_PORT={port}",
            RECEIVER_IMAGE,
            "--root",
            "/target",
            "--state-dir",
            "/state",
            "--listen",
            f"127.0.0.1:{port}",
            # Not the default 0.0.0.0:9710: the host's network is shared with other tests.
            "--metrics-listen",
            f"127.0.0.1:{metrics_port}",
            *args,
        )
        with log.open("wb") as out:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        container = ReceiverContainer(
            images, name, f"127.0.0.1:{port}", f"127.0.0.1:{metrics_port}", token, proc, log
        )
        started.append(container)
        container.wait_healthy()
        return container

    yield start

    for container in started:
        if container.proc.poll() is None:
            images.run("rm", "--force", "--time", "0", container.name)
            try:
                container.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                container.proc.send_signal(signal.SIGKILL)
                container.proc.wait()


def run_sender(images: Podman, src: Path, receiver: ReceiverContainer) -> str:
    """The sender container exactly as users run it; its output. Fails the test unless 0."""
    command = images.command(
        "run",
        "--rm",
        "--network",
        "host",
        "-v",
        f"{src}:/host:ro",
        "-e",
        f"CVM_MIGRATE_TOKEN={receiver.token}",
        SENDER_IMAGE,
        "run",
        "/host",
        "--to",
        receiver.address,
        "--insecure",
    )
    try:
        done = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=SENDER_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"sender still running after {SENDER_TIMEOUT_S} s\n{receiver.output()}")
    output = f"--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    if done.returncode != 0:
        pytest.fail(
            f"sender container exited {done.returncode}\n{output}\n"
            f"--- receiver\n{receiver.output()}"
        )
    return output


# --- a small system-like source ---------------------------------------------------------

# Directories whose contents the default excludes leave behind: the directories themselves
# are migrated (mount points), what is inside is not.
EXCLUDED_CONTENTS = ("dev", "proc", "sys", "var/cache/yum")


def build_source(root: Path) -> None:
    """A tiny root filesystem: something of each kind the images must carry, plus what the
    default excludes must drop (device nodes under dev/, proc/, sys/, the yum cache)."""
    for directory in ("dev/pts", "proc/1", "sys/kernel", "var/cache/yum", "etc", "usr/bin"):
        (root / directory).mkdir(parents=True, exist_ok=True)
    os.mknod(root / "dev/null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
    os.mknod(root / "dev/zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))
    (root / "proc/x").write_text("not a real /proc\n")
    (root / "proc/1/status").write_text("Name: init\n")
    (root / "sys/kernel/hostname").write_text("source\n")
    (root / "var/cache/yum/package.rpm").write_bytes(b"\xed\xab\xee\xdb")
    (root / "var/empty").mkdir()

    (root / "etc/hostname").write_text("source\n")
    (root / "etc/os-release").write_text('ID=debian\nVERSION_ID="12"\n')
    os.symlink("/usr/share/zoneinfo/UTC", root / "etc/localtime")  # absolute: not followed
    os.symlink("python3.11", root / "usr/bin/python3")  # relative, to a file below
    os.symlink("missing", root / "usr/bin/dangling")

    python = root / "usr/bin/python3.11"
    python.write_bytes(b"\x7fELF" + bytes(range(256)) * 64)
    python.chmod(0o755)
    os.link(python, root / "usr/bin/python3.11-hardlink")  # one inode, two names

    sudo = root / "usr/bin/sudo"
    sudo.write_bytes(b"\x7fELF sudo")
    sudo.chmod(0o4755)  # setuid root

    ping = root / "usr/bin/ping"
    ping.write_bytes(b"\x7fELF ping")
    ping.chmod(0o755)
    subprocess.run(["setcap", "cap_net_raw+ep", str(ping)], check=True)

    shadow = root / "etc/shadow-like"
    shadow.write_text("secret\n")
    os.chown(shadow, FOREIGN_UID, FOREIGN_GID)  # owners with no passwd entry anywhere
    shadow.chmod(0o640)

    labelled = root / "etc/labelled"
    labelled.write_text("x\n")
    os.setxattr(labelled, "user.comment", b"kept")
    os.setxattr(labelled, "user.binary", b"\x00\x01\xff")
    subprocess.run(["setfacl", "-m", f"u:{FOREIGN_UID}:rw", str(labelled)], check=True)

    for path in _entries_children_first(root):
        os.utime(path, ns=(MTIME_NS, MTIME_NS), follow_symlinks=False)


def _entries_children_first(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        for name in (*filenames, *dirnames):
            yield Path(dirpath, name)
    yield root


# --- the test -----------------------------------------------------------------------------


def test_images_migrate_a_tree_and_the_receiver_stops_on_sigterm(
    tmp_path: Path, images: Podman, start_receiver: StartReceiver
) -> None:
    src, dst, state = tmp_path / "src", tmp_path / "dst", tmp_path / "state"
    build_source(src)
    dst.mkdir()
    state.mkdir()

    receiver = start_receiver(dst, state, "--insecure")  # healthy by its own HEALTHCHECK
    receiver.assert_pid1()
    sender_output = run_sender(images, src, receiver)

    # The default list is anchored at SRC here, as the sender anchors it at /host.
    differences = copy_differences(src, dst, exclude_from=DEFAULT_EXCLUDES)
    assert differences == [], f"{differences}\n{sender_output}\n{receiver.output()}"
    # rsync protects excluded names in DST too, so it would not see them sent: look.
    for directory in EXCLUDED_CONTENTS:
        assert (dst / directory).is_dir(), f"{directory}/ was not migrated"
        assert os.listdir(dst / directory) == [], f"{directory}/* was migrated"

    with urllib.request.urlopen(f"http://{receiver.metrics_address}/metrics", timeout=10) as page:
        assert b"# TYPE" in page.read(), "the receiver image serves no Prometheus metrics"

    code, elapsed = receiver.stop()
    assert code == 0, (
        f"receiver exited {code} {elapsed:.1f} s after SIGTERM (137: killed after "
        f"{STOP_TIMEOUT_S} s)\n{receiver.output()}"
    )


def test_receiver_serving_tls_under_init_is_healthy_and_stops_on_sigterm(
    tmp_path: Path, start_receiver: StartReceiver
) -> None:
    """TLS is the receiver's default, and users may add --init: the HEALTHCHECK must pass
    and SIGTERM must still stop the receiver cleanly."""
    (tmp_path / "dst").mkdir()
    (tmp_path / "state").mkdir()
    receiver = start_receiver(tmp_path / "dst", tmp_path / "state", init=True)
    code, elapsed = receiver.stop()
    assert code == 0, f"receiver exited {code} {elapsed:.1f} s after SIGTERM\n{receiver.output()}"


def _tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.splitlines()[-lines:])
