"""End to end: the real sender migrates a tree to the real receiver, and rsync finds nothing.

Every test runs `python -m receiver` and `python -m sender run` as processes over loopback
TCP (fixtures in tests/conftest.py) and judges the result with rsync (tests/oracle.py).
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.oracle import copy_differences, rsync_file_list, write_exclude_file
from tests.trees import SPARSE_SIZE, EdgeCaseTree, build_edge_case_tree, regular_file_stats

if TYPE_CHECKING:  # fixtures come from conftest; importing it at run time would load it twice
    from tests.conftest import ReceiverProcess, RunSender, SenderResult, StartReceiver

pytestmark = pytest.mark.skipif(
    os.geteuid() != 0, reason="device nodes, foreign owners and trusted.* xattrs need root"
)

# The list the sender applies unless --no-default-excludes, shipped as package data of common.
DEFAULT_EXCLUDES = Path(__file__).resolve().parents[2] / "common" / "rsync_excludes_linux.txt"


@dataclass(frozen=True)
class Target:
    """A receiver serving an initially empty root."""

    root: Path
    receiver: ReceiverProcess


@pytest.fixture
def target(tmp_path: Path, receiver: StartReceiver) -> Target:
    root = tmp_path / "dst"
    root.mkdir()
    return Target(root, receiver(root, tmp_path / "state"))


# --- the edge-case tree, first pass and unchanged second pass ----------------------------


def _migrate_edge_case_tree(
    tmp_path: Path, target: Target, run_sender: RunSender
) -> tuple[EdgeCaseTree, Path, SenderResult]:
    """Build the tree, migrate it without the socket; the tree, the oracle's excludes, result."""
    tree = build_edge_case_tree(tmp_path / "src")
    socket_rule = tree.anchored_rule(tree.unix_socket)
    excludes = write_exclude_file(tmp_path / "excludes", [socket_rule])
    result = run_sender(tree.root, target.receiver, *_edge_case_args(tree))
    return tree, excludes, result


def _edge_case_args(tree: EdgeCaseTree) -> list[str]:
    # No default excludes: they would drop nothing here, but this test is about fidelity.
    # The socket is excluded explicitly so the oracle is not left to judge it.
    return ["--no-default-excludes", "--exclude", tree.anchored_rule(tree.unix_socket)]


def test_edge_case_tree_arrives_faithfully(
    tmp_path: Path, target: Target, run_sender: RunSender
) -> None:
    tree, excludes, result = _migrate_edge_case_tree(tmp_path, target, run_sender)

    assert copy_differences(tree.root, target.root, exclude_from=excludes) == []
    assert not os.path.lexists(target.root / os.fsdecode(tree.relative(tree.unix_socket)))

    assert result.summary is not None
    stats = regular_file_stats(tree.root)
    assert result.summary["exit_code"] == 0
    assert result.summary["files_transferred"] >= stats.inodes
    # Every byte of every file but the sparse one must travel, and the sparse file's holes
    # must not: together they bound the raw (uncompressed) byte count.
    assert stats.apparent_bytes - SPARSE_SIZE <= result.summary["bytes_sent_raw"]
    assert result.summary["bytes_sent_raw"] < stats.apparent_bytes


def test_unchanged_second_pass_transfers_nothing(
    tmp_path: Path, target: Target, run_sender: RunSender
) -> None:
    tree, excludes, _ = _migrate_edge_case_tree(tmp_path, target, run_sender)

    again = run_sender(tree.root, target.receiver, *_edge_case_args(tree))

    assert copy_differences(tree.root, target.root, exclude_from=excludes) == []
    assert again.summary is not None
    assert again.summary["files_transferred"] == 0


# --- excludes: the shipped defaults, and the user's own ---------------------------------


def _make_files(root: Path, names: list[str]) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name}\n")


SYSTEM_LIKE_FILES = [
    "proc/1/status",
    "sys/kernel/mm/transparent_hugepage/enabled",
    "var/cache/yum/x86_64/7/base/packages/bash.rpm",
    "lost+found/#12345",
    "dev/pts/README",
    # Neighbours of the excluded paths, which must travel.
    "etc/hostname",
    "var/cache/apt/pkgcache.bin",
    "var/log/messages",
    "home/user/.bashrc",
    "devices.txt",
]


def test_default_excludes_keep_the_mount_points_but_not_their_contents(
    tmp_path: Path, target: Target, run_sender: RunSender
) -> None:
    src = tmp_path / "src"
    _make_files(src, SYSTEM_LIKE_FILES)
    os.mknod(src / "dev" / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))

    run_sender(src, target.receiver)

    for mount_point in ("dev", "proc", "sys"):
        path = target.root / mount_point
        assert path.is_dir() and not path.is_symlink(), mount_point
        assert os.listdir(path) == [], mount_point
    assert rsync_file_list(target.root) == rsync_file_list(src, exclude_from=DEFAULT_EXCLUDES)
    assert copy_differences(src, target.root, exclude_from=DEFAULT_EXCLUDES) == []


USER_FILES = [
    "app/src/main.py",
    "app/src/main.pyc",
    "app/log/today.log",
    "app/log/keep.log",
    "data/tmp/scratch",
    "data/db/table",
    "data/db/cache/blob",
    "data/db/old/cache",  # a file: the rule's trailing / spares it
    "home/user/.cache/thumbnails/x.png",
    "home/user/notes.txt",
]
# Given with --exclude; none of them interacts with the file's rules, so the order the sender
# combines the two options in cannot change the outcome.
CLI_EXCLUDES = ["*.pyc", "/data/tmp/"]
# Given with --exclude-from: comments, an include that must win by coming first, `**`, and a
# directory excluded as a whole.
FILE_EXCLUDES = [
    "# comment",
    "; another comment",
    "+ keep.log",
    "- *.log",
    "/data/**/cache/",
    "home/*/.cache",
]


def test_user_excludes_follow_rsync_semantics(
    tmp_path: Path, target: Target, run_sender: RunSender
) -> None:
    src = tmp_path / "src"
    _make_files(src, USER_FILES)
    rules_file = write_exclude_file(tmp_path / "user-excludes", FILE_EXCLUDES)
    cli_args = [arg for rule in CLI_EXCLUDES for arg in ("--exclude", rule)]

    run_sender(
        src, target.receiver, "--no-default-excludes", *cli_args, "--exclude-from", str(rules_file)
    )

    # rsync applies --exclude and --exclude-from rules in command-line order, as one list.
    oracle_rules = write_exclude_file(
        tmp_path / "oracle-excludes", [f"- {rule}" for rule in CLI_EXCLUDES] + FILE_EXCLUDES
    )
    assert rsync_file_list(target.root) == rsync_file_list(src, exclude_from=oracle_rules)
    assert copy_differences(src, target.root, exclude_from=oracle_rules) == []


# --- a receiver never writes through a symlink it created --------------------------------


@pytest.mark.parametrize("form", ["absolute", "relative"])
def test_symlink_replaced_by_directory_is_not_written_through(
    tmp_path: Path, target: Target, run_sender: RunSender, form: str
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    src = tmp_path / "src"
    src.mkdir()
    # dst and src are both children of tmp_path, so "../outside" escapes either root.
    (src / "evil").symlink_to(outside if form == "absolute" else Path("..", "outside"))
    run_sender(src, target.receiver, "--no-default-excludes")
    assert copy_differences(src, target.root) == []

    # The source now has a real directory where the symlink was: a receiver that resolves
    # `evil/pwned` by following the old link would write into `outside`.
    (src / "evil").unlink()
    (src / "evil").mkdir()
    (src / "evil" / "pwned").write_text("written through a symlink\n")
    run_sender(src, target.receiver, "--no-default-excludes")

    assert os.listdir(outside) == []
    assert (target.root / "evil").is_dir() and not (target.root / "evil").is_symlink()
    assert copy_differences(src, target.root) == []
