"""A migration session on the receiver: planning entries and finishing.

Planning decides per entry what the sender must do and makes every change
that needs no content (directories, symlinks, devices, FIFOs, metadata of
files already current). Finishing creates hardlinks and then applies the
metadata of directories, deepest first, so nothing written later bumps a
directory's mtime.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from common.block_delta import block_hashes, block_size_for
from common.excludes import ExcludeRules
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display, split_relpath
from receiver.beneath import DirCache, RootDir
from receiver.durability import SharedSync
from receiver.faults import BadRequest, fatal_for_session
from receiver.journal import Journal, Partial, Statement
from receiver.mirror import extraneous, remove_unprotected
from receiver.stats import ReceiverStats
from receiver.tree import TreeWriter, temp_name
from receiver.verify import Checker, extra_differences

log = logging.getLogger(__name__)

# Files planned for sending kept in memory for their Transfer stream, so
# opening each needs no journal query (two per file otherwise); the journal
# answers for the rest. About 0.5 KiB each.
_PLANNED_KEPT = 16384

# Bounds on what one message may carry, so memory stays flat whatever a
# sender sends.
MAX_ENTRIES_PER_BATCH = 4096
MAX_LINK_TARGET = 4095  # PATH_MAX - 1
MAX_XATTR_BYTES = 1 << 20  # per entry, names and values together; Linux allows 64 KiB per value
XATTR_NAME_MAX = 255
# The journal stores ids as SQLite INTEGER, signed 64-bit.
MAX_ENTRY_ID = 2**63 - 1
# ext4's limit with 4 KiB blocks. Holes are hashed as zeros (about 13 GB/s),
# so a bound on the size is a bound on the time a file's hash can take.
MAX_FILE_BYTES = 16 << 40

_SPECIAL_KINDS = {
    pb.ENTRY_KIND_SYMLINK,
    pb.ENTRY_KIND_CHAR_DEVICE,
    pb.ENTRY_KIND_BLOCK_DEVICE,
    pb.ENTRY_KIND_FIFO,
}


@dataclass(frozen=True)
class SessionOptions:
    """What the sender asked for in Hello."""

    rules: ExcludeRules
    mirror_deletions: bool = False
    compare_content: bool = False


@dataclass(frozen=True)
class PlannedFile:
    """What a Transfer stream needs to open a file the plan asked for."""

    entry: pb.Entry
    delta: bool
    partial: Partial


@dataclass
class SessionProgress:
    entries_planned: int = 0
    files_to_send: int = 0
    bytes_to_send: int = 0
    files_committed: int = 0
    bytes_durable: int = 0
    failed: int = 0
    finished: bool = False


class Session:
    def __init__(
        self,
        session_id: str,
        root: RootDir,
        journal: Journal,
        *,
        filesystem: SharedSync,
        options: SessionOptions,
        stats: ReceiverStats,
        as_root: bool,
        clock_ns: Callable[[], int],
    ) -> None:
        self.id = session_id
        self.options = options
        self.stats = stats
        self.root = root
        # Syncs the root's filesystem, shared with every stream and session.
        self.filesystem = filesystem
        self.journal = journal
        self.as_root = as_root
        self._clock_ns = clock_ns
        self.progress = SessionProgress()
        self._users = 0
        self._planned: OrderedDict[int, PlannedFile] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def in_use(self) -> bool:
        return self._users > 0

    @contextlib.contextmanager
    def used(self) -> Iterator[TreeWriter]:
        """A writer for one stream or call; the session is in use meanwhile."""
        with self._lock:
            self._users += 1
        writer = self.writer()
        try:
            yield writer
        finally:
            writer.close()
            with self._lock:
                self._users -= 1

    def writer(self) -> TreeWriter:
        return TreeWriter(self.root, as_root=self.as_root, on_written=self._count_written)

    def _count_written(self, size: int) -> None:
        self.stats.count(written_bytes=size)

    def warn(self, message: str) -> None:
        """Log an entry that failed here; the sender hears of it separately."""
        log.warning("session %s: %s", self.id, message)
        self.stats.count(files_failed=1)
        with self._lock:
            self.progress.failed += 1

    def record_progress(self, *, committed: int = 0, durable_bytes: int = 0) -> None:
        with self._lock:
            self.progress.files_committed += committed
            self.progress.bytes_durable += durable_bytes

    # -- planning ---------------------------------------------------------------

    def plan(self, entries: Sequence[pb.Entry], writer: TreeWriter) -> list[pb.Decision]:
        if len(entries) > MAX_ENTRIES_PER_BATCH:
            raise BadRequest(f"{len(entries)} entries in one batch, over {MAX_ENTRIES_PER_BATCH}")
        # A batch is refused whole: nothing of it is applied if one entry is bad.
        for entry in entries:
            validate_entry(entry)
        statements: list[Statement] = []
        # One query for the batch's files, not one per file.
        partials = self.journal.partials_of(
            [e.path for e in entries if e.kind == pb.ENTRY_KIND_FILE]
        )
        decisions = [self._decide(entry, writer, statements, partials) for entry in entries]
        if self.options.mirror_deletions:
            statements += [Journal.name_path(self.id, e.path) for e in entries]
        # One transaction per batch; a file's temporary name is in the journal
        # before the sender is told to send it.
        self.journal.transaction(statements)
        sends = [
            (e, d)
            for e, d in zip(entries, decisions, strict=True)
            if d.action in (pb.ACTION_SEND, pb.ACTION_DELTA)
        ]
        skips = sum(d.action == pb.ACTION_SKIP for d in decisions)
        self.stats.count(entries_planned=len(entries), files_skipped=skips)
        to_send = sum(e.size - d.resume_offset for e, d in sends)
        self.stats.planned(len(sends), to_send)
        with self._lock:
            self.progress.bytes_to_send += to_send
            self.progress.entries_planned += len(entries)
            self.progress.files_to_send += len(sends)
        return decisions

    def _decide(
        self,
        entry: pb.Entry,
        writer: TreeWriter,
        statements: list[Statement],
        partials: dict[bytes, Partial],
    ) -> pb.Decision:
        try:
            if entry.kind == pb.ENTRY_KIND_DIRECTORY:
                writer.ensure_directory(entry.path)
                statements.append(Journal.add_entry(self.id, entry))
                return _decision(entry, pb.ACTION_DONE)
            if entry.kind in _SPECIAL_KINDS:
                writer.place_special(entry)
                return _decision(entry, pb.ACTION_DONE)
            if entry.kind == pb.ENTRY_KIND_HARDLINK:
                statements.append(Journal.add_entry(self.id, entry))
                return _decision(entry, pb.ACTION_DONE)
            return self._plan_file(entry, writer, statements, partials.get(entry.path))
        except OSError as exc:
            fatal = fatal_for_session(exc, display(entry.path))
            if fatal is not None:
                raise fatal from exc
            message = f"{display(entry.path)}: {exc.strerror}"
            self.warn(message)
            return pb.Decision(id=entry.id, action=pb.ACTION_FAILED, error=message)

    def _plan_file(
        self,
        entry: pb.Entry,
        writer: TreeWriter,
        statements: list[Statement],
        partial: Partial | None,
    ) -> pb.Decision:
        """Skip a current file; otherwise resume it (from its `partial` file, if any), or
        start it, by delta if one is held."""
        if not self.options.compare_content and writer.file_is_current(entry):
            return _decision(entry, pb.ACTION_SKIP)
        decision = _decision(entry, pb.ACTION_SEND)
        if partial is not None and self._resumable(partial, entry, writer):
            decision.resume_offset = partial.durable_offset
        else:
            if partial is not None:
                writer.remove_temp(entry.path, partial.temp_name)
            partial = Partial.fresh(entry, temp_name())
            statements.append(Journal.put_partial(partial))
        base = writer.live_file(entry.path) if entry.size else None
        if base is not None:
            try:
                _offer_delta(decision, base, entry.size)
            finally:
                os.close(base)
        delta = decision.action == pb.ACTION_DELTA
        statements.append(Journal.add_entry(self.id, entry, delta=delta))
        self._remember(PlannedFile(entry, delta, partial))
        return decision

    # -- files planned for sending ------------------------------------------------

    def _remember(self, planned: PlannedFile) -> None:
        with self._lock:
            self._planned[planned.entry.id] = planned
            if len(self._planned) > _PLANNED_KEPT:
                self._planned.popitem(last=False)

    def planned_file(self, file_id: int) -> PlannedFile | None:
        """A file planned for sending and not yet taken: from memory while recent
        (the common case: content follows its plan closely), else the journal."""
        with self._lock:
            planned = self._planned.pop(file_id, None)
        if planned is not None:
            return planned
        found = self.journal.pending_file(self.id, file_id)
        if found is None:
            return None
        entry, delta = found
        partial = self.journal.partial(entry.path)
        return None if partial is None else PlannedFile(entry, delta, partial)

    @staticmethod
    def _resumable(partial: Partial, entry: pb.Entry, writer: TreeWriter) -> bool:
        if not partial.started_from(entry):
            return False  # the source changed since: its durable prefix is stale
        held = writer.temp_size(entry.path, partial.temp_name)
        return held is not None and held >= partial.durable_offset

    # -- verifying --------------------------------------------------------------

    def verify(self, entries: Sequence[pb.Entry], checker: Checker) -> list[pb.Difference]:
        """The differences between these entries and the tree; remembers their paths."""
        if len(entries) > MAX_ENTRIES_PER_BATCH:
            raise BadRequest(f"{len(entries)} entries in one batch, over {MAX_ENTRIES_PER_BATCH}")
        for entry in entries:
            validate_entry(entry)
        self.journal.transaction(Journal.name_path(self.id, e.path) for e in entries)
        return [d for entry in entries for d in checker.differences(entry)]

    def extras(self, dirs: DirCache) -> Iterator[pb.Difference]:
        """What the tree holds and no verified entry named, excluded paths aside."""
        named = functools.partial(self.journal.is_named, self.id)
        return extra_differences(extraneous(dirs, named, self.options.rules))

    # -- finishing --------------------------------------------------------------

    def finish(self, writer: TreeWriter) -> pb.FinishResponse:
        """Hardlinks, then directory metadata; reports only what failed here.

        Failures of earlier phases already reached the sender in decisions
        and acknowledgements.
        """
        response = pb.FinishResponse()
        self._remove_partials(writer)
        if self.options.mirror_deletions:
            response.deleted = self._delete_extraneous(writer, response)
        response.hardlinks = self._apply_each(
            pb.ENTRY_KIND_HARDLINK, False, lambda e: writer.link(e.path, e.link_target), response
        )
        response.directories = self._apply_each(
            pb.ENTRY_KIND_DIRECTORY, True, writer.apply_directory_metadata, response
        )
        self.journal.finish_session(self.id, self._clock_ns())
        self.stats.count(deleted=response.deleted)
        self.stats.session_closed()
        with self._lock:
            self.progress.finished = True
        return response

    def _remove_partials(self, writer: TreeWriter) -> None:
        """A finished session leaves no temporary file: what was not completed goes."""
        dropped = []
        for partial in self.journal.partials():
            writer.remove_temp(partial.path, partial.temp_name)
            dropped.append(Journal.drop_partial(partial.path))
        self.journal.transaction(dropped)

    def _delete_extraneous(self, writer: TreeWriter, response: pb.FinishResponse) -> int:
        deleted = 0
        dirs = writer.dirs
        named = functools.partial(self.journal.is_named, self.id)
        for path, is_dir in extraneous(dirs, named, self.options.rules):
            try:
                deleted += remove_unprotected(dirs, path, is_dir, self.options.rules)
            except OSError as exc:
                fatal = fatal_for_session(exc, display(path))
                if fatal is not None:
                    raise fatal from exc
                message = f"cannot delete {display(path)}: {exc.strerror}"
                self.warn(message)
                response.warnings.append(message)
                response.failed += 1
            if is_dir:
                self.root.layout_changed()
        return deleted

    def _apply_each(
        self,
        kind: int,
        deepest_first: bool,
        apply: Callable[[pb.Entry], object],
        response: pb.FinishResponse,
    ) -> int:
        done = 0
        for entry in self.journal.pending(self.id, kind, deepest_first=deepest_first):
            try:
                apply(entry)
                done += 1
            except OSError as exc:
                fatal = fatal_for_session(exc, display(entry.path))
                if fatal is not None:
                    raise fatal from exc
                message = f"{display(entry.path)}: {exc.strerror}"
                self.warn(message)
                response.warnings.append(message)
                response.failed += 1
        return done


def _decision(entry: pb.Entry, action: pb.Action) -> pb.Decision:
    return pb.Decision(id=entry.id, action=action)


def _offer_delta(decision: pb.Decision, base: int, size: int) -> None:
    """Turn a send into a delta against the version held, if it has content."""
    base_size = os.fstat(base).st_size
    if not base_size:
        return
    block_size = block_size_for(max(base_size, size))
    decision.action = pb.ACTION_DELTA
    decision.block_size = block_size
    decision.base_size = base_size
    decision.block_hashes.extend(block_hashes(base, base_size, block_size))


def validate_entry(entry: pb.Entry) -> None:
    """Refuse an entry that breaks the wire contract before touching anything."""
    parts = split_relpath(entry.path)  # raises InvalidPath
    if entry.id > MAX_ENTRY_ID:
        raise BadRequest(f"{display(entry.path)}: id {entry.id} is over {MAX_ENTRY_ID}")
    if entry.size > MAX_FILE_BYTES:
        raise BadRequest(f"{display(entry.path)}: {entry.size} bytes is over {MAX_FILE_BYTES}")
    if entry.kind not in pb.EntryKind.values() or entry.kind == pb.ENTRY_KIND_UNSPECIFIED:
        raise BadRequest(f"{display(entry.path)}: unknown entry kind {entry.kind}")
    if not parts and entry.kind != pb.ENTRY_KIND_DIRECTORY:
        raise BadRequest("the root can only be a directory")
    if entry.mode & ~0o7777:
        raise BadRequest(
            f"{display(entry.path)}: mode {entry.mode:o} has more than permission bits"
        )
    if entry.kind == pb.ENTRY_KIND_SYMLINK:
        target = entry.link_target
        if not target or b"\0" in target or len(target) > MAX_LINK_TARGET:
            raise BadRequest(f"{display(entry.path)}: invalid symlink target")
    if entry.kind == pb.ENTRY_KIND_HARDLINK and not split_relpath(entry.link_target):
        raise BadRequest(f"{display(entry.path)}: a hardlink to the root")
    for xattr in entry.xattrs:
        if not xattr.name or b"\0" in xattr.name or len(xattr.name) > XATTR_NAME_MAX:
            raise BadRequest(f"{display(entry.path)}: invalid extended attribute name")
    if sum(len(x.name) + len(x.value) for x in entry.xattrs) > MAX_XATTR_BYTES:
        raise BadRequest(f"{display(entry.path)}: extended attributes over {MAX_XATTR_BYTES} bytes")
