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
from collections.abc import Callable

from common.content_hash import FileDigest, file_digest
from common.extents import read_extents
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import split_relpath
from receiver.beneath import DirCache, NotADirectoryOnPath, RootDir, proc_path
from receiver.durability import start_writeback
from receiver.metadata import apply_metadata, metadata_matches, read_xattrs

_NEW_DIR_MODE = 0o700  # the real mode is applied in Finish, after the contents
# Read and write: a resumed file's durable prefix is read back to hash it.
_OPEN_TEMP_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO (or a device) found where a file was expected
# must not wait for a writer; on regular files it changes nothing.
READ_ONLY_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
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


# Writes at least this big start their writeback at once; smaller ones (small
# files) are left to the group's syncfs rather than cost a syscall each.
_EARLY_WRITEBACK_BYTES = 256 << 10

# Runs read back from disk (a resumed prefix, a delta's unchanged blocks).
_READ_STEP = 1 << 20


class PartialFile:
    """A file being received under a temporary name beside its live name.

    Everything before `written_to` is in the temporary file: content sent,
    holes, or (for a delta) content taken from `base`, the live version.
    The whole-file hash is computed on the way, so `complete` can check it.
    """

    def __init__(
        self,
        dir_fd: int,
        live_name: bytes,
        tmp_name: bytes,
        *,
        resume_from: int = 0,
        base: int | None = None,
        on_written: Callable[[int], None] = lambda size: None,
    ) -> None:
        # The directory descriptor is our own: DirCache only lends its ones.
        self.dir_fd = os.dup(dir_fd)
        self.live_name = live_name
        self.tmp_name = tmp_name
        self.base = base
        self._on_written = on_written
        self.fd = -1
        self.digest = FileDigest()
        try:
            flags = _OPEN_TEMP_FLAGS | (0 if resume_from else os.O_TRUNC)
            self.fd = os.open(tmp_name, flags, 0o600, dir_fd=self.dir_fd)
            if resume_from:
                self._resume(resume_from)
        except BaseException:
            self.discard()
            raise

    def _resume(self, offset: int) -> None:
        """Keep the durable prefix: drop what lies past it, hash what lies before."""
        os.ftruncate(self.fd, offset)
        for position, data in read_extents(self.fd, 0, offset, _READ_STEP):
            self.digest.update_at(position, data)
        self.digest.zero_fill_to(offset)

    @property
    def written_to(self) -> int:
        return self.digest.position

    def write(self, offset: int, data: bytes) -> None:
        """Write a run at `offset`; all-zero runs are left as holes."""
        self._take_from_base(offset)
        self.digest.update_at(offset, data)
        if not _is_zeros(data):
            os.pwrite(self.fd, data, offset)
            if len(data) >= _EARLY_WRITEBACK_BYTES:
                start_writeback(self.fd, offset, len(data))
            self._on_written(len(data))

    def restart(self) -> None:
        """The source changed while read: start again, empty, without a base."""
        os.ftruncate(self.fd, 0)
        self.digest = FileDigest()
        if self.base is not None:
            os.close(self.base)
            self.base = None

    def complete(self, size: int, expected_digest: bytes) -> bool:
        """Fill in to `size` and check the whole content's hash."""
        self._take_from_base(size)
        self.digest.zero_fill_to(size)
        # Only a tail hole needs the file extended: a truncate to the size it
        # already has would still wait for the writeback of its last page.
        if os.fstat(self.fd).st_size != size:
            os.ftruncate(self.fd, size)
        return self.digest.digest() == expected_digest

    def _take_from_base(self, end: int) -> None:
        """Copy the base's content in [written_to, end): the blocks not sent."""
        if self.base is None or end <= self.written_to:
            return
        for position, data in read_extents(self.base, self.written_to, end, _READ_STEP):
            self.digest.update_at(position, data)
            if not _is_zeros(data):
                # In the kernel, and a reflink where the filesystem can.
                os.copy_file_range(self.base, self.fd, len(data), position, position)
                start_writeback(self.fd, position, len(data))
                self._on_written(len(data))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
        if self.base is not None:
            os.close(self.base)
            self.base = None

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

    def __init__(
        self,
        root: RootDir,
        *,
        as_root: bool,
        on_written: Callable[[int], None] = lambda size: None,
    ) -> None:
        self.root = root
        self.as_root = as_root
        self._on_written = on_written
        self._dirs = DirCache(root)

    @property
    def dirs(self) -> DirCache:
        return self._dirs

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
        fd = os.open(name, READ_ONLY_FLAGS, dir_fd=dir_fd)
        try:
            held = os.fstat(fd)
            if not stat.S_ISREG(held.st_mode):
                return False  # replaced since the lstat above
            if not metadata_matches(held, read_xattrs(fd), entry):
                apply_metadata(fd, entry, is_symlink=False, as_root=self.as_root)
        finally:
            os.close(fd)
        return True

    def live_file(self, path: bytes) -> int | None:
        """A read-only descriptor of the regular file at `path`, if there is one."""
        dir_fd, name = self._dirs.parent_of(path)
        try:
            fd = os.open(name, READ_ONLY_FLAGS, dir_fd=dir_fd)
        except (FileNotFoundError, OSError) as exc:
            if isinstance(exc, FileNotFoundError) or exc.errno == errno.ELOOP:
                return None
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)  # a directory, device or FIFO (never opened for reading)
            return None
        return fd

    def open_partial(
        self, path: bytes, tmp_name: bytes, *, resume_from: int, with_base: bool
    ) -> PartialFile:
        """The temporary file for `path`, fresh or resumed; with the live version as base."""
        base = self.live_file(path) if with_base else None
        dir_fd, name = self._dirs.parent_of(path)
        return PartialFile(
            dir_fd, name, tmp_name, resume_from=resume_from, base=base, on_written=self._on_written
        )

    def temp_size(self, path: bytes, tmp_name: bytes) -> int | None:
        """The size of a temporary file beside `path`, None if it is not there."""
        try:
            dir_fd, _ = self._dirs.parent_of(path)
            st = _lstat(dir_fd, tmp_name)
        except NotADirectoryOnPath:
            return None
        return st.st_size if st is not None and stat.S_ISREG(st.st_mode) else None

    def remove_temp(self, path: bytes, tmp_name: bytes) -> None:
        """Remove a temporary file left beside `path`; gone already is fine."""
        try:
            dir_fd, _ = self._dirs.parent_of(path)
            os.unlink(tmp_name, dir_fd=dir_fd)
        except (FileNotFoundError, NotADirectoryOnPath):
            pass

    def keep_live(self, path: bytes, entry: pb.Entry, expected_digest: bytes) -> bool:
        """Apply the entry's metadata to the live file if its content hashes as expected."""
        fd = self.live_file(path)
        if fd is None:
            return False
        try:
            if file_digest(fd, os.fstat(fd).st_size) != expected_digest:
                return False
            apply_metadata(fd, entry, is_symlink=False, as_root=self.as_root)
            return True
        finally:
            os.close(fd)

    def commit(self, partial: PartialFile, entry: pb.Entry) -> None:
        """Apply metadata and close; the caller syncs, then calls `publish`.

        Its directory is let go too: thousands of files may wait for the
        group's sync, and a descriptor each would run into RLIMIT_NOFILE.
        """
        apply_metadata(partial.fd, entry, is_symlink=False, as_root=self.as_root)
        partial.close()
        partial.release_directory()

    def publish(self, path: bytes, tmp_name: bytes) -> None:
        """Rename a committed, synced temporary file to its live name `path`.

        The directory is found again, beneath the root as ever; one replaced
        since (the tree changed under us) no longer holds the temporary file,
        and the rename fails rather than land anywhere else.
        """
        dir_fd, name = self._dirs.parent_of(path)
        self._rename_over(dir_fd, tmp_name, name, _lstat(dir_fd, name))

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
