"""A Transfer stream in two threads: one applies frames, the other commits.

Committing a sync group waits for the disk (syncfs, renames, the journal's
fsync); were it done between two frames, nothing would be received
meanwhile. So a reader thread takes the sender's messages and writes them,
sealing a group when it is due, while gRPC's thread commits the sealed
groups in order and sends each one's acknowledgements as soon as it is
durable, whether or not more messages arrive (the sender stops sending when
its window is full, and only an acknowledgement opens it again).

While a group is being committed, the next one goes on growing rather than
being sealed, so a slow disk gets fewer, larger syncs; past twice its bounds
the reader waits.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator

from common.frame_codec import FrameDecoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from receiver.group_commit import CommitBatch, commit
from receiver.incoming import IncomingStream
from receiver.session import Session

# How often a waiting reader looks whether the stream is over.
_POLL_S = 0.1


class _End:
    """The reader is done: every group it sealed is in the queue before this."""


Handover = CommitBatch | _End | BaseException


def serve_transfer(
    session: Session, decoder: FrameDecoder, requests: Iterator[pb.TransferRequest]
) -> Iterator[pb.TransferResponse]:
    """Apply `requests`; yield one acknowledgement message per sync group."""
    sealed: queue.Queue[Handover] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def read() -> None:
        # The reader has a writer of its own: its directory descriptors live
        # exactly as long as the thread that uses them, even when gRPC's
        # thread has already ended the call with an error.
        try:
            with session.used() as writer:
                _read(IncomingStream(session, writer, decoder), requests, sealed, stop)
        except BaseException as exc:
            _put(sealed, exc, stop)

    with session.used() as writer:
        threading.Thread(target=read, name="transfer-reader", daemon=True).start()
        try:
            while not isinstance(item := sealed.get(), _End):
                if isinstance(item, BaseException):
                    raise item
                yield commit(session, writer, item)
        except BaseException:
            stop.set()
            _release_queued(sealed)
            raise


def _read(
    stream: IncomingStream,
    requests: Iterator[pb.TransferRequest],
    sealed: queue.Queue[Handover],
    stop: threading.Event,
) -> None:
    try:
        for request in requests:
            if stop.is_set():
                break
            stream.handle(request)
            # While the last group is committed this one grows, up to overdue.
            # Only the reader puts, so an empty queue takes this group at once.
            if not stream.due() or not (sealed.empty() or stream.overdue()):
                continue
            if not _put(sealed, stream.seal(), stop):
                break
        else:
            if _put(sealed, stream.seal(), stop):
                _put(sealed, _End(), stop)
    except BaseException as exc:
        _put(sealed, exc, stop)
    finally:
        # Files the sender left open, or all of them when the stream broke or
        # the committing side gave up: partial files stay, to resume.
        stream.abort()
    if stop.is_set():
        _release_queued(sealed)


def _put(sealed: queue.Queue[Handover], item: Handover, stop: threading.Event) -> bool:
    """Hand `item` to the committing side; False (and `item` let go) once it stopped."""
    while not stop.is_set():
        try:
            sealed.put(item, timeout=_POLL_S)
            return True
        except queue.Full:
            continue
    if isinstance(item, CommitBatch):
        item.release()
    return False


def _release_queued(sealed: queue.Queue[Handover]) -> None:
    with contextlib.suppress(queue.Empty):
        while True:
            item = sealed.get_nowait()
            if isinstance(item, CommitBatch):
                item.release()
