"""receiver.beneath on a real directory: no symlink is followed, no descriptor goes stale."""

from __future__ import annotations

import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from common.relpath import InvalidPath
from receiver.beneath import DirCache, NotADirectoryOnPath, RootDir, proc_path


@pytest.fixture
def root(tmp_path: Path) -> Iterator[RootDir]:
    (tmp_path / "root").mkdir()
    (tmp_path / "outside").mkdir()
    opened = RootDir(tmp_path / "root")
    yield opened
    opened.close()


@pytest.fixture
def cache(root: RootDir) -> Iterator[DirCache]:
    dirs = DirCache(root)
    yield dirs
    dirs.clear()


def _same_directory(fd: int, path: Path) -> bool:
    st, expected = os.fstat(fd), os.stat(path, follow_symlinks=False)
    return (st.st_dev, st.st_ino) == (expected.st_dev, expected.st_ino)


def test_parent_of_resolves_real_directories(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "a" / "b").mkdir(parents=True)
    fd, name = cache.parent_of(b"a/b/file")
    assert name == b"file"
    assert _same_directory(fd, top / "a" / "b")
    fd, name = cache.parent_of(b"top-level")
    assert (fd, name) == (root.fd, b"top-level")


@pytest.mark.parametrize(
    ("link_target", "path"),
    [
        ("../outside", b"evil/x"),
        ("{outside}", b"evil/x"),
        ("../outside", b"evil/deeper/x"),
        ("../outside/missing", b"evil/x"),
        ("a", b"alias/x"),  # a symlink to a real directory inside the root is refused too
    ],
    ids=["relative", "absolute", "deeper", "dangling", "inside-root"],
)
def test_symlinked_component_raises(
    root: RootDir, cache: DirCache, link_target: str, path: bytes
) -> None:
    top = Path(root.path)
    (top / "a").mkdir()
    outside = top.parent / "outside"
    name = path.split(b"/")[0].decode()
    (top / name).symlink_to(link_target.format(outside=outside))
    with pytest.raises(NotADirectoryOnPath) as caught:
        cache.parent_of(path)
    assert caught.value.errno in (errno.ELOOP, errno.ENOTDIR)


@pytest.mark.parametrize(
    ("make", "path", "code"),
    [
        ("file", b"f/x", errno.ENOTDIR),
        ("fifo", b"p/x", errno.ENOTDIR),
        ("missing", b"m/x", errno.ENOENT),
    ],
)
def test_non_directory_component_raises(
    root: RootDir, cache: DirCache, make: str, path: bytes, code: int
) -> None:
    top = Path(root.path)
    (top / "f").write_bytes(b"")
    os.mkfifo(top / "p")
    with pytest.raises(NotADirectoryOnPath) as caught:
        cache.parent_of(path)
    assert caught.value.errno == code


@pytest.mark.parametrize("path", [b"", b"../x", b"/etc/x", b"a//b", b"a/./b", b"a\0b"])
def test_forbidden_paths_raise_invalid_path(cache: DirCache, path: bytes) -> None:
    with pytest.raises(InvalidPath):
        cache.parent_of(path)


def test_cache_is_invalidated_after_layout_changed(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "d").mkdir()
    first = cache.directory((b"d",))
    assert _same_directory(first, top / "d")

    # Another directory now lives at d: the cache still lends the old one...
    (top / "d").rename(top / "old")
    (top / "d").mkdir()
    assert _same_directory(cache.directory((b"d",)), top / "old")

    # ...until the layout generation moves on.
    root.layout_changed()
    assert _same_directory(cache.directory((b"d",)), top / "d")


def test_cache_finds_a_symlink_after_layout_changed(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "d").mkdir()
    cache.directory((b"d",))
    os.rename(top / "d", top / "gone")
    (top / "d").symlink_to(top.parent / "outside")
    root.layout_changed()
    with pytest.raises(NotADirectoryOnPath):
        cache.parent_of(b"d/x")


def test_clear_on_layout_change_closes_the_old_descriptors(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "d").mkdir()
    fd = cache.directory((b"d",))
    held = os.fstat(fd)
    root.layout_changed()
    cache.directory(())  # any call notices the new generation
    try:
        st = os.fstat(fd)
    except OSError as exc:
        assert exc.errno == errno.EBADF
    else:  # the number was reused by someone else; it must not be the old directory
        assert (st.st_dev, st.st_ino) != (held.st_dev, held.st_ino)


def test_capacity_bounds_open_descriptors(root: RootDir) -> None:
    top = Path(root.path)
    for i in range(10):
        (top / str(i)).mkdir()
    before = len(os.listdir("/proc/self/fd"))
    dirs = DirCache(root, capacity=3)
    try:
        for i in range(10):
            assert _same_directory(dirs.directory((str(i).encode(),)), top / str(i))
        assert len(os.listdir("/proc/self/fd")) - before <= 3
    finally:
        dirs.clear()
    assert len(os.listdir("/proc/self/fd")) == before


@pytest.mark.skipif(
    os.geteuid() != 0, reason="trusted.* xattrs (the ones a symlink can hold) need root"
)
def test_proc_path_sets_xattr_on_the_symlink_not_its_target(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "d").mkdir()
    victim = top.parent / "outside" / "victim"
    victim.write_bytes(b"")
    (top / "d" / "link").symlink_to(victim)
    fd, name = cache.parent_of(b"d/link")
    link = proc_path(fd, name)
    try:
        os.setxattr(link, b"trusted.cvm-test", b"on the link", follow_symlinks=False)
    except OSError as exc:
        if exc.errno == errno.ENOTSUP:
            pytest.skip("this filesystem has no trusted.* xattrs")
        raise
    assert os.getxattr(top / "d" / "link", b"trusted.cvm-test", follow_symlinks=False) == (
        b"on the link"
    )
    assert os.listxattr(victim) == []
    # lstat through the same path sees the symlink itself.
    assert os.path.islink(os.fsdecode(link))


def test_proc_path_reaches_the_resolved_directory(root: RootDir, cache: DirCache) -> None:
    top = Path(root.path)
    (top / "d").mkdir()
    (top / "d" / "f").write_bytes(b"content")
    fd, name = cache.parent_of(b"d/f")
    assert proc_path(fd, name) == b"/proc/self/fd/%d/f" % fd
    with open(proc_path(fd, name), "rb") as f:
        assert f.read() == b"content"
