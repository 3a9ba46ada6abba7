"""Self-tests of the end-to-end harness: the edge-case tree and the rsync oracle.

Every end-to-end test trusts these two, so they are checked here without the sender or the
receiver: rsync makes a faithful copy, the oracle must find nothing; then one thing of each
kind is changed in the copy, and the oracle must name it.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.oracle import (
    FIDELITY_ARGS,
    RsyncError,
    copy_differences,
    rsync_differences,
    rsync_file_list,
    sparse_differences,
    write_exclude_file,
)
from tests.trees import (
    BIG_FILE_SIZE,
    FAR_PAST_MTIME_NS,
    FOREIGN_GID,
    FOREIGN_UID,
    MIB,
    SPARSE_SIZE,
    EdgeCaseTree,
    build_edge_case_tree,
    regular_file_stats,
)

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="device nodes, foreign owners and trusted.* xattrs need root"
)


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> EdgeCaseTree:
    return build_edge_case_tree(tmp_path_factory.mktemp("harness") / "src")


@pytest.fixture
def copy(source: EdgeCaseTree, tmp_path: Path) -> EdgeCaseTree:
    """A faithful rsync copy of the source, laid out like it, for one test to damage."""
    dst = tmp_path / "copy"
    _rsync_copy(source.root, dst)
    return EdgeCaseTree.at(dst)


def _rsync_copy(src: Path, dst: Path, *extra_args: str) -> None:
    subprocess.run(["rsync", *FIDELITY_ARGS, *extra_args, f"{src}/", f"{dst}/"], check=True)


# --- the tree holds what it promises -------------------------------------------------------


def _mode(path: Path) -> int:
    return path.lstat().st_mode


TREE_FACTS: list[tuple[str, Callable[[EdgeCaseTree], bool]]] = [
    ("big file spans chunks", lambda t: t.big_file.stat().st_size == BIG_FILE_SIZE > 3 * MIB),
    (
        "sparse file is mostly holes",
        lambda t: (
            t.sparse_file.stat().st_size == SPARSE_SIZE
            and t.sparse_file.stat().st_blocks * 512 < MIB
        ),
    ),
    ("socket", lambda t: stat.S_ISSOCK(_mode(t.unix_socket))),
    ("fifo", lambda t: stat.S_ISFIFO(_mode(t.fifo))),
    ("char device 1,3", lambda t: t.char_device.lstat().st_rdev == os.makedev(1, 3)),
    ("block device 7,200", lambda t: t.block_device.lstat().st_rdev == os.makedev(7, 200)),
    ("char device type", lambda t: stat.S_ISCHR(_mode(t.char_device))),
    ("block device type", lambda t: stat.S_ISBLK(_mode(t.block_device))),
    ("three names, one inode", lambda t: len({p.stat().st_ino for p in t.hardlinks}) == 1),
    ("link count 3", lambda t: t.hardlinks[0].stat().st_nlink == 3),
    ("setuid kept", lambda t: stat.S_IMODE(_mode(t.setuid_file)) == 0o4755),
    ("foreign owner", lambda t: t.foreign_owned_file.stat().st_uid == FOREIGN_UID),
    ("foreign group", lambda t: t.foreign_owned_file.stat().st_gid == FOREIGN_GID),
    ("symlink owner", lambda t: t.owned_symlink.lstat().st_uid == FOREIGN_UID),
    ("absolute symlink", lambda t: os.readlink(t.abs_symlink) == "/usr/share/zoneinfo/UTC"),
    ("relative symlink", lambda t: os.readlink(t.rel_symlink) == "../files/text.txt"),
    ("directory symlink", lambda t: t.dir_symlink.is_symlink() and t.dir_symlink.is_dir()),
    ("capability", lambda t: "security.capability" in os.listxattr(t.capability_file)),
    ("binary xattr", lambda t: b"\x00" in os.getxattr(t.xattr_file, "user.binary")),
    ("access ACL", lambda t: "system.posix_acl_access" in os.listxattr(t.acl_file)),
    ("default ACL", lambda t: "system.posix_acl_default" in os.listxattr(t.acl_dir)),
    ("non-UTF-8 name", lambda t: os.fsencode(t.non_utf8_name.name) == b"\xff\xfe-latin"),
    ("newline name", lambda t: t.newline_name.is_file()),
    ("deep tree", lambda t: len(t.deep_leaf.relative_to(t.root).parts) > 60),
    ("1971 mtime", lambda t: t.far_past_file.stat().st_mtime_ns == FAR_PAST_MTIME_NS),
    ("root mtime has ns", lambda t: t.root.stat().st_mtime_ns % 1000 != 0),
    (
        "hardlinks counted once",
        lambda t: (lambda s: s.names - s.inodes == 2)(regular_file_stats(t.root)),
    ),
]


@pytest.mark.parametrize(("fact", "holds"), TREE_FACTS, ids=[f for f, _ in TREE_FACTS])
def test_edge_case_tree_has(
    source: EdgeCaseTree, fact: str, holds: Callable[[EdgeCaseTree], bool]
) -> None:
    assert holds(source), fact


# --- the oracle finds nothing in a faithful copy, and each kind of damage -----------------


def test_faithful_copy_has_no_differences(source: EdgeCaseTree, copy: EdgeCaseTree) -> None:
    assert copy_differences(source.root, copy.root) == []


def _keep_mtime(path: Path, change: Callable[[], object]) -> None:
    """Apply `change` to the file at `path`, then restore its mtime, so only --checksum sees it."""
    st = path.lstat()
    change()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _overwrite_one_byte(t: EdgeCaseTree) -> None:
    def poke() -> None:
        with t.big_file.open("r+b") as f:
            f.seek(BIG_FILE_SIZE // 2)
            f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")

    _keep_mtime(t.big_file, poke)


def _bump_mtime_by_1ns(t: EdgeCaseTree) -> None:
    os.utime(t.far_past_file, ns=(FAR_PAST_MTIME_NS, FAR_PAST_MTIME_NS + 1))


def _retarget_symlink(t: EdgeCaseTree) -> None:
    t.abs_symlink.unlink()
    t.abs_symlink.symlink_to("/elsewhere")


def _break_hardlink(t: EdgeCaseTree) -> None:
    # Same bytes, mode and mtime, but its own inode: only -H can tell.
    spare = t.hardlinks[2].with_name("spare")
    shutil.copy2(t.hardlinks[2], spare)
    os.replace(spare, t.hardlinks[2])


def _renumber_device(t: EdgeCaseTree) -> None:
    # Same mode and mtime, only the device number differs.
    def remake() -> None:
        t.char_device.unlink()
        os.mknod(t.char_device, stat.S_IFCHR, os.makedev(1, 5))
        t.char_device.chmod(0o666)

    _keep_mtime(t.char_device, remake)


# Lines are exactly what rsync 3.2+ itemizes; see rsync(1) --itemize-changes for the letters.
DAMAGE: list[tuple[str, Callable[[EdgeCaseTree], object], str]] = [
    ("content, same size and mtime", _overwrite_one_byte, ">fc........ files/big.bin"),
    ("mode", lambda t: t.setuid_file.chmod(0o755), ".f...p..... perms/setuid"),
    ("owner", lambda t: os.chown(t.foreign_owned_file, 0, -1), ".f....o.... perms/foreign-owner"),
    ("group", lambda t: os.chown(t.foreign_owned_file, -1, 0), ".f.....g... perms/foreign-owner"),
    ("mtime by 1 ns", _bump_mtime_by_1ns, ".f..t...... times/1971"),
    (
        "root directory mtime",
        lambda t: os.utime(t.root, ns=(0, t.root.stat().st_mtime_ns + 1)),
        ".d..t...... ./",
    ),
    (
        "xattr value",
        lambda t: os.setxattr(t.xattr_file, "user.binary", b"\x00"),
        ".f........x attrs/xattrs",
    ),
    (
        "trusted xattr on a symlink",
        lambda t: os.removexattr(
            t.root / "attrs" / "symlink-xattr", "trusted.label", follow_symlinks=False
        ),
        ".L........x attrs/symlink-xattr -> xattrs",
    ),
    (
        "capability dropped",
        lambda t: os.removexattr(t.capability_file, "security.capability"),
        ".f........x attrs/ping",
    ),
    (
        # setfacl also rewrites the group bits (the ACL mask), hence the p.
        "access ACL",
        lambda t: subprocess.run(["setfacl", "-m", f"u:{FOREIGN_UID}:r--", t.acl_file], check=True),
        ".f...p...a. attrs/acl-file",
    ),
    (
        "default ACL",
        lambda t: subprocess.run(["setfacl", "-k", t.acl_dir], check=True),
        ".d.......a. attrs/acl-dir/",
    ),
    ("symlink target", _retarget_symlink, "cLc.t...... etc/localtime -> /usr/share/zoneinfo/UTC"),
    (
        "symlink owner",
        lambda t: os.lchown(t.owned_symlink, 0, -1),
        ".L....o.... links/owned -> ../files/one-byte",
    ),
    ("hardlink broken", _break_hardlink, "hf          hardlinks/one/a => hardlinks/c"),
    ("device number", _renumber_device, "cDc........ devices/null"),
    ("socket missing", lambda t: t.unix_socket.unlink(), "cS+++++++++ run/app.sock"),
    (
        "non-UTF-8 name missing",
        lambda t: t.non_utf8_name.unlink(),
        ">f+++++++++ names/" + os.fsdecode(b"\xff\xfe-latin"),
    ),
    (
        "extra file with a newline in its name",
        lambda t: (t.root / "names" / "extra\nfile").write_bytes(b""),
        "*deleting   names/extra\nfile",
    ),
]


@pytest.mark.parametrize(
    ("damage", "expected"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE]
)
def test_oracle_reports(
    source: EdgeCaseTree,
    copy: EdgeCaseTree,
    damage: Callable[[EdgeCaseTree], object],
    expected: str,
) -> None:
    damage(copy)
    assert expected in rsync_differences(source.root, copy.root)


def test_densified_sparse_file_is_reported_by_sparse_differences_only(
    source: EdgeCaseTree, copy: EdgeCaseTree
) -> None:
    _keep_mtime(
        copy.sparse_file,
        lambda: subprocess.run(
            ["cp", "--sparse=never", "--preserve=all", source.sparse_file, copy.sparse_file],
            check=True,
        ),
    )
    # rsync compares bytes, not allocation: this is why sparse_differences exists.
    assert rsync_differences(source.root, copy.root) == []
    assert sparse_differences(source.root, copy.root) == [
        f"holes lost: sparse/disk.img: {source.sparse_file.stat().st_blocks} blocks in the "
        f"source, {copy.sparse_file.stat().st_blocks} in the copy"
    ]


def test_excluding_the_socket_hides_only_the_socket(source: EdgeCaseTree, tmp_path: Path) -> None:
    rules = write_exclude_file(tmp_path / "rules", [source.anchored_rule(source.unix_socket)])
    _rsync_copy(source.root, tmp_path / "copy", f"--exclude-from={rules}")
    assert rsync_differences(source.root, tmp_path / "copy") == ["cS+++++++++ run/app.sock"]
    assert rsync_differences(source.root, tmp_path / "copy", exclude_from=rules) == []


def test_rsync_failure_raises_with_stderr(tmp_path: Path) -> None:
    with pytest.raises(RsyncError, match="No such file or directory"):
        rsync_differences(tmp_path / "missing", tmp_path)


# --- rsync_file_list gives exact names and rsync's exclude semantics -----------------------


def _walk_names(root: Path) -> set[bytes]:
    """Every path under `root`, as relative bytes, found without rsync."""
    base = os.fsencode(root)
    return {
        os.path.relpath(os.path.join(dirpath, name), base)
        for dirpath, dirnames, filenames in os.walk(base)
        for name in (*dirnames, *filenames)
    }


def test_file_list_names_are_exact_bytes(source: EdgeCaseTree) -> None:
    listed = rsync_file_list(source.root)
    assert listed == _walk_names(source.root)
    assert {b"names/line\nbreak", b"names/\xff\xfe-latin", b"names/literal-\\#101"} <= listed


def _under(tree_names: set[bytes], prefix: bytes) -> set[bytes]:
    return {name for name in tree_names if name.startswith(prefix)}


EXCLUDES: list[tuple[str, list[str], Callable[[set[bytes]], set[bytes]]]] = [
    ("anchored file", ["/run/app.sock"], lambda _: {b"run/app.sock"}),
    ("contents, not the dir", ["/deep/l00/*"], lambda n: _under(n, b"deep/l00/")),
    ("dir and contents", ["/deep/***"], lambda n: _under(n, b"deep")),
    ("* matches in any dir", ["*.txt"], lambda n: {x for x in n if x.endswith(b".txt")}),
    ("trailing / is dirs only", ["lib/"], lambda n: _under(n, b"usr/lib")),
    (
        "first match wins",
        ["+ files/empty", "- files/*"],
        lambda n: _under(n, b"files/") - {b"files/empty"},
    ),
]


@pytest.mark.parametrize(
    ("rules", "excluded"), [e[1:] for e in EXCLUDES], ids=[e[0] for e in EXCLUDES]
)
def test_file_list_applies_excludes(
    source: EdgeCaseTree,
    tmp_path: Path,
    rules: list[str],
    excluded: Callable[[set[bytes]], set[bytes]],
) -> None:
    everything = _walk_names(source.root)
    listed = rsync_file_list(
        source.root, exclude_from=write_exclude_file(tmp_path / "rules", rules)
    )
    assert everything - listed == excluded(everything)


# --- the same tree on tmpfs ----------------------------------------------------------------


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    mountpoint = tmp_path / "tmpfs"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", mountpoint],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mountpoint
    finally:
        subprocess.run(["umount", mountpoint], check=True)


def test_tree_builds_on_tmpfs_and_copies_faithfully(tmpfs: Path, tmp_path: Path) -> None:
    tree = build_edge_case_tree(tmpfs / "src")
    _rsync_copy(tree.root, tmp_path / "copy")  # tmpfs to ext4: both ends keep everything
    assert copy_differences(tree.root, tmp_path / "copy") == []
