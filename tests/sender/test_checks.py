"""The checks before a migration, each against a real fake host root or a real receiver.

Host checks run against a directory built per test like a server's /: os-release, kernel
modules as depmod writes them, a real initramfs (newc cpio, compressed), SELinux files.
Receiver checks talk to a real `python -m receiver` over TCP.
"""

from __future__ import annotations

import importlib.util
import json
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from common.excludes import ExcludePattern, ExcludeRules
from common.pb.migrate.v1 import receiver_pb2 as pb
from sender.checks import CHECKS, CheckContext, CheckResult, Report, Status, preflight
from sender.checks.clock_skew import check_clock_skew, measured_skew
from sender.checks.host_paths import host_path
from sender.checks.host_root import check_host_root
from sender.checks.initramfs import InitramfsUnreadable, initramfs_names
from sender.checks.log_space import check_log_space
from sender.checks.os_family import check_os_family
from sender.checks.privileges import check_root_privileges
from sender.checks.reachability import check_receiver
from sender.checks.receiver_contact import ReceiverContact
from sender.checks.selinux import check_selinux
from sender.checks.target_space import check_target_space
from sender.checks.virtio import check_virtio_drivers
from sender.transport import Endpoint, Security
from sender.walk import WalkOptions
from tests.conftest import ReceiverProcess
from tests.sender.checks_host import (
    ALL_VIRTIO,
    ALL_VIRTIO_WITH_DEPS,
    FakeHost,
    compress,
    early_microcode,
    healthy_host,
    mounted_tmpfs,
    newc_archive,
)
from tests.sender.checks_receivers import shared_receiver

HAVE_LZ4 = importlib.util.find_spec("lz4") is not None
NO_EXCLUDES = WalkOptions(rules=ExcludeRules())
MIB = 1024 * 1024


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    return FakeHost(tmp_path / "host")


def context_for(host: FakeHost, **overrides: Any) -> CheckContext:
    values: dict[str, Any] = {
        "host_root": host.root,
        "source": host.root,
        "kernel_release": host.release,
        "euid": 0,
        "in_container": False,
        "log_dir": host.root.parent / "logs",
    }
    return CheckContext(**{**values, **overrides})


# -- the report ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("statuses", "exit_code"),
    [
        ((), 0),
        ((Status.PASS, Status.SKIP), 0),
        ((Status.PASS, Status.WARN, Status.SKIP), 1),
        ((Status.WARN, Status.FAIL, Status.PASS), 2),
    ],
)
def test_report_exit_code_is_the_worst_status(statuses: tuple[Status, ...], exit_code: int) -> None:
    report = Report(tuple(CheckResult(f"c{i}", s, "m") for i, s in enumerate(statuses)))
    assert report.exit_code == exit_code


def test_report_lines_and_json() -> None:
    report = Report(
        (
            CheckResult("root privileges", Status.PASS, "running as root"),
            CheckResult("virtio drivers", Status.FAIL, "virtio_blk missing", "install it"),
        )
    )
    assert report.lines() == [
        "PASS  root privileges: running as root",
        "FAIL  virtio drivers: virtio_blk missing — fix: install it",
    ]
    assert json.loads(report.to_json()) == {
        "checks": [
            {"name": "root privileges", "status": "PASS", "message": "running as root", "fix": ""},
            {
                "name": "virtio drivers",
                "status": "FAIL",
                "message": "virtio_blk missing",
                "fix": "install it",
            },
        ],
        "exit_code": 2,
    }


def test_every_check_reports_under_its_registered_name(host: FakeHost) -> None:
    healthy_host(host.root, host.release)
    report = preflight(context_for(host))
    assert [r.name for r in report.results] == [name for name, _ in CHECKS]
    assert report.exit_code == 0, report.lines()


# -- root privileges, host root --------------------------------------------------------------


@pytest.mark.parametrize(("euid", "status"), [(0, Status.PASS), (1000, Status.FAIL)])
def test_root_privileges(host: FakeHost, euid: int, status: Status) -> None:
    result = check_root_privileges(context_for(host, euid=euid))
    assert result.status is status
    assert (result.fix != "") == (status is Status.FAIL)


@pytest.mark.parametrize(
    ("root", "in_container", "with_os_release", "status"),
    [
        ("/", False, True, Status.PASS),
        ("/", True, True, Status.WARN),  # the container's own image, not the server
        ("fake", True, True, Status.PASS),
        ("fake", False, False, Status.WARN),  # not a system's /
    ],
)
def test_host_root(
    host: FakeHost, root: str, in_container: bool, with_os_release: bool, status: Status
) -> None:
    if with_os_release:
        host.os_release("debian")
    host_root = Path("/") if root == "/" else host.root
    result = check_host_root(context_for(host, host_root=host_root, in_container=in_container))
    assert result.status is status, result


# -- paths on the host -----------------------------------------------------------------------


def test_host_path_resolves_symlinks_inside_the_host_root(tmp_path: Path) -> None:
    root = tmp_path / "host"
    (root / "usr" / "lib" / "modules").mkdir(parents=True)
    (root / "lib").symlink_to("usr/lib")  # merged /usr, relative
    (root / "boot").mkdir()
    (root / "boot" / "initrd.img").symlink_to("/boot/initrd.img-6.1")  # absolute: the host's /
    (root / "etc").symlink_to("../../../../../real-etc")  # climbs no higher than the root
    assert host_path(root, "/lib/modules/6.1") == root / "usr/lib/modules/6.1"
    assert host_path(root, "/boot/initrd.img") == root / "boot/initrd.img-6.1"
    assert host_path(root, "/etc/selinux/config") == root / "real-etc/selinux/config"


# -- the initramfs reader --------------------------------------------------------------------

NAMES = ["init", "usr/lib/modules/6.1/kernel/drivers/block/virtio_blk.ko.xz", "etc/fstab"]
FILES = [(name, os.urandom(size)) for name, size in zip(NAMES, (5, 1030, 0), strict=True)]


@pytest.mark.parametrize("compression", ["none", "gzip", "xz", "lzma", "zstd", "bzip2"])
@pytest.mark.parametrize("microcode", [False, True])
def test_initramfs_names(tmp_path: Path, compression: str, microcode: bool) -> None:
    image = compress(newc_archive(FILES, dirs=["usr"]), compression)
    if microcode:
        image = early_microcode() + image
    (tmp_path / "initrd").write_bytes(image)
    expected = ["usr", *NAMES]
    if microcode:
        expected = [
            "kernel",
            "kernel/x86",
            "kernel/x86/microcode",
            "kernel/x86/microcode/GenuineIntel.bin",
            *expected,
        ]
    assert list(initramfs_names(tmp_path / "initrd")) == expected


def test_initramfs_several_archives_in_one_compressed_stream(tmp_path: Path) -> None:
    two = newc_archive([("a", b"1")]) + b"\0" * 508 + newc_archive([("b", b"22")])
    (tmp_path / "initrd").write_bytes(compress(two, "zstd") + b"\0" * 100)
    assert list(initramfs_names(tmp_path / "initrd")) == ["a", "b"]


@pytest.mark.parametrize(
    "image",
    [
        b"this is no initramfs at all",
        compress(newc_archive(FILES), "gzip")[:200],  # truncated
        b"070701" + b"Z" * 104,  # a header with non-hex fields
    ],
)
def test_initramfs_unreadable(tmp_path: Path, image: bytes) -> None:
    (tmp_path / "initrd").write_bytes(image)
    with pytest.raises(InitramfsUnreadable):
        list(initramfs_names(tmp_path / "initrd"))


def test_initramfs_listing_memory_stays_flat(tmp_path: Path) -> None:
    big = bytes(64 * MIB)  # compresses to almost nothing; must not be held whole
    (tmp_path / "initrd").write_bytes(compress(newc_archive([("firmware.bin", big)]), "zstd"))
    del big
    tracemalloc.start()
    try:
        names = list(initramfs_names(tmp_path / "initrd"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert names == ["firmware.bin"]
    assert peak < 4 * MIB


# -- virtio drivers --------------------------------------------------------------------------

PCI_BUILTIN = ("virtio_pci", "virtio", "virtio_ring")
CORE = ("virtio", "virtio_ring")
BLK_NET = ("virtio_blk", "virtio_net")


@pytest.mark.parametrize(
    ("builtin", "installed", "in_initramfs", "status", "words"),
    [
        pytest.param(
            (), ALL_VIRTIO_WITH_DEPS, ALL_VIRTIO_WITH_DEPS, Status.PASS, "virtio_blk in the",
            id="all modules, all in the initramfs",
        ),
        pytest.param(
            (*ALL_VIRTIO, "failover", "net_failover"), (), None, Status.PASS, "built in",
            id="built in, no initramfs needed",
        ),
        pytest.param(
            PCI_BUILTIN, BLK_NET, ("virtio_blk",), Status.PASS, "virtio_blk in the initramfs",
            id="virtio_pci built in, the disk driver in the initramfs",
        ),
        pytest.param(
            PCI_BUILTIN, ("virtio_scsi", "virtio_net"), ("virtio_scsi",), Status.PASS,
            "virtio_scsi", id="virtio_scsi does as well as virtio_blk",
        ),
        pytest.param(
            (), ("virtio_net", "virtio_pci", *CORE), ("virtio_pci", *CORE), Status.FAIL,
            "virtio_blk or virtio_scsi is neither built into", id="no disk driver anywhere",
        ),
        pytest.param(
            PCI_BUILTIN, ("virtio_blk",), ("virtio_blk",), Status.FAIL, "virtio_net is neither",
            id="no network driver anywhere",
        ),
        pytest.param(
            (), (*BLK_NET, *CORE), ("virtio_blk", *CORE), Status.FAIL, "virtio_pci is neither",
            id="no virtio_pci anywhere: no virtio device would be found",
        ),
        pytest.param(
            PCI_BUILTIN, BLK_NET, (), Status.WARN, "virtio_blk is installed but not in",
            id="installed but left out of the initramfs (host-only)",
        ),
        pytest.param(
            (), ALL_VIRTIO_WITH_DEPS, ("virtio_blk", "virtio_pci", "virtio"), Status.WARN,
            "without virtio_ring", id="in the initramfs without what it needs",
        ),
        pytest.param(
            PCI_BUILTIN, BLK_NET, ("virtio_blk",), Status.PASS, "virtio_net installed",
            id="virtio_net only has to be installed",
        ),
    ],
)  # fmt: skip
def test_virtio_drivers(
    host: FakeHost,
    builtin: tuple[str, ...],
    installed: tuple[str, ...],
    in_initramfs: tuple[str, ...] | None,
    status: Status,
    words: str,
) -> None:
    host.modules(builtin=builtin, installed=installed)
    if in_initramfs is not None:
        host.initramfs(in_initramfs, compression="gzip")
    result = check_virtio_drivers(context_for(host))
    assert result.status is status, result
    assert words in result.message
    assert (result.fix != "") == (status is not Status.PASS)


@pytest.mark.parametrize(
    ("compression", "microcode", "style"),
    [
        ("gzip", False, "debian"),
        ("xz", True, "rhel"),
        ("zstd", True, "debian"),
        ("lzma", False, "debian"),
        ("bzip2", False, "rhel"),
        ("none", True, "rhel"),
    ],
)
def test_virtio_drivers_found_in_every_initramfs_format(
    host: FakeHost, compression: str, microcode: bool, style: str
) -> None:
    host.modules(installed=ALL_VIRTIO_WITH_DEPS)
    host.initramfs(ALL_VIRTIO_WITH_DEPS, compression=compression, microcode=microcode, style=style)
    result = check_virtio_drivers(context_for(host))
    assert result.status is Status.PASS, result


def test_virtio_lz4_initramfs(host: FakeHost) -> None:
    host.modules(installed=ALL_VIRTIO_WITH_DEPS)
    host.initramfs(ALL_VIRTIO_WITH_DEPS, compression="lz4")
    result = check_virtio_drivers(context_for(host))
    if HAVE_LZ4:
        assert result.status is Status.PASS, result
    else:
        assert result.status is Status.WARN, result
        assert "cannot read an lz4 initramfs" in result.message


@pytest.mark.parametrize(
    ("style", "hint"),
    [("debian", "update-initramfs -u -k"), ("rhel", "dracut -f --add-drivers")],
)
def test_virtio_fix_names_the_distribution_tool(host: FakeHost, style: str, hint: str) -> None:
    host.modules(builtin=PCI_BUILTIN, installed=("virtio_blk", "virtio_net"))
    host.initramfs(["ext4"], style=style)
    result = check_virtio_drivers(context_for(host))
    assert result.status is Status.WARN
    assert hint in result.fix and host.release in result.fix


@pytest.mark.parametrize(
    ("setup", "words"),
    [
        ("no initramfs", "no initramfs for"),
        ("corrupt initramfs", "cannot read"),
    ],
)
def test_virtio_initramfs_unknown_warns(host: FakeHost, setup: str, words: str) -> None:
    host.modules(builtin=PCI_BUILTIN, installed=("virtio_blk", "virtio_net"))
    if setup == "corrupt initramfs":
        host.write_initramfs(compress(newc_archive([("init", b"x")]), "xz")[:60])
    result = check_virtio_drivers(context_for(host))
    assert result.status is Status.WARN, result
    assert words in result.message


def test_virtio_builtin_from_modinfo_alone(host: FakeHost) -> None:
    host.modules(builtin=(*ALL_VIRTIO, "failover", "net_failover"), modinfo_only=True)
    assert check_virtio_drivers(context_for(host)).status is Status.PASS


def test_virtio_modules_under_usr_with_lib_a_symlink(host: FakeHost) -> None:
    host.modules(installed=ALL_VIRTIO_WITH_DEPS)
    host.initramfs(ALL_VIRTIO_WITH_DEPS, compression="xz")
    usr_lib = host.root / "usr" / "lib"
    usr_lib.mkdir(parents=True)
    (host.root / "lib").rename(usr_lib / "x")
    (usr_lib / "x" / "modules").rename(usr_lib / "modules")
    (host.root / "lib").symlink_to("/usr/lib")  # absolute: must resolve inside the host root
    assert check_virtio_drivers(context_for(host)).status is Status.PASS


def test_virtio_without_modules_for_the_running_kernel(host: FakeHost) -> None:
    host.modules(installed=ALL_VIRTIO_WITH_DEPS)
    result = check_virtio_drivers(context_for(host, kernel_release="6.99.0-other"))
    assert result.status is Status.WARN
    assert "6.99.0-other" in result.message


# -- SELinux ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("config", "enforce", "status", "words"),
    [
        ("enforcing", "1", Status.WARN, "SELINUX=enforcing"),
        ("enforcing", None, Status.WARN, "SELINUX=enforcing"),
        ("permissive", "0", Status.PASS, "permissive"),
        ("permissive", "1", Status.WARN, "enforcing now"),
        ("disabled", None, Status.PASS, "disabled"),
        ('"enforcing"', None, Status.WARN, "SELINUX=enforcing"),
        (None, None, Status.PASS, "not configured"),
    ],
)
def test_selinux(
    host: FakeHost, config: str | None, enforce: str | None, status: Status, words: str
) -> None:
    host.selinux(config=config, enforce=enforce)
    result = check_selinux(context_for(host))
    assert result.status is status, result
    assert words in result.message
    if status is Status.WARN:
        assert "/.autorelabel" in result.fix


# -- log space -------------------------------------------------------------------------------


def test_log_space_enough(host: FakeHost) -> None:
    result = check_log_space(context_for(host))  # logs/ does not exist yet: its parent counts
    assert result.status is Status.PASS, result


def test_log_space_short(host: FakeHost, tmp_path: Path) -> None:
    with mounted_tmpfs(tmp_path / "small", "size=20M") as small:
        result = check_log_space(context_for(host, log_dir=small / "logs"))
    assert result.status is Status.WARN, result
    assert "--log-file" in result.fix


# -- the receiver ----------------------------------------------------------------------------
# One receiver per kind serves the whole module: the checks only say Hello.

TARGET_OS = ("centos", "rhel fedora")


def endpoint_of(process: ReceiverProcess, *, token: str | None = None, **security: Any) -> Endpoint:
    trust = Security(**security) if security else Security(insecure=True)
    return Endpoint(process.address, token or process.token, trust, connect_timeout_s=5.0)


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A plaintext receiver whose root holds a CentOS."""
    base = tmp_path_factory.mktemp("plain")
    root = FakeHost(base / "root").os_release(*TARGET_OS, version="7").root
    with shared_receiver(root, base / "state", base / "logs") as process:
        yield process


@pytest.fixture(scope="module")
def pinned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A TLS receiver with its self-signed certificate."""
    base = tmp_path_factory.mktemp("pinned")
    (base / "root").mkdir()
    with shared_receiver(base / "root", base / "state", base / "logs", tls=True) as process:
        yield process


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    """A receiver whose root is a tmpfs of 5 MiB and 50 inodes (49 free)."""
    base = tmp_path_factory.mktemp("small")
    with (
        mounted_tmpfs(base / "root", "size=5M,nr_inodes=50") as root,
        shared_receiver(root, base / "state", base / "logs") as process,
    ):
        yield process  # stopped before the tmpfs goes


def test_no_receiver_skips_the_receiver_checks(host: FakeHost) -> None:
    context = context_for(host)
    for check in (check_receiver, check_clock_skew, check_target_space, check_os_family):
        assert check(context).status is Status.SKIP


def test_receiver_reached(host: FakeHost, plain: ReceiverProcess) -> None:
    result = check_receiver(context_for(host, endpoint=endpoint_of(plain)))
    assert result.status is Status.PASS, result


def test_receiver_refuses_the_token(host: FakeHost, plain: ReceiverProcess) -> None:
    context = context_for(host, endpoint=endpoint_of(plain, token="not-the-token"))
    result = check_receiver(context)
    assert result.status is Status.FAIL
    assert "refused the token" in result.message and "token" in result.fix
    for check in (check_clock_skew, check_target_space, check_os_family):
        assert check(context).status is Status.SKIP


def test_receiver_unreachable(host: FakeHost, free_port: Callable[[], int]) -> None:
    nobody = Endpoint(f"127.0.0.1:{free_port()}", "t", Security(insecure=True), None, 1.0)
    started = time.monotonic()
    result = check_receiver(context_for(host, endpoint=nobody))
    assert time.monotonic() - started < 10
    assert result.status is Status.FAIL
    assert "cannot reach" in result.message and "security group" in result.fix


def test_receiver_with_another_certificate(host: FakeHost, pinned: ReceiverProcess) -> None:
    wrong = endpoint_of(pinned, fingerprint="sha256:" + "ab" * 32)
    result = check_receiver(context_for(host, endpoint=wrong))
    assert result.status is Status.FAIL, result
    assert "not the one pinned" in result.message and "fingerprint" in result.fix
    right = endpoint_of(pinned, fingerprint=pinned.trust_args[1])
    assert check_receiver(context_for(host, endpoint=right)).status is Status.PASS


def test_preflight_says_hello_once(host: FakeHost, plain: ReceiverProcess) -> None:
    healthy_host(host.root, host.release)
    context = context_for(host, endpoint=endpoint_of(plain), walk=NO_EXCLUDES)
    first = context.receiver
    preflight(context)
    assert context.receiver is first


# -- clock skew ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "answered", "receiver_time", "skew", "error"),
    [
        (100.0, 100.0, 100.0, 0.0, 0.0),
        (100.0, 102.0, 101.0, 0.0, 1.0),  # the receiver answered mid-way
        (100.0, 100.2, 500.1, 400.0, 0.1),
        (100.0, 100.0, 40.0, -60.0, 0.0),
    ],
)
def test_measured_skew(
    sent: float, answered: float, receiver_time: float, skew: float, error: float
) -> None:
    assert measured_skew(sent, answered, receiver_time) == pytest.approx((skew, error))


@pytest.mark.parametrize(
    ("offset_s", "status"),
    [(0.0, Status.PASS), (60.0, Status.WARN), (-60.0, Status.WARN), (400.0, Status.FAIL)],
)
def test_clock_skew_against_a_real_receiver(
    host: FakeHost, plain: ReceiverProcess, offset_s: float, status: Status
) -> None:
    local_clock = lambda: time.time() + offset_s  # noqa: E731
    result = check_clock_skew(context_for(host, endpoint=endpoint_of(plain), clock=local_clock))
    assert result.status is status, result
    assert (result.fix == "sync time (chronyd/ntpd) on both hosts") == (status is not Status.PASS)


def test_clock_skew_within_the_round_trip_passes(host: FakeHost) -> None:
    """A 30 s round trip cannot tell 10 s of skew from none."""
    context = context_for(host)
    hello = pb.HelloResponse(receiver_time_unix_ns=int(125e9))
    context.receiver = ReceiverContact("r:1", hello, sent_at=100.0, answered_at=130.0)
    assert check_clock_skew(context).status is Status.PASS


# -- target space ----------------------------------------------------------------------------


def make_tree(root: Path, files: int, size: int) -> Path:
    (root / "sub").mkdir(parents=True)
    for i in range(files):
        (root / "sub" / f"f{i:03}").write_bytes(os.urandom(size))
    return root


@pytest.mark.parametrize(
    ("files", "size", "status", "words"),
    [
        (100, 100 * 1024, Status.FAIL, "short"),  # 10 MiB in 101 inodes onto 5 MiB and 49
        (44, 1024, Status.WARN, "over 90%"),  # 45 of the 49 free inodes
        (3, 1024, Status.PASS, "free"),
    ],
)
def test_target_space(
    host: FakeHost,
    tmp_path: Path,
    small: ReceiverProcess,
    files: int,
    size: int,
    status: Status,
    words: str,
) -> None:
    source = make_tree(tmp_path / "src", files, size)
    context = context_for(host, source=source, endpoint=endpoint_of(small), walk=NO_EXCLUDES)
    result = check_target_space(context)
    assert result.status is status, result
    assert words in result.message
    assert (result.fix != "") == (status is not Status.PASS)


def test_target_space_counts_what_the_run_would_walk(
    host: FakeHost, tmp_path: Path, small: ReceiverProcess
) -> None:
    source = make_tree(tmp_path / "src", 100, 100 * 1024)
    walk = WalkOptions(rules=ExcludeRules.from_sources([ExcludePattern(b"/sub/")]))
    context = context_for(host, source=source, endpoint=endpoint_of(small), walk=walk)
    result = check_target_space(context)
    assert result.status is Status.PASS, result


def test_target_space_counts_a_sparse_file_by_its_data(
    host: FakeHost, tmp_path: Path, small: ReceiverProcess
) -> None:
    source = tmp_path / "src"
    source.mkdir()
    with (source / "sparse").open("wb") as sparse:
        sparse.truncate(1024 * MIB)
        sparse.write(b"data")
    context = context_for(host, source=source, endpoint=endpoint_of(small), walk=NO_EXCLUDES)
    result = check_target_space(context)
    assert result.status is Status.PASS, result


def test_target_space_with_an_unreadable_source(
    host: FakeHost, tmp_path: Path, small: ReceiverProcess
) -> None:
    context = context_for(
        host, source=tmp_path / "absent", endpoint=endpoint_of(small), walk=NO_EXCLUDES
    )
    result = check_target_space(context)
    assert result.status is Status.FAIL, result
    assert "cannot read the source" in result.message


# -- OS family -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source_os", "status"),
    [
        (("centos", "rhel fedora"), Status.PASS),
        (("rocky", "rhel centos fedora"), Status.PASS),
        (("ubuntu", "debian"), Status.WARN),
        (("opensuse-leap", "suse opensuse"), Status.WARN),
    ],
)
def test_os_family_against_a_real_receiver(
    host: FakeHost, plain: ReceiverProcess, source_os: tuple[str, str], status: Status
) -> None:
    host.os_release(*source_os)
    result = check_os_family(context_for(host, endpoint=endpoint_of(plain)))
    assert result.status is status, result
    assert "centos 7" in result.message  # the os-release under the receiver's root
    if status is Status.WARN:
        assert source_os[0] in result.fix


@pytest.mark.parametrize(
    ("source_known", "target_id"),
    [(True, ""), (False, "centos")],
)
def test_os_family_unknown_skips(host: FakeHost, source_known: bool, target_id: str) -> None:
    if source_known:
        host.os_release("ubuntu", "debian")
    context = context_for(host)
    context.receiver = ReceiverContact("r:1", pb.HelloResponse(target_os_id=target_id))
    assert check_os_family(context).status is Status.SKIP
