"""Every change the receiver makes to its tree, each made safely.

All access goes through descriptors resolved by `beneath`, so nothing is
written outside the root or through a symlink. Nothing appears at a live name
until it is whole: files, symlinks and nodes are built under a temporary name
in the same directory and renamed over the live one.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat

from common.content_hash import FileDigest
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import split_relpath
from receiver.beneath import DirCache, RootDir, proc_path
from receiver.metadata import apply_metadata, metadata_matches, read_xattrs

_NEW_DIR_MODE = 0o700  # the real mode is applied in Finish, after the contents
_NEW_FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_TEMP_PREFIX = b".cvm-migrate."
_TEMP_SUFFIX = b".tmp"

_NODE_TYPES = {
    pb.ENTRY_KIND_CHAR_DEVICE: stat.S_IFCHR,
    pb.ENTRY_KIND_BLOCK_DEVICE: stat.S_IFBLK,
    pb.ENTRY_KIND_FIFO: stat.S_IFIFO,
}


def temp_name() -> bytes:
    """A fresh temporary name; short, so it fits beside a 255-byte live name."""
    return _TEMP_PREFIX + secrets.token_hex(8).encode() + _TEMP_SUFFIX


def is_temp_name(name: bytes) -> bool:
    return name.startswith(_TEMP_PREFIX) and name.endswith(_TEMP_SUFFIX)


def _lstat(dir_fd: int, name: bytes) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _is_zeros(data: bytes) -> bool:
    # Most data fails on its first or last byte, before the full comparison.
    return data[:1] == b"\0" and data[-1:] == b"\0" and data == bytes(len(data))


class PartialFile:
    """A file being received under a temporary name beside its live name."""

    def __init__(self, dir_fd: int, live_name: bytes, tmp_name: bytes) -> None:
        # The directory descriptor is our own: DirCache only lends its ones.
        self.dir_fd = os.dup(dir_fd)
        self.live_name = live_name
        self.tmp_name = tmp_name
        try:
            self.fd = os.open(tmp_name, _NEW_FILE_FLAGS, 0o600, dir_fd=self.dir_fd)
        except BaseException:
            os.close(self.dir_fd)
            raise
        self.digest = FileDigest()

    @property
    def written_to(self) -> int:
        """Every byte before this offset has been written (or is a hole)."""
        return self.digest.position

    def write(self, offset: int, data: bytes) -> None:
        """Write a run at `offset`; all-zero runs are left as holes."""
        self.digest.update_at(offset, data)
        if not _is_zeros(data):
            os.pwrite(self.fd, data, offset)

    def complete(self, size: int, expected_digest: bytes) -> bool:
        """Extend to `size` and check the whole content's hash."""
        self.digest.zero_fill_to(size)
        os.ftruncate(self.fd, size)
        return self.digest.digest() == expected_digest

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def discard(self) -> None:
        """Close and remove the temporary file."""
        self.close()
        try:
            os.unlink(self.tmp_name, dir_fd=self.dir_fd)
        except FileNotFoundError:
            pass
        finally:
            self.release_directory()

    def release_directory(self) -> None:
        if self.dir_fd >= 0:
            os.close(self.dir_fd)
            self.dir_fd = -1


class TreeWriter:
    """Changes to the tree under one root; one per thread (it owns a DirCache)."""

    def __init__(self, root: RootDir, *, as_root: bool) -> None:
        self.root = root
        self.as_root = as_root
        self._dirs = DirCache(root)

    def close(self) -> None:
        self._dirs.clear()

    # -- directories ------------------------------------------------------------

    def ensure_directory(self, path: bytes) -> None:
        """A directory at `path`, replacing whatever else is there."""
        if not split_relpath(path):
            return  # the root exists by definition
        dir_fd, name = self._dirs.parent_of(path)
        st = _lstat(dir_fd, name)
        if st is not None and stat.S_ISDIR(st.st_mode):
            return
        if st is not None:
            self._remove(dir_fd, name, st)
        os.mkdir(name, _NEW_DIR_MODE, dir_fd=dir_fd)

    def apply_directory_metadata(self, entry: pb.Entry) -> None:
        parts = tuple(split_relpath(entry.path))
        fd = os.open(
            parts[-1] if parts else ".",
            os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC,
            dir_fd=self._dirs.directory(parts[:-1]),
        )
        try:
            apply_metadata(fd, entry, is_symlink=False, as_root=self.as_root)
        finally:
            os.close(fd)

    # -- symlinks, devices, FIFOs -----------------------------------------------

    def place_special(self, entry: pb.Entry) -> bool:
        """Create or update a symlink, device or FIFO; False when already identical."""
        dir_fd, name = self._dirs.parent_of(entry.path)
        st = _lstat(dir_fd, name)
        if st is not None and self._special_matches(dir_fd, name, st, entry):
            return False
        tmp = temp_name()
        if entry.kind == pb.ENTRY_KIND_SYMLINK:
            os.symlink(entry.link_target, tmp, dir_fd=dir_fd)
        else:
            os.mknod(tmp, _NODE_TYPES[entry.kind] | 0o600, entry.rdev, dir_fd=dir_fd)
        try:
            apply_metadata(
                proc_path(dir_fd, tmp),
                entry,
                is_symlink=entry.kind == pb.ENTRY_KIND_SYMLINK,
                as_root=self.as_root,
            )
            self._rename_over(dir_fd, tmp, name, st)
        except BaseException:
            os.unlink(tmp, dir_fd=dir_fd)
            raise
        return True

    def _special_matches(
        self, dir_fd: int, name: bytes, st: os.stat_result, entry: pb.Entry
    ) -> bool:
        if entry.kind == pb.ENTRY_KIND_SYMLINK:
            if (
                not stat.S_ISLNK(st.st_mode)
                or os.readlink(name, dir_fd=dir_fd) != entry.link_target
            ):
                return False
        elif stat.S_IFMT(st.st_mode) != _NODE_TYPES[entry.kind] or st.st_rdev != entry.rdev:
            return False
        return metadata_matches(st, read_xattrs(proc_path(dir_fd, name)), entry)

    # -- regular files ----------------------------------------------------------

    def file_is_current(self, entry: pb.Entry) -> bool:
        """rsync's quick check: a regular file of the same size and mtime.

        When it passes, any difference in owner, mode or xattrs is applied on
        the spot, so the file needs no content.
        """
        dir_fd, name = self._dirs.parent_of(entry.path)
        st = _lstat(dir_fd, name)
        if st is None or not stat.S_ISREG(st.st_mode):
            return False
        if st.st_size != entry.size or st.st_mtime_ns != entry.mtime_ns:
            return False
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
        try:
            if not metadata_matches(os.fstat(fd), read_xattrs(fd), entry):
                apply_metadata(fd, entry, is_symlink=False, as_root=self.as_root)
        finally:
            os.close(fd)
        return True

    def create_partial(self, path: bytes, tmp_name: bytes) -> PartialFile:
        dir_fd, name = self._dirs.parent_of(path)
        return PartialFile(dir_fd, name, tmp_name)

    def commit(self, partial: PartialFile, entry: pb.Entry) -> None:
        """Apply metadata and close; the caller syncs, then calls `publish`."""
        apply_metadata(partial.fd, entry, is_symlink=False, as_root=self.as_root)
        partial.close()

    def publish(self, partial: PartialFile) -> None:
        """Rename a committed, synced partial file to its live name."""
        try:
            st = _lstat(partial.dir_fd, partial.live_name)
            self._rename_over(partial.dir_fd, partial.tmp_name, partial.live_name, st)
        finally:
            partial.release_directory()

    # -- hardlinks --------------------------------------------------------------

    def link(self, path: bytes, existing: bytes) -> bool:
        """Make `path` another name of the file at `existing`; False if it already is."""
        src_dir, src_name = self._dirs.parent_of(existing)
        src_dir = os.dup(src_dir)
        try:
            src_st = _lstat(src_dir, src_name)
            if src_st is None or not stat.S_ISREG(src_st.st_mode):
                raise FileNotFoundError(errno.ENOENT, "hardlink target is not a regular file")
            dir_fd, name = self._dirs.parent_of(path)
            st = _lstat(dir_fd, name)
            if st is not None and (st.st_dev, st.st_ino) == (src_st.st_dev, src_st.st_ino):
                return False
            tmp = temp_name()
            os.link(src_name, tmp, src_dir_fd=src_dir, dst_dir_fd=dir_fd, follow_symlinks=False)
            try:
                self._rename_over(dir_fd, tmp, name, st)
            except BaseException:
                os.unlink(tmp, dir_fd=dir_fd)
                raise
            return True
        finally:
            os.close(src_dir)

    # -- replacing --------------------------------------------------------------

    def _rename_over(
        self, dir_fd: int, tmp: bytes, name: bytes, live: os.stat_result | None
    ) -> None:
        # rename() replaces any non-directory atomically; a directory in the
        # way (the source changed its type) has to go first.
        if live is not None and stat.S_ISDIR(live.st_mode):
            self._remove(dir_fd, name, live)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)

    def _remove(self, dir_fd: int, name: bytes, st: os.stat_result) -> None:
        if stat.S_ISDIR(st.st_mode):
            remove_tree(dir_fd, name)
            self.root.layout_changed()
        else:
            os.unlink(name, dir_fd=dir_fd)


def remove_tree(dir_fd: int, name: bytes) -> None:
    """Remove `name` and everything below it, never following a symlink."""
    try:
        os.unlink(name, dir_fd=dir_fd)
        return
    except IsADirectoryError:
        pass
    fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    try:
        for child in os.listdir(fd):
            remove_tree(fd, os.fsencode(child))
    finally:
        os.close(fd)
    os.rmdir(name, dir_fd=dir_fd)
