"""Packing file content into TransferRequest messages.

Pieces of any number of files go into one frame until it holds about a
chunk: a big file is cut into chunk-sized pieces, small files share a frame
(and its zstd context, which compresses them far better than one by one).
"""

from __future__ import annotations

from common.content_hash import piece_hash
from common.frame_codec import FrameEncoder
from common.pb.migrate.v1 import receiver_pb2 as pb

# Many tiny files would otherwise make a message of headers.
MAX_PIECES_PER_FRAME = 1024


class FrameBuilder:
    def __init__(self, chunk_bytes: int, encoder: FrameEncoder) -> None:
        self.chunk_bytes = chunk_bytes
        self._encoder = encoder
        # The pieces' data, joined only when the frame is taken: a frame of
        # one piece (a big file's chunk) then goes out without a copy.
        self._parts: list[bytes] = []
        self._raw_size = 0
        self._pieces: list[pb.Piece] = []
        self._ends: list[pb.FileEnd] = []
        self._abandoned: list[int] = []
        self._restarts: list[pb.Entry] = []

    @property
    def room(self) -> int:
        """Raw bytes the current frame can still take."""
        if len(self._pieces) >= MAX_PIECES_PER_FRAME:
            return 0
        return self.chunk_bytes - self._raw_size

    @property
    def raw_size(self) -> int:
        return self._raw_size

    def is_empty(self) -> bool:
        return not (self._pieces or self._ends or self._abandoned or self._restarts)

    def has_pieces(self) -> bool:
        return bool(self._pieces)

    def add_piece(self, file_id: int, offset: int, data: bytes) -> None:
        self._pieces.append(
            pb.Piece(file_id=file_id, offset=offset, length=len(data), xxh3_64=piece_hash(data))
        )
        self._parts.append(data)
        self._raw_size += len(data)

    def add_end(self, end: pb.FileEnd) -> None:
        self._ends.append(end)

    def abandon(self, file_id: int) -> None:
        self._abandoned.append(file_id)

    def restart(self, entry: pb.Entry) -> None:
        """Content of `entry` starts again at 0; the receiver applies this before the frame,
        so the frame must hold no piece of the file's earlier attempt."""
        self._restarts.append(entry)

    def take(self) -> pb.TransferRequest:
        """The message for everything added since the last take; then start afresh."""
        request = pb.TransferRequest(
            ends=self._ends, abandoned_file_ids=self._abandoned, restarts=self._restarts
        )
        if self._pieces:
            sources = {piece.file_id for piece in self._pieces}
            source = sources.pop() if len(sources) == 1 else None
            raw = self._parts[0] if len(self._parts) == 1 else b"".join(self._parts)
            encoding, payload = self._encoder.encode(raw, source)
            request.frame.CopyFrom(
                pb.DataFrame(
                    encoding=encoding,
                    payload=payload,
                    raw_size=self._raw_size,
                    pieces=self._pieces,
                )
            )
        self._parts = []
        self._raw_size = 0
        self._pieces = []
        self._ends = []
        self._abandoned = []
        self._restarts = []
        return request
