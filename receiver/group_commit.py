"""Committing a sealed sync group: durable, published, journaled, acknowledged.

A group is sealed by the stream that wrote it and committed by another
thread while the stream writes the next one (`receiver.transfer`), so a
sealed group carries everything its commit needs and shares nothing with
the stream but the files it hands over for good.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from receiver.faults import fatal_for_session
from receiver.journal import COMMITTED, FAILED, Journal, Statement
from receiver.session import Session
from receiver.tree import PartialFile, TreeWriter


@dataclass
class IncomingFile:
    """A file on its way in: its planned entry and its temporary file."""

    entry: pb.Entry
    partial: PartialFile
    # How far the session's progress has counted this file, in file offsets.
    # Only the committing thread counts.
    counted: int = 0

    def progress(self, to: int) -> int:
        """Bytes of progress since last counted, counting up to `to`."""
        delta, self.counted = to - self.counted, to
        return delta


@dataclass
class CommitBatch:
    """What one sync group commits; once sealed, owned by whoever holds it.

    Files still open are listed with the offset written when the group was
    sealed: a sync after sealing makes at least that much durable.
    """

    to_publish: list[IncomingFile] = field(default_factory=list)  # complete, closed
    kept: list[IncomingFile] = field(default_factory=list)  # unchanged: the live file stays
    statements: list[Statement] = field(default_factory=list)  # journal writes for the sync
    acks: list[pb.FileAck] = field(default_factory=list)  # failures to tell the sender
    # Filled in when sealed:
    still_open: list[tuple[IncomingFile, int]] = field(default_factory=list)
    raw_received: int = 0  # on the stream, up to the seal

    def release(self) -> None:
        """Let go of the files without publishing them: they resume next time."""
        for incoming in self.to_publish:
            incoming.partial.close()
            incoming.partial.release_directory()
        self.to_publish = []


def commit(session: Session, writer: TreeWriter, group: CommitBatch) -> pb.TransferResponse:
    """Make the group durable, rename its files live, journal it; its acknowledgement."""
    started = time.perf_counter()
    session.filesystem.sync()
    published = _publish(session, writer, group)
    if published:
        session.filesystem.sync()  # the renames themselves
    done = [*published, *group.kept]
    statements = group.statements
    for incoming in done:
        statements.append(Journal.set_state(session.id, incoming.entry.id, COMMITTED))
        statements.append(Journal.drop_partial(incoming.entry.path))
    statements += [Journal.set_durable(i.entry.path, offset) for i, offset in group.still_open]
    session.journal.transaction(statements)
    acks = group.acks
    acks += [
        pb.FileAck(file_id=i.entry.id, durable_offset=i.entry.size, committed=True) for i in done
    ]
    acks += [
        pb.FileAck(file_id=i.entry.id, durable_offset=offset) for i, offset in group.still_open
    ]
    progressed = sum(i.progress(i.entry.size) for i in done)
    progressed += sum(i.progress(offset) for i, offset in group.still_open)
    stats = session.stats
    stats.synced(time.perf_counter() - started)
    stats.count(files_committed=len(done))
    stats.progressed(len(done), progressed)
    session.record_progress(committed=len(done), durable_bytes=progressed)
    return pb.TransferResponse(acks=acks, raw_bytes_durable=group.raw_received)


def _publish(session: Session, writer: TreeWriter, group: CommitBatch) -> list[IncomingFile]:
    published = []
    for incoming in group.to_publish:
        try:
            writer.publish(incoming.entry.path, incoming.partial.tmp_name)
            published.append(incoming)
        except OSError as exc:
            path = display(incoming.entry.path)
            fatal = fatal_for_session(exc, path)
            if fatal is not None:
                raise fatal from exc
            record_failure(session, incoming.entry, f"{path}: {exc.strerror}", group)
    group.to_publish = []
    return published


def record_failure(session: Session, entry: pb.Entry, message: str, group: CommitBatch) -> None:
    """The file failed here: warn now, tell the sender and journal it with `group`'s sync."""
    session.warn(message)
    group.acks.append(pb.FileAck(file_id=entry.id, error=message))
    # Its partial row stays: Finish removes the temporary file with the rest.
    group.statements.append(Journal.set_state(session.id, entry.id, FAILED))
