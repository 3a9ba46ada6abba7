"""One migration run: Hello, then planning and uploading side by side, then Finish."""

from __future__ import annotations

import logging
import os
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import grpc

from common.errors import ConfigError, MigrateError, ProtocolMismatch, SourceError
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.version import PROTOCOL_VERSION
from sender.connection import Endpoint, ReceiverClient, translate
from sender.planner import POLL_S, FileJob, Planner, manifest, put_unless_aborted
from sender.prescan import start_prescan
from sender.ratelimit import from_kbytes_per_s
from sender.stats import RunStats
from sender.uploader import StreamSettings, Uploader
from sender.walk import WalkOptions

log = logging.getLogger(__name__)

# Planned files waiting for an uploader, per stream: enough to keep every
# stream busy while the next plan batch is decided, few enough to stay small.
_QUEUED_FILES_PER_STREAM = 256


@dataclass(frozen=True)
class RunOptions:
    source: Path
    endpoint: Endpoint
    walk: WalkOptions
    streams: int
    chunk_bytes: int
    compress_level: int
    window_bytes: int
    # rsync --delete: remove from the target what the source no longer has.
    delete: bool = False
    # rsync --checksum: compare content hashes instead of size and mtime.
    checksum: bool = False
    # --bwlimit in KBytes/s on wire bytes; 0 for none.
    bwlimit_kbytes_per_s: float = 0

    def hello_request(self) -> pb.HelloRequest:
        return pb.HelloRequest(
            exclude_rules=self.walk.rules.to_wire(),
            mirror_deletions=self.delete,
            compare_content=self.checksum,
        )


def source_root(source: Path) -> bytes:
    """The source directory as bytes; a symlink to it is followed, as rsync does for SRC/."""
    path = os.fsencode(source.absolute())
    try:
        st = os.stat(path)
    except OSError as exc:
        raise SourceError(source, exc.strerror) from exc
    if not stat.S_ISDIR(st.st_mode):
        raise SourceError(source, "not a directory")
    return os.path.realpath(path)


def run_migration(options: RunOptions, stats: RunStats) -> None:
    """Migrate the tree; per-entry failures end up in `stats`, the rest raises."""
    source = source_root(options.source)
    bandwidth = from_kbytes_per_s(options.bwlimit_kbytes_per_s)
    control = ReceiverClient(options.endpoint)
    try:
        try:
            hello = control.hello(options.hello_request())
        except grpc.RpcError as exc:
            raise translate(exc, options.endpoint.address) from None
        if hello.protocol_version != PROTOCOL_VERSION:
            raise ProtocolMismatch(hello.protocol_version, PROTOCOL_VERSION)
        if options.chunk_bytes > hello.max_frame_raw_bytes:
            raise ConfigError(
                f"--chunk-size {options.chunk_bytes} is over the receiver's limit "
                f"of {hello.max_frame_raw_bytes} bytes"
            )
        log.info("session %s with receiver %s", hello.session_id, hello.receiver_version)
        stats.add(sessions_opened=1)
        # The receiver acknowledges once per sync group: a window at or below
        # that would wait for an acknowledgement that never comes.
        window = max(options.window_bytes, hello.sync_group_bytes + 2 * options.chunk_bytes)
        settings = StreamSettings(options.chunk_bytes, options.compress_level, window, bandwidth)
        stop_scan = threading.Event()
        if not stats.scan_complete:
            start_prescan(source, options.walk, stats, stop_scan)
        try:
            _plan_and_upload(control, hello.session_id, source, options, settings, stats)
        finally:
            stop_scan.set()
        try:
            finish = control.finish(hello.session_id)
        except grpc.RpcError as exc:
            raise translate(exc, options.endpoint.address) from None
        for warning in finish.warnings:
            stats.warn(warning)
        stats.add(files_failed=finish.failed, deleted=finish.deleted)
    finally:
        control.close()


def _plan_and_upload(
    control: ReceiverClient,
    session_id: str,
    source: bytes,
    options: RunOptions,
    settings: StreamSettings,
    stats: RunStats,
) -> None:
    abort = threading.Event()
    errors: list[BaseException] = []
    jobs: queue.Queue[FileJob | None] = queue.Queue(options.streams * _QUEUED_FILES_PER_STREAM)
    clients = [ReceiverClient(options.endpoint) for _ in range(options.streams)]
    try:
        uploaders = [
            Uploader(client, session_id, jobs, settings, stats, abort) for client in clients
        ]
        planner = Planner(
            control, session_id, source, manifest(source, options.walk, stats), jobs, stats, abort
        )

        def plan() -> None:
            planner.run()
            for _ in uploaders:  # one end marker per uploader
                put_unless_aborted(jobs, None, abort)

        threads = [_start(plan, "planner", errors, abort)]
        threads += [_start(u.run, f"upload-{i}", errors, abort) for i, u in enumerate(uploaders)]
        for thread in threads:
            while thread.is_alive():
                thread.join(POLL_S)
    finally:
        abort.set()
        for client in clients:
            client.close()
    if errors:
        first = errors[0]
        raise first if isinstance(first, MigrateError) else MigrateError(repr(first))


def _start(
    work: Callable[[], None], name: str, errors: list[BaseException], abort: threading.Event
) -> threading.Thread:
    def body() -> None:
        try:
            work()
        except BaseException as exc:
            errors.append(exc)
            abort.set()

    thread = threading.Thread(target=body, name=name, daemon=True)
    thread.start()
    return thread
