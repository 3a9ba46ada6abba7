"""Reading /etc/os-release (os-release(5)): which distribution a tree holds."""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

# os-release(5): /etc/os-release, falling back to /usr/lib/os-release.
_LOCATIONS = ("etc/os-release", "usr/lib/os-release")


@dataclass(frozen=True)
class OsRelease:
    id: str = ""
    id_like: tuple[str, ...] = ()
    version_id: str = ""
    pretty_name: str = ""

    @property
    def known(self) -> bool:
        return bool(self.id)

    def family(self) -> frozenset[str]:
        """The distribution and those it is like: {'centos', 'rhel', 'fedora'}."""
        return frozenset((self.id, *self.id_like)) - {""}


def parse_os_release(text: str) -> OsRelease:
    values: dict[str, str] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, raw = line.partition("=")
        try:
            parts = shlex.split(raw)
        except ValueError:
            continue
        values[key.strip()] = parts[0] if parts else ""
    return OsRelease(
        id=values.get("ID", "").lower(),
        id_like=tuple(values.get("ID_LIKE", "").lower().split()),
        version_id=values.get("VERSION_ID", ""),
        pretty_name=values.get("PRETTY_NAME", ""),
    )


def read_os_release(root: Path) -> OsRelease:
    """The os-release of the tree at `root` (a symlinked /etc/os-release is read
    only if it stays inside `root`)."""
    for location in _LOCATIONS:
        path = root / location
        try:
            resolved = path.resolve()
            if root.resolve() not in (resolved, *resolved.parents):
                continue
            return parse_os_release(resolved.read_text(errors="replace"))
        except OSError:
            continue
    return OsRelease()
