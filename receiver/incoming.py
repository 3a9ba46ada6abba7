"""One Transfer stream on the receiver: frames in, durable acknowledgements out.

Pieces are checked against their hashes and written to temporary files; a
file whose content is complete is checked against its whole-file hash and
gets its metadata. Once per sync group the group is sealed: its batch is
handed over whole to `receiver.group_commit`, which syncs the filesystem,
renames completed files to their live names, journals them and the durable
offset of every file still open, and answers with one acknowledgement
message. Sealing and committing are separate so that the next group's frames
are written while the last one is synced (`receiver.transfer`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from common.content_hash import piece_hash
from common.frame_codec import FrameDecoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from receiver.durability import SyncGroup
from receiver.faults import BadRequest, CorruptData, OverLimit, fatal_for_session
from receiver.group_commit import CommitBatch, IncomingFile, record_failure
from receiver.journal import Journal, Partial
from receiver.session import MAX_ENTRY_ID, Session, validate_entry
from receiver.tree import TreeWriter

log = logging.getLogger(__name__)

# Files open at once on one stream; each holds up to three descriptors.
MAX_OPEN_FILES = 256


class IncomingStream:
    def __init__(self, session: Session, writer: TreeWriter, decoder: FrameDecoder) -> None:
        self.session = session
        self._journal = session.journal
        self._decoder = decoder
        self._writer = writer
        self._open: dict[int, IncomingFile] = {}
        self._failed: set[int] = set()
        # Ended on this stream; the journal says so only after the next sync.
        self._ended: set[int] = set()
        self._batch = CommitBatch()  # what the current sync group will commit
        self._group = SyncGroup()
        self._raw_received = 0

    # -- messages ---------------------------------------------------------------

    def handle(self, request: pb.TransferRequest) -> None:
        """Apply one message."""
        for entry in request.restarts:
            self._restart(entry)
        ends = {end.file_id: end for end in request.ends}
        if len(ends) != len(request.ends):
            raise BadRequest("a file ends twice in one message")
        if request.HasField("frame"):
            self._apply_frame(request.frame, ends)
        for end in ends.values():  # files with no piece in this frame
            self._end(end)
        for file_id in request.abandoned_file_ids:
            self._abandon(file_id)

    def due(self) -> bool:
        """The sync group is full or old enough to seal."""
        return self._group.due()

    def overdue(self) -> bool:
        """The group has grown well past its bounds while the last one was committed."""
        return self._group.overdue()

    def _apply_frame(self, frame: pb.DataFrame, ends: dict[int, pb.FileEnd]) -> None:
        """Write the frame's pieces; a file whose end is in `ends` is completed right
        after its last piece (and taken out of `ends`), so a frame of a thousand small
        files never holds a thousand files open."""
        if sum(p.length for p in frame.pieces) != frame.raw_size:
            raise BadRequest("frame pieces do not add up to its raw size")
        last_piece = {piece.file_id: index for index, piece in enumerate(frame.pieces)}
        started = time.perf_counter()
        raw = self._decoder.decode(frame.encoding, frame.payload, frame.raw_size)
        position = 0
        for index, piece in enumerate(frame.pieces):
            data = raw[position : position + piece.length]
            position += piece.length
            if piece_hash(data) != piece.xxh3_64:
                raise CorruptData(
                    f"piece of file {piece.file_id} at offset {piece.offset} fails its hash"
                )
            incoming = self._incoming(piece.file_id)
            if incoming is None:
                continue
            path = display(incoming.entry.path)
            if piece.offset < incoming.partial.written_to:
                raise BadRequest(f"{path}: piece at {piece.offset} is out of order")
            if piece.offset + piece.length > incoming.entry.size:
                raise BadRequest(f"{path}: piece past the planned size")
            self._guard(incoming, incoming.partial.write, piece.offset, data)
            if last_piece[piece.file_id] == index and piece.file_id in ends:
                self._end(ends.pop(piece.file_id))
        self._raw_received += frame.raw_size
        self._group.add(raw_bytes=frame.raw_size)
        stats = self.session.stats
        stats.frame_written(time.perf_counter() - started)
        stats.count(
            frames=1, received_wire_bytes=len(frame.payload), received_raw_bytes=frame.raw_size
        )

    def _restart(self, entry: pb.Entry) -> None:
        """The source changed while read: new metadata, content from offset 0."""
        incoming = self._incoming(entry.id)
        if incoming is None:
            return
        planned = incoming.entry
        if entry.path != planned.path or entry.kind != pb.ENTRY_KIND_FILE:
            raise BadRequest(f"restart of {display(planned.path)} names another file")
        validate_entry(entry)  # held to the rules of a planned entry
        self._guard(incoming, incoming.partial.restart)
        incoming.entry = entry
        self._batch.statements.append(
            Journal.put_partial(Partial.fresh(entry, incoming.partial.tmp_name))
        )

    def _end(self, end: pb.FileEnd) -> None:
        incoming = self._incoming(end.file_id)
        if incoming is None:
            return
        self._ended.add(end.file_id)
        entry, partial = incoming.entry, incoming.partial
        if end.size != entry.size:
            raise BadRequest(f"{display(entry.path)}: ends at {end.size}, planned {entry.size}")
        if end.unchanged:
            self._keep_live(incoming, end)
            return

        def complete() -> None:
            if not partial.complete(end.size, end.xxh3_128):
                raise CorruptData(f"{display(entry.path)}: whole-file hash does not match")
            self._writer.commit(partial, entry)

        if self._guard(incoming, complete):
            del self._open[end.file_id]
            self._batch.to_publish.append(incoming)
            self._group.add(files=1)

    def _keep_live(self, incoming: IncomingFile, end: pb.FileEnd) -> None:
        """Every block matched: the live file stays, with the entry's metadata."""
        entry = incoming.entry

        def keep() -> None:
            if not self._writer.keep_live(entry.path, entry, end.xxh3_128):
                raise CorruptData(f"{display(entry.path)}: changed on the target during the run")

        if self._guard(incoming, keep):
            del self._open[entry.id]
            incoming.partial.discard()
            self._batch.kept.append(incoming)
            self._group.add(files=1)

    def _abandon(self, file_id: int) -> None:
        """The sender gave up on the file: its partial content goes."""
        incoming = self._open.pop(file_id, None)
        if incoming is None:
            if file_id > MAX_ENTRY_ID:
                raise BadRequest(f"file id {file_id} is over {MAX_ENTRY_ID}")
            planned = self._journal.pending_file(self.session.id, file_id)
            if planned is None:
                return
            entry = planned[0]
            partial = self._journal.partial(entry.path)
            if partial is not None:
                self._writer.remove_temp(entry.path, partial.temp_name)
        else:
            entry = incoming.entry
            incoming.partial.discard()
        self._failed.add(file_id)
        self._journal.transaction([Journal.drop_partial(entry.path)])

    def _incoming(self, file_id: int) -> IncomingFile | None:
        """The open file for `file_id`, opened on first use; None if it failed here."""
        incoming = self._open.get(file_id)
        if incoming is not None:
            return incoming
        if file_id in self._failed:
            return None
        if file_id in self._ended:
            raise BadRequest(f"file id {file_id} already ended on this stream")
        if file_id > MAX_ENTRY_ID:
            raise BadRequest(f"file id {file_id} is over {MAX_ENTRY_ID}")
        planned = self.session.planned_file(file_id)
        if planned is None:
            raise BadRequest(f"file id {file_id} was not planned for sending")
        entry, delta, partial = planned.entry, planned.delta, planned.partial
        if len(self._open) >= MAX_OPEN_FILES:
            raise OverLimit(f"more than {MAX_OPEN_FILES} files open on one stream")
        try:
            opened = self._writer.open_partial(
                entry.path, partial.temp_name, resume_from=partial.durable_offset, with_base=delta
            )
        except OSError as exc:  # e.g. its directory was replaced by a symlink since
            path = display(entry.path)
            fatal = fatal_for_session(exc, path)
            if fatal is not None:
                raise fatal from exc
            self._fail(entry, f"{path}: {exc.strerror}")
            return None
        if partial.durable_offset:
            self.session.stats.count(files_resumed=1)
        incoming = self._open[file_id] = IncomingFile(entry, opened, counted=partial.durable_offset)
        return incoming

    def _guard(self, incoming: IncomingFile, action: Callable[..., None], *args: object) -> bool:
        """Run `action(*args)`; an OS error that is this file's alone fails only the file."""
        try:
            action(*args)
            return True
        except OSError as exc:
            path = display(incoming.entry.path)
            fatal = fatal_for_session(exc, path)
            if fatal is not None:
                raise fatal from exc
            self._fail(incoming.entry, f"{path}: {exc.strerror}")
            self._open.pop(incoming.entry.id, None)
            incoming.partial.discard()
            return False

    def _fail(self, entry: pb.Entry, message: str) -> None:
        self._failed.add(entry.id)
        record_failure(self.session, entry, message, self._batch)

    # -- durability -------------------------------------------------------------

    def seal(self) -> CommitBatch:
        """Close the sync group: its batch goes to be committed, a new one begins."""
        batch, self._batch = self._batch, CommitBatch()
        batch.still_open = [(i, i.partial.written_to) for i in self._open.values()]
        batch.raw_received = self._raw_received
        self._group.reset()
        return batch

    def abort(self) -> None:
        """End the stream, whole or broken: files still open stay partial, to resume from
        their durable offsets, and a batch never sealed is let go unpublished."""
        for incoming in self._open.values():
            incoming.partial.close()
            incoming.partial.release_directory()
        self._open.clear()
        self._batch.release()
