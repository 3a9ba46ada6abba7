"""Virtio drivers: a CVM's disk and network are virtio devices on PCI.

The target boots the source's kernel, so that kernel needs a virtio disk driver
and virtio_pci before the root filesystem is mounted (built in, or in the
initramfs), and virtio_net once it is (built in, or installed). A server that
never ran on a hypervisor often has an initramfs built for its own hardware
only (dracut's host-only mode), without them: it would not boot as a CVM.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path

from sender.checks.context import CheckContext
from sender.checks.host_paths import host_path
from sender.checks.initramfs import InitramfsUnreadable, initramfs_names
from sender.checks.kernel_modules import (
    KernelModules,
    find_module_dir,
    module_name,
    read_kernel_modules,
)
from sender.checks.result import CheckResult, Status

NAME = "virtio drivers"
# Debian and Ubuntu (initramfs-tools), RHEL and Fedora (dracut), SUSE (dracut).
_INITRAMFS_NAMES = ("initrd.img-{}", "initramfs-{}.img", "initrd-{}")


@dataclass(frozen=True)
class Need:
    # One of these drivers is enough.
    drivers: tuple[str, ...]
    # Needed before the root filesystem is mounted: built in, or in the initramfs.
    at_boot: bool

    @property
    def what(self) -> str:
        return " or ".join(self.drivers)


NEEDS = (
    Need(("virtio_blk", "virtio_scsi"), at_boot=True),
    Need(("virtio_pci",), at_boot=True),
    Need(("virtio_net",), at_boot=False),
)


class Level(enum.IntEnum):
    MISSING = 0
    INCOMPLETE = 1
    READY = 2


@dataclass(frozen=True)
class Initramfs:
    path: Path | None
    modules: frozenset[str] = frozenset()
    # Why its modules are unknown; empty when it was read.
    problem: str = ""


def find_initramfs(host_root: Path, release: str) -> Path | None:
    for pattern in _INITRAMFS_NAMES:
        path = host_path(host_root, f"/boot/{pattern.format(release)}")
        if path.is_file():
            return path
    return None


def read_initramfs(host_root: Path, release: str) -> Initramfs:
    path = find_initramfs(host_root, release)
    if path is None:
        return Initramfs(None, problem=f"no initramfs for {release} in /boot")
    try:
        names = {module_name(name) for name in initramfs_names(path)}
    except InitramfsUnreadable as exc:
        return Initramfs(path, problem=f"cannot read {path}: {exc}")
    return Initramfs(path, frozenset(name for name in names if name))


def driver_state(
    driver: str, need: Need, kernel: KernelModules, initramfs: Initramfs
) -> tuple[Level, str]:
    """How far `driver` is from working on the target, and in what words."""
    if driver in kernel.builtin:
        return Level.READY, f"{driver} built in"
    if driver in initramfs.modules:
        loose = [d for d in kernel.installed.get(driver, ()) if not _present(d, kernel, initramfs)]
        if need.at_boot and loose:
            return Level.INCOMPLETE, f"{driver} is in the initramfs without {', '.join(loose)}"
        return Level.READY, f"{driver} in the initramfs"
    if driver in kernel.installed:
        if not need.at_boot:
            return Level.READY, f"{driver} installed"
        why = initramfs.problem or f"not in {initramfs.path}"
        return Level.INCOMPLETE, f"{driver} is installed but {why}"
    looked = need.at_boot and not initramfs.problem
    where = "installed nor in its initramfs" if looked else "installed"
    return Level.MISSING, f"{need.what} is neither built into {kernel.directory.name} nor {where}"


def _present(driver: str, kernel: KernelModules, initramfs: Initramfs) -> bool:
    return driver in kernel.builtin or driver in initramfs.modules


def rebuild_hint(release: str, initramfs: Path | None) -> str:
    drivers = "virtio_blk virtio_scsi virtio_pci virtio_net"
    if initramfs is not None and initramfs.name.startswith("initrd.img-"):
        return (
            f"add {drivers} to /etc/initramfs-tools/modules, "
            f"then run update-initramfs -u -k {release}"
        )
    if initramfs is not None:
        return f'run dracut -f --add-drivers "{drivers}" --kver {release}'
    return "rebuild the initramfs (dracut -f / update-initramfs -u)"


def check_virtio_drivers(context: CheckContext) -> CheckResult:
    release = context.kernel_release
    directory = find_module_dir(context.host_root, release)
    if directory is None:
        return CheckResult(
            NAME,
            Status.WARN,
            f"no modules for the running kernel {release} under "
            f"{host_path(context.host_root, '/lib/modules')}: cannot tell",
            "run the check on the server itself, or with its / mounted at /host",
        )
    try:
        kernel = read_kernel_modules(directory)
    except OSError as exc:
        return CheckResult(NAME, Status.WARN, f"cannot read {directory}: {exc}", "")
    boot_builtin = all(
        any(d in kernel.builtin for d in need.drivers) for need in NEEDS if need.at_boot
    )
    initramfs = Initramfs(None) if boot_builtin else read_initramfs(context.host_root, release)
    states = [max(driver_state(d, need, kernel, initramfs) for d in need.drivers) for need in NEEDS]
    worst = min(level for level, _ in states)
    words = "; ".join(text for level, text in states if level == worst)
    if worst is Level.READY:
        return CheckResult(NAME, Status.PASS, f"{words} ({release})")
    hint = rebuild_hint(release, initramfs.path)
    if worst is Level.MISSING:
        return CheckResult(
            NAME,
            Status.FAIL,
            words,
            f"install the kernel's virtio modules; {hint}",
        )
    return CheckResult(NAME, Status.WARN, f"{words} ({release})", hint)
