"""An edge-case source tree: one of every kind of entry a system migration must carry.

`build_edge_case_tree` makes real files with plain `os` calls (plus `setcap`/`setfacl`, which
have no stdlib equivalent), so the same tree works on ext4 and tmpfs. It needs root: device
nodes, foreign owners, `trusted.*` xattrs and capabilities are root-only.

Metadata is applied in the order a faithful receiver must also respect:
owner before mode (chown clears setuid/setgid), mode before ACLs (setfacl rewrites the group
bits as the ACL mask), owner before capabilities (chown drops `security.capability`), and
timestamps last, directories included, because every later change to a directory's entries
would bump its mtime again.
"""

from __future__ import annotations

import os
import random
import socket
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

KIB = 1024
MIB = 1024 * KIB

# Owners with no passwd/group entry anywhere: they only survive as numbers (--numeric-ids).
FOREIGN_UID = 4242
FOREIGN_GID = 4343

BIG_FILE_SIZE = 3 * MIB + 12_345  # spans several 1 MiB chunks and ends mid-chunk
SPARSE_SIZE = 64 * MIB
# The only data in the sparse file, as (offset, length). One run is unaligned, and the file
# ends in a 31 MiB hole: a trailing hole survives only if the writer sets the size itself.
SPARSE_RUNS = ((0, 4 * KIB), (8 * MIB, 100), (33 * MIB + 123, 3_000))
DEEP_LEVELS = 60

# Every timestamp in the tree has this non-zero sub-second part, so a copy that keeps only
# seconds (or microseconds) shows up in the oracle.
BASE_MTIME_NS = 1_700_000_000 * 10**9 + 123_456_789
FAR_PAST_MTIME_NS = 31_536_000 * 10**9 + 987_654_321  # 1971-01-01T00:00:00.987654321Z


@dataclass(frozen=True)
class EdgeCaseTree:
    """The root of a built tree and the entries tests single out."""

    root: Path
    big_file: Path
    sparse_file: Path
    unix_socket: Path  # must NOT be migrated: exclude it from the oracle or assert it absent
    hardlinks: tuple[Path, Path, Path]  # three names of one inode, in different directories
    char_device: Path
    block_device: Path
    fifo: Path
    setuid_file: Path
    foreign_owned_file: Path
    capability_file: Path
    xattr_file: Path
    acl_file: Path
    acl_dir: Path  # carries a default ACL
    abs_symlink: Path
    rel_symlink: Path
    dir_symlink: Path
    owned_symlink: Path  # lchown'ed to the foreign owner
    non_utf8_name: Path
    newline_name: Path
    far_past_file: Path
    deep_leaf: Path

    @classmethod
    def at(cls, root: Path) -> EdgeCaseTree:
        """The layout of a tree under `root`; the builders create exactly these paths."""
        return cls(
            root=root,
            big_file=root / "files" / "big.bin",
            sparse_file=root / "sparse" / "disk.img",
            unix_socket=root / "run" / "app.sock",
            hardlinks=(
                root / "hardlinks" / "one" / "a",
                root / "hardlinks" / "two" / "b",
                root / "hardlinks" / "c",
            ),
            char_device=root / "devices" / "null",
            block_device=root / "devices" / "loop200",
            fifo=root / "devices" / "initctl",
            setuid_file=root / "perms" / "setuid",
            foreign_owned_file=root / "perms" / "foreign-owner",
            capability_file=root / "attrs" / "ping",
            xattr_file=root / "attrs" / "xattrs",
            acl_file=root / "attrs" / "acl-file",
            acl_dir=root / "attrs" / "acl-dir",
            abs_symlink=root / "etc" / "localtime",
            rel_symlink=root / "links" / "relative",
            dir_symlink=root / "lib",
            owned_symlink=root / "links" / "owned",
            non_utf8_name=root / "names" / os.fsdecode(b"\xff\xfe-latin"),
            newline_name=root / "names" / "line\nbreak",
            far_past_file=root / "times" / "1971",
            deep_leaf=root.joinpath("deep", *(f"l{i:02d}" for i in range(DEEP_LEVELS)), "leaf"),
        )

    def __repr__(self) -> str:  # the default lists every landmark, burying test failures
        return f"EdgeCaseTree({str(self.root)!r})"

    def relative(self, path: Path) -> bytes:
        """`path` relative to the tree root, as the bytes a receiver or rsync sees."""
        return os.fsencode(path.relative_to(self.root))

    def anchored_rule(self, path: Path) -> str:
        """An rsync exclude rule matching exactly `path` (leading `/` anchors at the root)."""
        return "/" + os.fsdecode(self.relative(path))


@dataclass(frozen=True)
class RegularFileStats:
    """Totals over the regular files of a tree; hardlinked names count once as inodes."""

    names: int
    inodes: int
    apparent_bytes: int  # sum of st_size over distinct inodes
    allocated_bytes: int  # sum of st_blocks * 512 over distinct inodes


def build_edge_case_tree(root: Path) -> EdgeCaseTree:
    """Create the edge-case tree under `root` (created if missing) and return its landmarks."""
    tree = EdgeCaseTree.at(root)
    root.mkdir(parents=True, exist_ok=True)
    for build in (
        _make_regular_files,
        _make_permission_cases,
        _make_symlinks,
        _make_special_files,
        _make_awkward_names,
        _make_xattrs_acls_caps,
    ):
        build(tree)
    _stamp_times(root, keep={tree.far_past_file})
    return tree


def regular_file_stats(root: Path) -> RegularFileStats:
    """Count the regular files under `root` without following symlinks."""
    seen: set[tuple[int, int]] = set()
    names = apparent = allocated = 0
    for path in _walk(root):
        st = path.lstat()
        if not stat.S_ISREG(st.st_mode):
            continue
        names += 1
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        apparent += st.st_size
        allocated += st.st_blocks * 512
    return RegularFileStats(names, len(seen), apparent, allocated)


# --- builders, one per kind of entry ------------------------------------------------------


def _make_regular_files(tree: EdgeCaseTree) -> None:
    files = _mkdir(tree.root / "files")
    _write(files / "empty", b"")
    _write(files / "one-byte", b"x")
    _write(files / "text.txt", _text(4 * KIB))
    _write(tree.big_file, _mixed_bytes(BIG_FILE_SIZE))

    _mkdir(tree.root / "empty")
    _write(_mkdir(tree.root / "nested" / "a" / "b" / "c") / "file", b"nested\n")
    _mkdir(tree.root / "nested" / "a" / "empty")
    _write(_mkdir(tree.deep_leaf.parent) / tree.deep_leaf.name, b"bottom\n")

    first, *others = tree.hardlinks
    _write(_mkdir(first.parent) / first.name, _text(2 * KIB))
    for name in others:
        os.link(first, _mkdir(name.parent) / name.name)

    _write_sparse(_mkdir(tree.sparse_file.parent) / tree.sparse_file.name)
    _write(_mkdir(tree.far_past_file.parent) / tree.far_past_file.name, b"old\n")


def _make_permission_cases(tree: EdgeCaseTree) -> None:
    perms = _mkdir(tree.root / "perms")
    _chmod(_mkdir(perms / "private"), 0o700)
    sticky = _chmod(_mkdir(perms / "sticky"), 0o1777)
    _write(sticky / "someone-elses", b"t\n")
    setgid_dir = _mkdir(perms / "setgid")
    os.chown(setgid_dir, FOREIGN_UID, FOREIGN_GID)
    _chmod(setgid_dir, 0o2755)
    _write(setgid_dir / "inherits-group", b"g\n")  # created after: gets the dir's group

    _chmod(_write(tree.setuid_file, b"#!/bin/sh\n"), 0o4755)
    _chmod(_write(perms / "no-access", b"secret\n"), 0o000)
    _write(tree.foreign_owned_file, b"who?\n")
    os.chown(tree.foreign_owned_file, FOREIGN_UID, FOREIGN_GID)
    _chmod(tree.foreign_owned_file, 0o640)


def _make_symlinks(tree: EdgeCaseTree) -> None:
    _write(_mkdir(tree.root / "usr" / "lib") / "libfoo.so.1", b"\x7fELF")
    _symlink(tree.dir_symlink, "usr/lib")
    _symlink(_mkdir(tree.abs_symlink.parent) / tree.abs_symlink.name, "/usr/share/zoneinfo/UTC")

    links = _mkdir(tree.root / "links")
    _symlink(tree.rel_symlink, "../files/text.txt")
    _symlink(links / "dangling-absolute", "/nonexistent/target")
    _symlink(links / "dangling-relative", "missing")
    _symlink(links / "loop-a", "loop-b")
    _symlink(links / "loop-b", "loop-a")
    _symlink(links / "self", "self")
    _symlink(links / "non-utf8-target", os.fsdecode(b"\xff\xfe-target"))
    _symlink(tree.owned_symlink, "../files/one-byte")
    os.lchown(tree.owned_symlink, FOREIGN_UID, FOREIGN_GID)


def _make_special_files(tree: EdgeCaseTree) -> None:
    # Not under "dev/": the shipped default excludes drop /dev/*, and this tree is about
    # fidelity, not excludes.
    _mkdir(tree.char_device.parent)
    os.mknod(tree.char_device, stat.S_IFCHR, os.makedev(1, 3))
    os.mknod(tree.block_device, stat.S_IFBLK, os.makedev(7, 200))
    os.chown(tree.block_device, 0, 6)  # group "disk" on Debian, as on a real /dev
    os.mkfifo(tree.fifo)
    # Modes set after creation so the umask does not decide them.
    _chmod(tree.char_device, 0o666)
    _chmod(tree.block_device, 0o660)
    _chmod(tree.fifo, 0o600)
    _bind_socket(_mkdir(tree.unix_socket.parent) / tree.unix_socket.name)


def _make_awkward_names(tree: EdgeCaseTree) -> None:
    names = _mkdir(tree.root / "names")
    _write(tree.non_utf8_name, b"latin-1\n")
    _write(_mkdir(names / os.fsdecode(b"dir-caf\xe9")) / "inside", b"in\n")
    _write(tree.newline_name, b"nl\n")
    _write(names / ("n" * 251 + ".txt"), b"long\n")  # 255 bytes, the NAME_MAX of ext4/tmpfs
    _write(names / "with spaces  and\ttab", b"sp\n")
    _write(names / "glob*?[chars]", b"glob\n")
    # rsync prints non-printable bytes as \#ooo; a name that already looks like an escape
    # proves the oracle's unescaping is exact.
    _write(names / "literal-\\#101", b"esc\n")
    _write(names / "-leading-dash", b"dash\n")


def _make_xattrs_acls_caps(tree: EdgeCaseTree) -> None:
    attrs = _mkdir(tree.root / "attrs")
    _write(tree.xattr_file, b"x\n")
    os.setxattr(tree.xattr_file, "user.binary", b"\x00\x01bin\x00\xff")
    os.setxattr(tree.xattr_file, "user.empty", b"")
    os.setxattr(tree.xattr_file, "trusted.overlay.opaque", b"y")
    os.setxattr(attrs, "user.on-a-directory", b"dir\x00value")
    # SELinux labels live in security.* on symlinks too; trusted.* stands in for them here
    # because user.* is not allowed on symlinks.
    labelled = _symlink(attrs / "symlink-xattr", "xattrs")
    os.setxattr(labelled, "trusted.label", b"l", follow_symlinks=False)

    _chmod(_write(tree.capability_file, b"\x7fELF"), 0o755)
    subprocess.run(["setcap", "cap_net_raw+ep", str(tree.capability_file)], check=True)

    _write(tree.acl_file, b"acl\n")
    _setfacl("-m", f"u:{FOREIGN_UID}:rwx,g:{FOREIGN_GID}:r-x", tree.acl_file)
    _mkdir(tree.acl_dir)
    _setfacl("-m", f"u:{FOREIGN_UID}:rwx", tree.acl_dir)
    _setfacl("-d", "-m", f"u:{FOREIGN_UID}:rwx,g:{FOREIGN_GID}:r-x", tree.acl_dir)
    _write(tree.acl_dir / "inherited", b"inherits the default ACL\n")


# --- small helpers ------------------------------------------------------------------------


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _chmod(path: Path, mode: int) -> Path:
    os.chmod(path, mode, follow_symlinks=False)
    return path


def _symlink(path: Path, target: str) -> Path:
    os.symlink(target, path)
    return path


def _setfacl(*args: str | Path) -> None:
    subprocess.run(["setfacl", *map(str, args)], check=True)


def _text(size: int) -> bytes:
    line = b"The quick brown fox jumps over the lazy dog. 0123456789\n"
    return (line * (size // len(line) + 1))[:size]


def _mixed_bytes(size: int) -> bytes:
    """Alternating 256 KiB runs of text (compresses) and random bytes (does not)."""
    rng = random.Random(20240601)  # fixed seed: the same tree on every run
    run = 256 * KIB
    parts = [_text(run) if i % 2 == 0 else rng.randbytes(run) for i in range(size // run + 1)]
    return b"".join(parts)[:size]


def _write_sparse(path: Path) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.ftruncate(fd, SPARSE_SIZE)
        for offset, length in SPARSE_RUNS:
            os.pwrite(fd, bytes([offset % 251 + 1]) * length, offset)
    finally:
        os.close(fd)


def _bind_socket(path: Path) -> None:
    # AF_UNIX addresses hold at most 108 bytes and pytest's tmp paths can be longer, so bind
    # through the parent directory's /proc/self/fd entry, which keeps the address short.
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.bind(f"/proc/self/fd/{dir_fd}/{path.name}")
    finally:
        os.close(dir_fd)


def _walk(root: Path) -> Iterator[Path]:
    """Every entry under `root`, children before their directory, symlinks not followed."""
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        parent = Path(dirpath)
        for name in (*filenames, *dirnames):
            yield parent / name


def _stamp_times(root: Path, keep: set[Path]) -> None:
    """Give every entry (root last) its own ns-precision mtime, except those in `keep`."""
    for i, path in enumerate((*_walk(root), root)):
        ns = FAR_PAST_MTIME_NS if path in keep else BASE_MTIME_NS + i * 10**9
        os.utime(path, ns=(ns, ns), follow_symlinks=False)
