"""One Transfer stream on the receiver: frames in, durable acknowledgements out.

Pieces are checked against their hashes and written to temporary files; a
file whose content is complete is checked against its whole-file hash and
gets its metadata. Once per sync group the filesystem is synced, completed
files are renamed to their live names, the journal records them, and one
acknowledgement message tells the sender what is durable.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from common.content_hash import piece_hash
from common.frame_codec import FrameDecoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from receiver.durability import SyncGroup, syncfs
from receiver.faults import BadRequest, CorruptData, OverLimit, fatal_for_session
from receiver.journal import COMMITTED, FAILED
from receiver.session import Session
from receiver.tree import PartialFile

log = logging.getLogger(__name__)

# Files open at once on one stream; each holds two descriptors.
MAX_OPEN_FILES = 256


@dataclass
class _Incoming:
    entry: pb.Entry
    partial: PartialFile


class IncomingStream:
    def __init__(self, session: Session, decoder: FrameDecoder) -> None:
        self.session = session
        self._decoder = decoder
        self._writer = session.writer()
        self._open: dict[int, _Incoming] = {}
        self._failed: set[int] = set()
        self._to_publish: list[_Incoming] = []
        self._acks: list[pb.FileAck] = []
        self._group = SyncGroup()
        self._raw_received = 0

    # -- messages ---------------------------------------------------------------

    def handle(self, request: pb.TransferRequest) -> pb.TransferResponse | None:
        """Apply one message; the acknowledgements when it closed a sync group."""
        if request.HasField("frame"):
            self._apply_frame(request.frame)
        for end in request.ends:
            self._end(end)
        for file_id in request.abandoned_file_ids:
            self._drop(file_id)
        return self.sync() if self._group.due() else None

    def _apply_frame(self, frame: pb.DataFrame) -> None:
        if sum(p.length for p in frame.pieces) != frame.raw_size:
            raise BadRequest("frame pieces do not add up to its raw size")
        raw = self._decoder.decode(frame.encoding, frame.payload, frame.raw_size)
        position = 0
        for piece in frame.pieces:
            data = raw[position : position + piece.length]
            position += piece.length
            if piece_hash(data) != piece.xxh3_64:
                raise CorruptData(
                    f"piece of file {piece.file_id} at offset {piece.offset} fails its hash"
                )
            if piece.file_id in self._failed:
                continue
            incoming = self._incoming(piece.file_id)
            if piece.offset < incoming.partial.written_to:
                raise BadRequest(
                    f"{display(incoming.entry.path)}: piece at {piece.offset} is out of order"
                )
            if piece.offset + piece.length > incoming.entry.size:
                raise BadRequest(f"{display(incoming.entry.path)}: piece past the planned size")
            self._guard(incoming, incoming.partial.write, piece.offset, data)
        self._raw_received += frame.raw_size
        self._group.add(raw_bytes=frame.raw_size)

    def _end(self, end: pb.FileEnd) -> None:
        if end.file_id in self._failed:
            return
        incoming = self._incoming(end.file_id)
        entry, partial = incoming.entry, incoming.partial
        if end.size != entry.size:
            raise BadRequest(f"{display(entry.path)}: ends at {end.size}, planned {entry.size}")

        def complete() -> None:
            if not partial.complete(end.size, end.xxh3_128):
                raise CorruptData(f"{display(entry.path)}: whole-file hash does not match")
            self._writer.commit(partial, entry)

        if self._guard(incoming, complete):
            del self._open[end.file_id]
            self._to_publish.append(incoming)
            self._group.add(files=1)

    def _drop(self, file_id: int) -> None:
        incoming = self._open.pop(file_id, None)
        if incoming is not None:
            incoming.partial.discard()
        self._failed.add(file_id)

    def _incoming(self, file_id: int) -> _Incoming:
        incoming = self._open.get(file_id)
        if incoming is not None:
            return incoming
        planned = self.session.journal.pending_file(self.session.id, file_id)
        if planned is None:
            raise BadRequest(f"file id {file_id} was not planned for sending")
        if len(self._open) >= MAX_OPEN_FILES:
            raise OverLimit(f"more than {MAX_OPEN_FILES} files open on one stream")
        entry, temp = planned
        partial = self._writer.create_partial(entry.path, temp)
        incoming = self._open[file_id] = _Incoming(entry, partial)
        return incoming

    def _guard(self, incoming: _Incoming, action: Callable[..., None], *args: object) -> bool:
        """Run `action(*args)`; an OS error that is this file's alone fails only the file."""
        try:
            action(*args)
            return True
        except OSError as exc:
            path = display(incoming.entry.path)
            fatal = fatal_for_session(exc, path)
            if fatal is not None:
                raise fatal from exc
            message = f"{path}: {exc.strerror}"
            self.session.warn(message)
            self._acks.append(pb.FileAck(file_id=incoming.entry.id, error=message))
            self._drop(incoming.entry.id)
            self.session.journal.set_states(self.session.id, [(incoming.entry.id, FAILED)])
            return False

    # -- durability -------------------------------------------------------------

    def sync(self) -> pb.TransferResponse:
        """Close the sync group: make everything durable, publish, acknowledge."""
        syncfs(self.session.root.fd)
        published = self._publish()
        if published:
            syncfs(self.session.root.fd)  # the renames themselves
            self.session.journal.set_states(
                self.session.id, [(i.entry.id, COMMITTED) for i in published]
            )
        acks = self._acks
        self._acks = []
        acks.extend(
            pb.FileAck(file_id=i.entry.id, durable_offset=i.entry.size, committed=True)
            for i in published
        )
        acks.extend(
            pb.FileAck(file_id=i.entry.id, durable_offset=i.partial.written_to)
            for i in self._open.values()
        )
        self.session.record_progress(committed=len(published), durable_bytes=self._group.raw_bytes)
        self._group.reset()
        return pb.TransferResponse(acks=acks, raw_bytes_durable=self._raw_received)

    def _publish(self) -> list[_Incoming]:
        published = []
        for incoming in self._to_publish:
            try:
                self._writer.publish(incoming.partial)
                published.append(incoming)
            except OSError as exc:
                path = display(incoming.entry.path)
                fatal = fatal_for_session(exc, path)
                if fatal is not None:
                    raise fatal from exc
                self.session.warn(f"{path}: {exc.strerror}")
                self._acks.append(
                    pb.FileAck(file_id=incoming.entry.id, error=f"{path}: {exc.strerror}")
                )
        self._to_publish = []
        return published

    def close(self) -> None:
        """End the stream after its last sync: nothing is left open."""
        self._writer.close()

    def abort(self) -> None:
        """End a broken stream: drop what was not made durable and published."""
        for incoming in [*self._open.values(), *self._to_publish]:
            incoming.partial.discard()
        self._open.clear()
        self._to_publish.clear()
        self._writer.close()
