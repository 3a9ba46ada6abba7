"""One Transfer stream on the sender: files read, packed, sent, acknowledged.

Each uploader owns a connection. It takes planned files from the shared
queue, reads them into frames and sends them while at most a window of raw
bytes is unacknowledged; acknowledgements arrive on the same stream.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from common.errors import MigrateError, TransferError
from common.frame_codec import FrameEncoder
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from sender.connection import ReceiverClient, translate
from sender.frames import FrameBuilder
from sender.planner import POLL_S, FileJob
from sender.source_file import SourceChanged, SourceReader, open_source
from sender.stats import RunStats

# How long an uploader waits for the next planned file before it sends the
# frame it has started.
_IDLE_S = 0.05


@dataclass(frozen=True)
class StreamSettings:
    chunk_bytes: int
    compress_level: int
    # Raw bytes sent and not yet acknowledged as durable, at most.
    window_bytes: int


class Uploader:
    def __init__(
        self,
        client: ReceiverClient,
        session_id: str,
        jobs: queue.Queue[FileJob | None],
        settings: StreamSettings,
        stats: RunStats,
        abort: threading.Event,
    ) -> None:
        self._client = client
        self._session_id = session_id
        self._jobs = jobs
        self._settings = settings
        self._stats = stats
        self._abort = abort
        self._window = threading.Condition()
        self._sent_raw = 0
        self._durable_raw = 0
        self._closed = False
        self._awaiting_commit = 0
        self._error: BaseException | None = None

    def run(self) -> None:
        """Send until the queue's end marker; returns once all is acknowledged."""
        try:
            for response in self._client.transfer(self._requests()):
                self._on_response(response)
        except grpc.RpcError as exc:
            if self._error is not None:
                raise self._error from None
            raise translate(exc, self._client.endpoint.address) from None
        finally:
            with self._window:
                self._closed = True
                self._window.notify_all()
        if self._error is not None:
            raise self._error
        if self._awaiting_commit:
            raise TransferError(
                f"the receiver ended a stream with {self._awaiting_commit} files unacknowledged"
            )

    # -- acknowledgements -------------------------------------------------------

    def _on_response(self, response: pb.TransferResponse) -> None:
        for ack in response.acks:
            if ack.error:
                self._stats.warn(ack.error)
                self._stats.add(files_failed=1)
                self._awaiting_commit -= 1
            elif ack.committed:
                self._stats.add(files_transferred=1)
                self._awaiting_commit -= 1
        with self._window:
            self._durable_raw = response.raw_bytes_durable
            self._window.notify_all()

    def _wait_for_window(self, raw_bytes: int) -> None:
        with self._window:
            while (
                self._sent_raw - self._durable_raw + raw_bytes > self._settings.window_bytes
                and not self._closed
            ):
                self._window.wait(POLL_S)

    # -- requests ---------------------------------------------------------------

    def _requests(self) -> Iterator[pb.TransferRequest]:
        try:
            yield pb.TransferRequest(session_id=self._session_id)
            encoder = FrameEncoder(self._settings.compress_level)
            builder = FrameBuilder(self._settings.chunk_bytes, encoder)
            while not self._abort.is_set():
                try:
                    job = self._jobs.get(timeout=_IDLE_S)
                except queue.Empty:
                    # Nothing planned yet: a partial frame should not wait.
                    if not builder.is_empty():
                        yield self._take(builder)
                    continue
                if job is None:
                    break
                yield from self._send_file(job, builder)
            if not builder.is_empty():
                yield self._take(builder)
        except Exception as exc:
            # gRPC would only log an exception from a request iterator.
            self._error = exc if isinstance(exc, MigrateError) else TransferError(repr(exc))
            self._abort.set()

    def _take(self, builder: FrameBuilder) -> pb.TransferRequest:
        raw = builder.raw_size
        self._wait_for_window(raw)
        request = builder.take()
        with self._window:
            self._sent_raw += raw
        self._stats.add(bytes_sent_raw=raw, bytes_sent_wire=len(request.frame.payload))
        self._awaiting_commit += len(request.ends)
        return request

    def _send_file(self, job: FileJob, builder: FrameBuilder) -> Iterator[pb.TransferRequest]:
        try:
            fd = open_source(job.abspath)
        except OSError as exc:
            self._give_up(
                job, builder, f"cannot read {display(job.relpath)}: {exc.strerror}", failed=True
            )
            return
        try:
            reader = SourceReader(fd, job.planned)
            for offset, data in reader.pieces(lambda: builder.room):
                builder.add_piece(job.id, offset, data)
                if builder.room == 0:
                    yield self._take(builder)
            builder.add_end(
                pb.FileEnd(file_id=job.id, size=job.planned.size, xxh3_128=reader.finish())
            )
        except SourceChanged as exc:
            message = f"{display(job.relpath)} {exc}; not migrated in this run, run again"
            self._give_up(job, builder, message, failed=False)
        except OSError as exc:
            self._give_up(
                job, builder, f"cannot read {display(job.relpath)}: {exc.strerror}", failed=True
            )
        finally:
            os.close(fd)

    def _give_up(self, job: FileJob, builder: FrameBuilder, message: str, *, failed: bool) -> None:
        builder.abandon(job.id)
        self._stats.warn(message)
        if failed:
            self._stats.add(files_failed=1)
