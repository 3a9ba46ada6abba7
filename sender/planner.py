"""The manifest and the Plan stream: entries out, decisions in, files queued.

The walk runs inside the request iterator, batches go out while earlier ones
are being decided, and at most a few batches are ever waiting for their
decisions: back-pressure reaches the walk, so memory stays flat.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import grpc

from common.kinds import kind_of
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.relpath import display
from sender.connection import ReceiverClient, translate
from sender.describe import Hardlinks, describe
from sender.source_file import Fingerprint, prefetch
from sender.stats import RunStats
from sender.walk import WalkOptions, walk

BATCH_ENTRIES = 1000
MAX_BATCHES_IN_FLIGHT = 4
# How often a blocked thread looks whether the run was aborted.
POLL_S = 0.2


@dataclass(frozen=True)
class FileJob:
    """A file the receiver asked for."""

    id: int
    relpath: bytes
    abspath: bytes
    planned: Fingerprint
    # Where the receiver's durable copy ends: content before it is not sent.
    offset: int
    # For ACTION_DELTA, the decision with the receiver's block hashes.
    delta: pb.Decision | None = None


def manifest(source: bytes, options: WalkOptions, stats: RunStats) -> Iterator[pb.Entry]:
    """The entries of the source tree, numbered in walk order."""

    def fail(message: str) -> None:
        stats.warn(message)
        stats.add(files_failed=1)

    hardlinks = Hardlinks()
    next_id = 0
    for found in walk(source, options, fail):
        kind = kind_of(found.st)
        if kind is None:
            stats.add(sockets_skipped=1)
            continue
        next_id += 1
        if kind == pb.ENTRY_KIND_FILE and found.st.st_nlink > 1:
            first = hardlinks.first_name(found.st, found.relpath)
            if first is not None:
                stats.add(hardlinks=1, entries_total=1)
                yield pb.Entry(
                    id=next_id, path=found.relpath, kind=pb.ENTRY_KIND_HARDLINK, link_target=first
                )
                continue
        try:
            entry = describe(next_id, found.relpath, found.abspath, found.st, kind)
        except FileNotFoundError:
            continue  # vanished since the walk saw it
        except OSError as exc:
            fail(f"cannot read {display(found.relpath)}: {exc.strerror}")
            continue
        if kind == pb.ENTRY_KIND_FILE:
            stats.add(files_total=1, bytes_total=entry.size)
        stats.add(entries_total=1)
        yield entry


class Planner:
    def __init__(
        self,
        client: ReceiverClient,
        session_id: str,
        source: bytes,
        entries: Iterator[pb.Entry],
        jobs: queue.Queue[FileJob | None],
        stats: RunStats,
        abort: threading.Event,
    ) -> None:
        self._client = client
        self._session_id = session_id
        self._source = source
        self._entries = entries
        self._jobs = jobs
        self._stats = stats
        self._abort = abort
        self._in_flight: deque[list[pb.Entry]] = deque()
        self._slots = threading.Semaphore(MAX_BATCHES_IN_FLIGHT)
        self._walk_error: BaseException | None = None

    def run(self) -> None:
        """Plan the whole tree; returns once every decision is routed."""
        try:
            for response in self._client.plan(self._requests()):
                self._route(response)
        except grpc.RpcError as exc:
            if self._walk_error is not None:
                raise self._walk_error from None
            raise translate(exc, self._client.endpoint.address) from None
        if self._walk_error is not None:
            raise self._walk_error

    def _requests(self) -> Iterator[pb.PlanRequest]:
        try:
            for batch in self._batches():
                while not self._slots.acquire(timeout=POLL_S):
                    if self._abort.is_set():
                        return
                self._in_flight.append(batch)
                yield pb.PlanRequest(session_id=self._session_id, entries=batch)
        except Exception as exc:
            # gRPC would only log an exception from a request iterator.
            self._walk_error = exc
            self._abort.set()

    def _batches(self) -> Iterator[list[pb.Entry]]:
        batch: list[pb.Entry] = []
        for entry in self._entries:
            batch.append(entry)
            if len(batch) >= BATCH_ENTRIES:
                yield batch
                batch = []
        if batch:
            yield batch

    def _route(self, response: pb.PlanResponse) -> None:
        batch = self._in_flight.popleft()
        self._slots.release()
        for entry, decision in zip(batch, response.decisions, strict=True):
            if decision.action in (pb.ACTION_SEND, pb.ACTION_DELTA):
                abspath = os.path.join(self._source, entry.path)
                prefetch(abspath, entry.size)
                put_unless_aborted(
                    self._jobs,
                    FileJob(
                        id=entry.id,
                        relpath=entry.path,
                        abspath=abspath,
                        planned=Fingerprint(entry.size, entry.mtime_ns, entry.ctime_ns),
                        offset=decision.resume_offset,
                        delta=decision if decision.action == pb.ACTION_DELTA else None,
                    ),
                    self._abort,
                )
            elif decision.action == pb.ACTION_SKIP:
                self._stats.add(files_skipped=1, done_files=1, done_bytes=entry.size)
            elif decision.action == pb.ACTION_FAILED:
                self._stats.warn(decision.error)
                self._stats.add(files_failed=1)


def put_unless_aborted(
    jobs: queue.Queue[FileJob | None], item: FileJob | None, abort: threading.Event
) -> None:
    """Queue `item`, waiting for room, unless the run is aborted meanwhile."""
    while not abort.is_set():
        try:
            jobs.put(item, timeout=POLL_S)
            return
        except queue.Full:
            continue
