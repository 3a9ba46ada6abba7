"""One Transfer stream on the sender: files read, packed, sent, acknowledged.

Each uploader owns a connection. It takes planned files from the shared
queue, reads them into frames and sends them while at most a window of raw
bytes is unacknowledged; acknowledgements arrive on the same stream.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass

import grpc

from common.errors import MigrateError, TransferError
from common.frame_codec import FrameEncoder
from common.kinds import kind_of
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from sender.adaptive_level import AUTO, AdaptiveLevel
from sender.connection import ReceiverClient, translate
from sender.content import delta_runs, whole_runs
from sender.describe import describe
from sender.frames import FrameBuilder
from sender.planner import POLL_S, FileJob
from sender.ratelimit import TokenBucket
from sender.source_file import Fingerprint, SourceChanged, SourceReader, open_source
from sender.stats import RunStats

log = logging.getLogger("cvm-migrate")

# How long an uploader waits for the next planned file before it sends the
# frame it has started.
_IDLE_S = 0.05
# Frames made ahead of gRPC's sending, per stream: each about a chunk.
_FRAMES_AHEAD = 4


class _Waits:
    """Time the two ends of a stream's frame queue spent waiting, since last taken.

    `link`: the frame maker waited to hand a frame over (queue full) or on --bwlimit.
    `starved`: gRPC waited for a frame (queue empty). `idle`: the maker waited for
    acknowledgements or for planned files, so an empty queue then was not its doing.
    `compress`: the maker encoded frames (not a wait: what a lower level would save).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._link = self._starved = self._idle = self._compress = 0.0

    def add(
        self, *, link: float = 0.0, starved: float = 0.0, idle: float = 0.0, compress: float = 0.0
    ) -> None:
        with self._lock:
            self._link += link
            self._starved += starved
            self._idle += idle
            self._compress += compress

    def take(self) -> tuple[float, float, float]:
        """(link wait, starved wait not explained by the maker's idling, compressing);
        then zero."""
        with self._lock:
            taken = self._link, max(0.0, self._starved - self._idle), self._compress
            self._link = self._starved = self._idle = self._compress = 0.0
        return taken


class InFlight:
    """Files on their way: each one's size and the offset already counted as done.

    Counts only grow, so progress never goes backwards, even when a file
    starts again because the source changed.
    """

    def __init__(self, stats: RunStats) -> None:
        self._stats = stats
        self._lock = threading.Lock()
        self._files: dict[int, list[int]] = {}  # file id -> [size, counted]

    def started(self, file_id: int, size: int) -> None:
        with self._lock:
            counted = self._files.get(file_id, [0, 0])[1]
            self._files[file_id] = [size, counted]

    def durable(self, file_id: int, offset: int) -> None:
        with self._lock:
            state = self._files.get(file_id)
            if state is None or offset <= state[1]:
                return
            delta, state[1] = offset - state[1], offset
        self._stats.add(done_bytes=delta)

    def committed(self, file_id: int) -> None:
        with self._lock:
            size, counted = self._files.pop(file_id, (0, 0))
        self._stats.add(done_files=1, done_bytes=max(0, size - counted))

    def dropped(self, file_id: int) -> None:
        with self._lock:
            self._files.pop(file_id, None)


@dataclass(frozen=True)
class StreamSettings:
    chunk_bytes: int
    # zstd level, 0 for raw, or sender.adaptive_level.AUTO.
    compress_level: int
    # Raw bytes sent and not yet acknowledged as durable, at most.
    window_bytes: int
    # --bwlimit, shared by all streams; None for no limit.
    bandwidth: TokenBucket | None = None


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
        # Files whose end was sent and not yet acknowledged, and whether each was
        # found unchanged (a delta whose every block matched).
        self._awaiting_commit: dict[int, bool] = {}
        self._error: BaseException | None = None
        self._in_flight = InFlight(stats)
        self._waits = _Waits()
        self._adaptive = AdaptiveLevel() if settings.compress_level == AUTO else None
        # The zstd context of this uploader's one stream: a new Uploader, a new context.
        self._encoder = FrameEncoder(
            self._adaptive.level if self._adaptive else settings.compress_level
        )

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
                f"the receiver ended a stream with {len(self._awaiting_commit)} files"
                " unacknowledged"
            )

    # -- acknowledgements -------------------------------------------------------

    def _on_response(self, response: pb.TransferResponse) -> None:
        for ack in response.acks:
            if ack.error:
                self._stats.warn(ack.error)
                self._stats.add(files_failed=1)
                self._awaiting_commit.pop(ack.file_id, None)
                self._in_flight.dropped(ack.file_id)
            elif ack.committed:
                unchanged = self._awaiting_commit.pop(ack.file_id, False)
                self._stats.add(**{"files_skipped" if unchanged else "files_transferred": 1})
                self._in_flight.committed(ack.file_id)
            else:
                self._in_flight.durable(ack.file_id, ack.durable_offset)
        with self._window:
            self._durable_raw = response.raw_bytes_durable
            self._window.notify_all()

    def _wait_for_window(self, raw_bytes: int) -> None:
        started = time.monotonic()
        with self._window:
            while (
                self._sent_raw - self._durable_raw + raw_bytes > self._settings.window_bytes
                and not self._closed
            ):
                self._window.wait(POLL_S)
        self._waits.add(idle=time.monotonic() - started)

    # -- requests ---------------------------------------------------------------

    def _requests(self) -> Iterator[pb.TransferRequest]:
        """The stream's messages, made ahead by a thread of their own, so reading,
        hashing and compressing the next frames overlaps gRPC sending this one
        (gRPC's sync API waits for each write before taking the next message)."""
        ready: queue.Queue[pb.TransferRequest | None] = queue.Queue(maxsize=_FRAMES_AHEAD)
        threading.Thread(target=self._produce, args=(ready,), name="frames", daemon=True).start()
        while True:
            try:
                request = ready.get_nowait()
            except queue.Empty:
                started = time.monotonic()
                request = ready.get()
                self._waits.add(starved=time.monotonic() - started)
            if request is None:
                return
            yield request

    def _produce(self, ready: queue.Queue[pb.TransferRequest | None]) -> None:
        try:
            for request in self._messages():
                if not self._hand_over(ready, request):
                    return
        finally:
            self._hand_over(ready, None)

    def _hand_over(
        self, ready: queue.Queue[pb.TransferRequest | None], item: pb.TransferRequest | None
    ) -> bool:
        """Queue `item` for gRPC; False once the stream is over and nobody will take it."""
        started = time.monotonic()
        while True:
            try:
                ready.put(item, timeout=POLL_S)
                self._waits.add(link=time.monotonic() - started)
                return True
            except queue.Full:
                if self._closed:
                    return False

    def _messages(self) -> Iterator[pb.TransferRequest]:
        try:
            yield pb.TransferRequest(session_id=self._session_id)
            builder = FrameBuilder(self._settings.chunk_bytes, self._encoder)
            while not self._abort.is_set():
                planned, job = self._next_job()
                if not planned:
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

    def _next_job(self) -> tuple[bool, FileJob | None]:
        """(False, None) if nothing was planned within a moment, else (True, the job or
        the end marker)."""
        started = time.monotonic()
        try:
            return True, self._jobs.get(timeout=_IDLE_S)
        except queue.Empty:
            return False, None
        finally:
            self._waits.add(idle=time.monotonic() - started)

    def _take(self, builder: FrameBuilder) -> pb.TransferRequest:
        raw = builder.raw_size
        self._wait_for_window(raw)
        if raw:
            self._adapt_level()
        started = time.monotonic()
        request = builder.take()
        self._waits.add(compress=time.monotonic() - started)
        if self._settings.bandwidth is not None:
            started = time.monotonic()
            self._settings.bandwidth.take(len(request.frame.payload))
            # gRPC goes without frames meanwhile, but for the link's sake, not the maker's.
            waited = time.monotonic() - started
            self._waits.add(link=waited, idle=waited)
        with self._window:
            self._sent_raw += raw
        self._stats.add(bytes_sent_raw=raw, bytes_sent_wire=len(request.frame.payload))
        if raw:
            self._stats.count_frame(self._encoder.level)
        self._awaiting_commit.update((end.file_id, end.unchanged) for end in request.ends)
        return request

    def _adapt_level(self) -> None:
        """With --compress-level auto, the level for the frame about to be made."""
        if self._adaptive is None:
            return
        level = self._adaptive.observe(*self._waits.take())
        if level != self._encoder.level:
            log.debug("stream compression level %d -> %d", self._encoder.level, level)
            self._encoder.set_level(level)

    def _send_file(self, job: FileJob, builder: FrameBuilder) -> Iterator[pb.TransferRequest]:
        """The file's content; read once more from the start if it changed while read."""
        planned, start, delta = job.planned, job.offset, job.delta
        self._stats.current_file = display(job.relpath)
        for attempt in (1, 2):
            self._in_flight.started(job.id, planned.size)
            try:
                fd = open_source(job.abspath)
            except FileNotFoundError:
                self._give_up(job, builder, "vanished before it was read", failed=False)
                return
            except OSError as exc:
                self._give_up(job, builder, f"cannot be read: {exc.strerror}", failed=True)
                return
            try:
                reader = SourceReader(fd, planned)
                unchanged = yield from self._send_content(job.id, reader, start, delta, builder)
                digest = reader.finish()
                builder.add_end(
                    pb.FileEnd(
                        file_id=job.id, size=planned.size, xxh3_128=digest, unchanged=unchanged
                    )
                )
                if start:
                    self._stats.add(files_resumed=1, bytes_resumed=start)
                return
            except SourceChanged as exc:
                changed = str(exc)
            except OSError as exc:
                self._give_up(job, builder, f"cannot be read: {exc.strerror}", failed=True)
                return
            finally:
                os.close(fd)
            entry = _describe_again(job) if attempt == 1 else None
            if entry is None:
                self._give_up(job, builder, f"{changed}; run again to migrate it", failed=False)
                return
            # Nothing of the earlier attempt may share a frame with the restart.
            if builder.has_pieces():
                yield self._take(builder)
            builder.restart(entry)
            planned, start, delta = Fingerprint(entry.size, entry.mtime_ns, entry.ctime_ns), 0, None

    def _send_content(
        self,
        file_id: int,
        reader: SourceReader,
        start: int,
        delta: pb.Decision | None,
        builder: FrameBuilder,
    ) -> Generator[pb.TransferRequest, None, bool]:
        """Frames with the runs to send; whether the receiver's version is identical."""
        runs = (
            delta_runs(reader, delta, start)
            if delta is not None
            else whole_runs(reader, start, lambda: builder.room)
        )
        while True:
            try:
                offset, data = next(runs)
            except StopIteration as done:
                return bool(done.value)
            while data:
                length = min(len(data), builder.room)
                builder.add_piece(file_id, offset, data[:length])
                offset, data = offset + length, data[length:]
                if builder.room == 0:
                    yield self._take(builder)

    def _give_up(self, job: FileJob, builder: FrameBuilder, why: str, *, failed: bool) -> None:
        """Tell the receiver to drop the file; a warning, and a failure if `failed`."""
        builder.abandon(job.id)
        self._in_flight.dropped(job.id)
        self._stats.warn(f"{display(job.relpath)} {why}")
        if failed:
            self._stats.add(files_failed=1)


def _describe_again(job: FileJob) -> pb.Entry | None:
    """The file's entry as it is now; None if it is gone or no longer a regular file."""
    try:
        st = os.lstat(job.abspath)
        if kind_of(st) != pb.ENTRY_KIND_FILE:
            return None
        return describe(job.id, job.relpath, job.abspath, st, pb.ENTRY_KIND_FILE)
    except FileNotFoundError:
        return None
