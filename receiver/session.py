"""A migration session on the receiver: planning entries and finishing.

Planning decides per entry what the sender must do and makes every change
that needs no content (directories, symlinks, devices, FIFOs, metadata of
files already current). Finishing creates hardlinks and then applies the
metadata of directories, deepest first, so nothing written later bumps a
directory's mtime.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display, split_relpath
from receiver.beneath import RootDir
from receiver.faults import BadRequest, fatal_for_session
from receiver.journal import FAILED, Journal
from receiver.tree import TreeWriter, temp_name

log = logging.getLogger(__name__)

# Bounds on what one message may carry, so memory stays flat whatever a
# sender sends.
MAX_ENTRIES_PER_BATCH = 4096
MAX_LINK_TARGET = 4095  # PATH_MAX - 1
MAX_XATTR_BYTES = 1 << 20  # per entry, names and values together; Linux allows 64 KiB per value

_SPECIAL_KINDS = {
    pb.ENTRY_KIND_SYMLINK,
    pb.ENTRY_KIND_CHAR_DEVICE,
    pb.ENTRY_KIND_BLOCK_DEVICE,
    pb.ENTRY_KIND_FIFO,
}


@dataclass
class SessionProgress:
    entries_planned: int = 0
    files_to_send: int = 0
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
        as_root: bool,
        clock_ns: Callable[[], int],
    ) -> None:
        self.id = session_id
        self.root = root
        self.journal = journal
        self.as_root = as_root
        self._clock_ns = clock_ns
        self.progress = SessionProgress()
        self._lock = threading.Lock()

    def writer(self) -> TreeWriter:
        return TreeWriter(self.root, as_root=self.as_root)

    def warn(self, message: str) -> None:
        """Log an entry that failed here; the sender hears of it separately."""
        log.warning("session %s: %s", self.id, message)
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
        decisions = []
        deferred: list[tuple[pb.Entry, bytes | None]] = []
        for entry in entries:
            decision, record = self._decide(entry, writer)
            decisions.append(decision)
            if record is not None:
                deferred.append(record)
        # One transaction per batch; the files' temporary names are on disk
        # in the journal before the sender is told to send them.
        self.journal.add_entries(self.id, deferred)
        sends = sum(d.action == pb.ACTION_SEND for d in decisions)
        with self._lock:
            self.progress.entries_planned += len(entries)
            self.progress.files_to_send += sends
        return decisions

    def _decide(
        self, entry: pb.Entry, writer: TreeWriter
    ) -> tuple[pb.Decision, tuple[pb.Entry, bytes | None] | None]:
        _validate(entry)
        try:
            if entry.kind == pb.ENTRY_KIND_DIRECTORY:
                writer.ensure_directory(entry.path)
                return _decision(entry, pb.ACTION_DONE), (entry, None)
            if entry.kind in _SPECIAL_KINDS:
                writer.place_special(entry)
                return _decision(entry, pb.ACTION_DONE), None
            if entry.kind == pb.ENTRY_KIND_HARDLINK:
                return _decision(entry, pb.ACTION_DONE), (entry, None)
            if writer.file_is_current(entry):
                return _decision(entry, pb.ACTION_SKIP), None
            return _decision(entry, pb.ACTION_SEND), (entry, temp_name())
        except OSError as exc:
            fatal = fatal_for_session(exc, display(entry.path))
            if fatal is not None:
                raise fatal from exc
            message = f"{display(entry.path)}: {exc.strerror}"
            self.warn(message)
            return pb.Decision(id=entry.id, action=pb.ACTION_FAILED, error=message), None

    # -- finishing --------------------------------------------------------------

    def finish(self, writer: TreeWriter) -> pb.FinishResponse:
        """Hardlinks, then directory metadata; reports only what failed here.

        Failures of earlier phases already reached the sender in decisions
        and acknowledgements.
        """
        response = pb.FinishResponse()
        response.hardlinks = self._apply_each(
            pb.ENTRY_KIND_HARDLINK, False, lambda e: writer.link(e.path, e.link_target), response
        )
        response.directories = self._apply_each(
            pb.ENTRY_KIND_DIRECTORY, True, writer.apply_directory_metadata, response
        )
        self.journal.finish_session(self.id, self._clock_ns())
        with self._lock:
            self.progress.finished = True
        return response

    def _apply_each(
        self,
        kind: int,
        deepest_first: bool,
        apply: Callable[[pb.Entry], object],
        response: pb.FinishResponse,
    ) -> int:
        done = 0
        failed = []
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
                failed.append((entry.id, FAILED))
        self.journal.set_states(self.id, failed)
        return done


def _decision(entry: pb.Entry, action: pb.Action) -> pb.Decision:
    return pb.Decision(id=entry.id, action=action)


def _validate(entry: pb.Entry) -> None:
    """Refuse an entry that breaks the wire contract before touching anything."""
    parts = split_relpath(entry.path)  # raises InvalidPath
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
    if sum(len(x.name) + len(x.value) for x in entry.xattrs) > MAX_XATTR_BYTES:
        raise BadRequest(f"{display(entry.path)}: extended attributes over {MAX_XATTR_BYTES} bytes")
