"""Which drivers a kernel has: built in, installed as modules, and their dependencies.

Read from /lib/modules/RELEASE as depmod wrote it: modules.builtin lists the
built-in ones by path, modules.builtin.modinfo (kernels from 5.2) by name, and
modules.dep maps each installed module to all the modules it needs.
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from sender.checks.host_paths import host_path

_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.zst", ".ko.gz")
# Distributions that keep modules only under /usr (and /lib a symlink, or absent).
_MODULE_DIRS = ("/lib/modules", "/usr/lib/modules")


def module_name(path: str) -> str | None:
    """'kernel/drivers/block/virtio_blk.ko.xz' -> 'virtio_blk'; None if not a module.

    The kernel treats '-' and '_' in module names as the same character.
    """
    base = posixpath.basename(path.strip())
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            return base[: -len(suffix)].replace("-", "_")
    return None


@dataclass(frozen=True)
class KernelModules:
    directory: Path
    builtin: frozenset[str]
    # Installed module -> every module it needs (modules.dep lists them all).
    installed: dict[str, tuple[str, ...]]


def find_module_dir(host_root: Path, release: str) -> Path | None:
    for parent in _MODULE_DIRS:
        directory = host_path(host_root, f"{parent}/{release}")
        if (directory / "modules.dep").is_file() or (directory / "modules.builtin").is_file():
            return directory
    return None


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""


def _builtin(directory: Path) -> frozenset[str]:
    lines = _read_text(directory / "modules.builtin").splitlines()
    names = {name for name in map(module_name, lines) if name}
    try:
        modinfo = (directory / "modules.builtin.modinfo").read_bytes()
    except FileNotFoundError:
        modinfo = b""
    # NUL-separated "virtio_pci.description=..." records.
    for record in modinfo.split(b"\0"):
        name, dot, _ = record.partition(b".")
        if dot:
            names.add(name.decode(errors="replace").replace("-", "_"))
    return frozenset(names)


def _installed(directory: Path) -> dict[str, tuple[str, ...]]:
    installed: dict[str, tuple[str, ...]] = {}
    for line in _read_text(directory / "modules.dep").splitlines():
        module, colon, needs = line.partition(":")
        name = module_name(module)
        if colon and name:
            installed[name] = tuple(n for n in map(module_name, needs.split()) if n)
    return installed


def read_kernel_modules(directory: Path) -> KernelModules:
    """The modules of the kernel whose depmod output is in `directory`; OSError if unreadable."""
    return KernelModules(directory, _builtin(directory), _installed(directory))
