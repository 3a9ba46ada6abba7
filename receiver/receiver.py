"""The receiver as a whole: its root, its journal and its sessions."""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path

from common import grpc_config
from common.excludes import ExcludeRuleError, ExcludeRules
from common.os_release import read_os_release
from common.pb.migrate.v1 import receiver_pb2 as pb
from common.version import PROTOCOL_VERSION, SOFTWARE_VERSION
from receiver import durability
from receiver.beneath import RootDir
from receiver.durability import SharedSync
from receiver.faults import BadRequest, OverLimit, UnknownSession
from receiver.journal import Journal
from receiver.session import Session, SessionOptions
from receiver.stats import ReceiverStats

log = logging.getLogger(__name__)

# Sessions kept in memory; the oldest finished ones are forgotten first.
MAX_SESSIONS = 64
_IDLE_POLL_S = 0.05


class Receiver:
    def __init__(self, root: Path, state_dir: Path, clock_ns: Callable[[], int]) -> None:
        self.root = RootDir(root)
        self.filesystem = SharedSync(self.root.fd)
        self.root_path = root
        self.journal = Journal(state_dir)
        self.as_root = os.geteuid() == 0
        self.stats = ReceiverStats()
        self._clock_ns = clock_ns
        self._sessions: dict[str, Session] = {}
        self._latest: str = ""
        self._lock = threading.Lock()
        # Partial files stay for resuming; manifests of dead sessions go.
        self.journal.forget_unfinished_sessions()

    def close(self) -> None:
        self.journal.close()
        self.root.close()

    def wait_idle(self, timeout_s: float) -> int:
        """Wait until no stream uses a session, at most `timeout_s`; how many still do.

        A stream that gRPC cancelled at shutdown finishes what it was doing (a
        sync group's commit, say) before it notices; the journal must outlive it.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            with self._lock:
                busy = sum(1 for s in self._sessions.values() if s.in_use)
            if busy == 0 or time.monotonic() >= deadline:
                return busy
            time.sleep(_IDLE_POLL_S)

    # -- sessions ---------------------------------------------------------------

    def hello(self, request: pb.HelloRequest) -> pb.HelloResponse:
        response = self._facts()
        if request.probe:
            return response
        try:
            rules = ExcludeRules.from_wire(request.exclude_rules)
        except ExcludeRuleError as exc:
            raise BadRequest(str(exc)) from exc
        options = SessionOptions(
            rules=rules,
            mirror_deletions=request.mirror_deletions,
            compare_content=request.compare_content,
        )
        session_id = secrets.token_hex(8)
        session = Session(
            session_id,
            self.root,
            self.journal,
            filesystem=self.filesystem,
            options=options,
            stats=self.stats,
            as_root=self.as_root,
            clock_ns=self._clock_ns,
        )
        self.journal.open_session(session_id, request.source_hostname, self._clock_ns())
        with self._lock:
            self._make_room()
            self._sessions[session_id] = session
            self._latest = session_id
        self.stats.session_opened()
        log.info(
            "session %s opened by %s (sender %s)",
            session_id,
            request.source_hostname or "an unnamed host",
            request.sender_version,
        )
        response.session_id = session_id
        return response

    def _facts(self) -> pb.HelloResponse:
        """What the receiver is and holds, as Hello reports it."""
        space = os.statvfs(self.root.fd)
        target_os = read_os_release(self.root_path)
        if not target_os.known:
            target_os = read_os_release(Path("/"))
        return pb.HelloResponse(
            protocol_version=PROTOCOL_VERSION,
            receiver_version=SOFTWARE_VERSION,
            receiver_time_unix_ns=self._clock_ns(),
            max_frame_raw_bytes=grpc_config.MAX_FRAME_RAW_BYTES,
            max_message_bytes=grpc_config.MAX_MESSAGE_BYTES,
            free_bytes=space.f_bavail * space.f_frsize,
            free_inodes=space.f_favail,
            receiver_is_root=self.as_root,
            sync_group_bytes=durability.GROUP_BYTES,
            target_os_id=target_os.id,
            target_os_like=" ".join(target_os.id_like),
            target_os_version=target_os.version_id,
        )

    def _make_room(self) -> None:
        """Forget the oldest session no stream is using, once MAX_SESSIONS are kept.

        Sessions of senders that died or gave up are never finished; they must
        not lock out the next run.
        """
        if len(self._sessions) < MAX_SESSIONS:
            return
        idle = next((s for s in self._sessions.values() if not s.in_use), None)
        if idle is None:
            raise OverLimit(f"{MAX_SESSIONS} sessions are in use at once")
        del self._sessions[idle.id]
        if not idle.progress.finished:
            self.journal.forget_session(idle.id)
            self.stats.session_closed()

    def session(self, session_id: str) -> Session:
        """The session a data call names; the id is required, never guessed."""
        with self._lock:
            session = self._sessions.get(session_id)
        if session is None:
            raise UnknownSession(f"no session {session_id!r}; call Hello first")
        return session

    def status(self, session_id: str) -> pb.StatusResponse:
        """Progress of a session; of the latest one when no id is given."""
        if not (session_id or self._latest):
            return pb.StatusResponse()
        session = self.session(session_id or self._latest)
        p = session.progress
        return pb.StatusResponse(
            session_id=session.id,
            entries_planned=p.entries_planned,
            files_to_send=p.files_to_send,
            files_committed=p.files_committed,
            bytes_durable=p.bytes_durable,
            bytes_to_send=p.bytes_to_send,
            finished=p.finished,
        )
