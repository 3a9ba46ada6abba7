"""A fake server's / for the checks: os-release, kernel modules, an initramfs, SELinux.

The initramfs is built the way dracut and initramfs-tools build theirs: cpio "newc"
archives (written here, byte for byte per the format), optionally an uncompressed
early-microcode archive first, the main one compressed.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import lzma
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import zstandard

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"
# Where each driver sits in the kernel tree.
DRIVER_DIRS = {
    "virtio_blk": "kernel/drivers/block",
    "virtio_scsi": "kernel/drivers/scsi",
    "virtio_net": "kernel/drivers/net",
    "virtio_pci": "kernel/drivers/virtio",
    "virtio": "kernel/drivers/virtio",
    "virtio_ring": "kernel/drivers/virtio",
    "failover": "kernel/net/core",
    "net_failover": "kernel/drivers/net",
    "ext4": "kernel/fs/ext4",
}
# What each needs, as in a real modules.dep.
DEPENDENCIES = {
    "virtio_blk": ("virtio", "virtio_ring"),
    "virtio_scsi": ("virtio", "virtio_ring"),
    "virtio_net": ("net_failover", "failover", "virtio", "virtio_ring"),
    "virtio_pci": ("virtio", "virtio_ring"),
}
ALL_VIRTIO = ("virtio_blk", "virtio_net", "virtio_pci", "virtio", "virtio_ring")
ALL_VIRTIO_WITH_DEPS = (*ALL_VIRTIO, "net_failover", "failover")
# The file modes cpio records.
_DIR_MODE, _FILE_MODE = 0o040755, 0o100644


def _pad4(n: int) -> bytes:
    return b"\0" * ((4 - n % 4) % 4)


def newc_member(name: str, data: bytes = b"", *, mode: int = _FILE_MODE, ino: int = 1) -> bytes:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, 1, 1_700_000_000, len(data), 0, 0, 0, 0, len(encoded), 0)
    header = NEWC_MAGIC + b"".join(b"%08X" % value for value in fields)
    return header + encoded + _pad4(len(header) + len(encoded)) + data + _pad4(len(data))


def newc_archive(files: Iterable[tuple[str, bytes]], dirs: Iterable[str] = ()) -> bytes:
    """A whole archive: directories, files, the trailer."""
    parts = [newc_member(d, mode=_DIR_MODE, ino=i) for i, d in enumerate(dirs, start=2)]
    parts += [newc_member(name, data, ino=1000 + i) for i, (name, data) in enumerate(files)]
    parts.append(newc_member(TRAILER, mode=0, ino=0))
    return b"".join(parts)


def compress(data: bytes, how: str) -> bytes:
    if how == "none":
        return data
    if how == "gzip":
        return gzip.compress(data)
    if how == "xz":  # the kernel's xz decoder wants CRC32, as dracut and mkinitramfs use
        return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC32)
    if how == "lzma":
        return lzma.compress(data, format=lzma.FORMAT_ALONE)
    if how == "zstd":
        return zstandard.ZstdCompressor(level=3).compress(data)
    if how == "bzip2":
        return bz2.compress(data)
    if how == "lz4":  # the legacy format (-l), as the kernel and mkinitramfs use it
        done = subprocess.run(["lz4", "-l", "-c"], input=data, capture_output=True, check=True)
        return done.stdout
    raise ValueError(how)


def early_microcode() -> bytes:
    """An uncompressed archive as dracut puts first, padded to 512 bytes as it pads."""
    archive = newc_archive(
        [("kernel/x86/microcode/GenuineIntel.bin", os.urandom(3001))],
        dirs=("kernel", "kernel/x86", "kernel/x86/microcode"),
    )
    return archive + b"\0" * (-len(archive) % 512)


@dataclass
class FakeHost:
    root: Path
    release: str = "5.10.0-21-amd64"

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def module_dir(self) -> Path:
        return self.root / "lib" / "modules" / self.release

    def os_release(self, os_id: str, like: str = "", version: str = "1") -> FakeHost:
        etc = self.root / "etc"
        etc.mkdir(exist_ok=True)
        (etc / "os-release").write_text(
            f'NAME="{os_id}"\nID={os_id}\nID_LIKE="{like}"\nVERSION_ID="{version}"\n'
        )
        return self

    def module_path(self, name: str, suffix: str = ".ko.xz") -> str:
        return f"{DRIVER_DIRS.get(name, 'kernel/drivers/misc')}/{name}{suffix}"

    def modules(
        self,
        *,
        builtin: Iterable[str] = (),
        installed: Iterable[str] = (),
        modinfo_only: bool = False,
    ) -> FakeHost:
        """modules.builtin (or only modules.builtin.modinfo) and modules.dep."""
        self.module_dir.mkdir(parents=True, exist_ok=True)
        builtin = list(builtin)
        if modinfo_only:
            records = b"".join(f"{n}.description=x\0{n}.license=GPL\0".encode() for n in builtin)
            (self.module_dir / "modules.builtin.modinfo").write_bytes(records)
            (self.module_dir / "modules.builtin").write_text("")
        else:
            lines = [self.module_path(n, ".ko") for n in builtin]
            (self.module_dir / "modules.builtin").write_text("".join(f"{x}\n" for x in lines))
        dep_lines = []
        for name in [*installed, "ext4"]:
            needs = " ".join(self.module_path(d) for d in DEPENDENCIES.get(name, ()))
            dep_lines.append(f"{self.module_path(name)}: {needs}".rstrip())
        (self.module_dir / "modules.dep").write_text("".join(f"{x}\n" for x in dep_lines))
        return self

    def initramfs_image(self, modules: Iterable[str], *, prefix: str = "usr/lib/modules") -> bytes:
        base = f"{prefix}/{self.release}"
        files = [("init", b"#!/bin/sh\nexec /sbin/init\n"), ("etc/fstab", b"")]
        files += [
            (f"{base}/{self.module_path(m)}", os.urandom(97 + 13 * i))
            for i, m in enumerate(modules)
        ]
        files.append((f"{base}/modules.dep", b"kernel/fs/ext4/ext4.ko.xz:\n"))
        return newc_archive(files, dirs=("etc", "usr", "usr/lib", prefix, base))

    def initramfs(
        self,
        modules: Iterable[str],
        *,
        compression: str = "gzip",
        microcode: bool = False,
        style: str = "debian",
    ) -> Path:
        """/boot/initrd.img-RELEASE (debian) or /boot/initramfs-RELEASE.img (rhel)."""
        image = compress(self.initramfs_image(modules), compression)
        if microcode:
            image = early_microcode() + image
        return self.write_initramfs(image, style=style)

    def write_initramfs(self, image: bytes, *, style: str = "debian") -> Path:
        boot = self.root / "boot"
        boot.mkdir(exist_ok=True)
        name = (
            f"initrd.img-{self.release}" if style == "debian" else f"initramfs-{self.release}.img"
        )
        path = boot / name
        path.write_bytes(image)
        return path

    def selinux(self, *, config: str | None = None, enforce: str | None = None) -> FakeHost:
        if config is not None:
            directory = self.root / "etc" / "selinux"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "config").write_text(
                f"# This file controls the state of SELinux\nSELINUX={config}\n"
                "SELINUXTYPE=targeted\n"
            )
        if enforce is not None:
            directory = self.root / "sys" / "fs" / "selinux"
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "enforce").write_text(enforce)
        return self


def healthy_host(root: Path, release: str, os_id: str = "ubuntu", like: str = "debian") -> FakeHost:
    """A host whose checks all pass: virtio in the initramfs, SELinux absent."""
    host = FakeHost(root, release).os_release(os_id, like, "22.04")
    host.modules(installed=ALL_VIRTIO_WITH_DEPS)
    host.initramfs(ALL_VIRTIO_WITH_DEPS, compression="zstd")
    return host


@contextlib.contextmanager
def mounted_tmpfs(mountpoint: Path, options: str) -> Iterator[Path]:
    """A tmpfs with `options` ("size=5M,nr_inodes=50"), unmounted (lazily if busy) after."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mountpoint)],
        check=True,
        capture_output=True,
    )
    try:
        yield mountpoint
    finally:
        if subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(mountpoint)], capture_output=True)
