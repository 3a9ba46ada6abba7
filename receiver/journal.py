"""The receiver's journal: SQLite in WAL mode in the state directory.

It holds each session's manifest (entries that still need work: files to be
sent, directories whose metadata comes last, hardlinks; with --delete, every
path named), so memory stays flat whatever the tree size; and the partial
files, each with its temporary name, the source fingerprint it was started
from and its durable offset, so an interrupted transfer resumes where the
acknowledgements stopped.

A partial file's row is written before the file exists, in the same
transaction as its plan batch: no temporary file is ever unknown to the
journal.
"""

from __future__ import annotations

import itertools
import operator
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from common.pb.migrate.v1 import receiver_pb2 as pb
from receiver.faults import ReceiverStopping

# Paths per `IN (...)` query, well under SQLite's limit on bound parameters.
_PATHS_PER_QUERY = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS session (
    id TEXT PRIMARY KEY,
    source TEXT NOT NULL,
    started_ns INTEGER NOT NULL,
    finished_ns INTEGER
);
CREATE TABLE IF NOT EXISTS entry (
    session TEXT NOT NULL,
    id INTEGER NOT NULL,
    kind INTEGER NOT NULL,
    state INTEGER NOT NULL,
    delta INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (session, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS named (
    session TEXT NOT NULL,
    path BLOB NOT NULL,
    PRIMARY KEY (session, path)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS partial (
    path BLOB PRIMARY KEY,
    temp_name BLOB NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    durable_offset INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Entry states.
PENDING = 0
COMMITTED = 1
FAILED = 2


@dataclass(frozen=True)
class Partial:
    """A file being received: where it is and how far it is durable."""

    path: bytes
    temp_name: bytes
    size: int
    mtime_ns: int
    ctime_ns: int
    durable_offset: int

    def started_from(self, entry: pb.Entry) -> bool:
        """Whether the source is still the one this partial file was started from."""
        return (self.size, self.mtime_ns, self.ctime_ns) == (
            entry.size,
            entry.mtime_ns,
            entry.ctime_ns,
        )

    @classmethod
    def fresh(cls, entry: pb.Entry, temp_name: bytes) -> Partial:
        return cls(entry.path, temp_name, entry.size, entry.mtime_ns, entry.ctime_ns, 0)


Statement = tuple[str, tuple[object, ...]]


class Journal:
    """One SQLite connection shared by the receiver's threads under a lock.

    Writes are grouped by the callers (one transaction per plan batch or per
    sync group), so the lock is taken a few times per second, not per file.
    """

    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / "journal.sqlite3"
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._closed = False
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the receiver acknowledges it.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._db.close()

    def _open_db(self) -> sqlite3.Connection:
        """The connection (the caller holds the lock). A stream the shutdown left
        running gets a clean refusal, not sqlite's error on a closed database."""
        if self._closed:
            raise ReceiverStopping("the receiver is stopping: nothing more is journaled")
        return self._db

    def transaction(self, statements: Iterable[Statement]) -> None:
        with self._lock:
            db = self._open_db()
            db.execute("BEGIN")
            try:
                # A sync group's statements come in runs of the same SQL (one
                # per file); executemany runs each without a Python round per row.
                for sql, run in itertools.groupby(statements, key=operator.itemgetter(0)):
                    db.executemany(sql, (params for _, params in run))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _rows(self, sql: str, params: tuple[object, ...]) -> list[tuple[object, ...]]:
        with self._lock:
            return self._open_db().execute(sql, params).fetchall()

    # -- sessions ---------------------------------------------------------------

    def open_session(self, session_id: str, source: str, now_ns: int) -> None:
        self.transaction(
            [
                (
                    "INSERT INTO session (id, source, started_ns) VALUES (?, ?, ?)",
                    (session_id, source, now_ns),
                )
            ]
        )

    def finish_session(self, session_id: str, now_ns: int) -> None:
        self.transaction(
            [
                ("UPDATE session SET finished_ns = ? WHERE id = ?", (now_ns, session_id)),
                ("DELETE FROM entry WHERE session = ?", (session_id,)),
                ("DELETE FROM named WHERE session = ?", (session_id,)),
            ]
        )

    def forget_session(self, session_id: str) -> None:
        """Drop a session's manifest; its partial files stay for resuming."""
        self.transaction(
            [
                ("DELETE FROM entry WHERE session = ?", (session_id,)),
                ("DELETE FROM named WHERE session = ?", (session_id,)),
            ]
        )

    def forget_unfinished_sessions(self) -> None:
        """Drop manifests of sessions a previous process left open; partials stay."""
        self.transaction([("DELETE FROM entry", ()), ("DELETE FROM named", ())])

    # -- entries ----------------------------------------------------------------

    @staticmethod
    def add_entry(session_id: str, entry: pb.Entry, *, delta: bool = False) -> Statement:
        return (
            "INSERT OR REPLACE INTO entry (session, id, kind, state, delta, data)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (session_id, entry.id, entry.kind, PENDING, delta, entry.SerializeToString()),
        )

    @staticmethod
    def name_path(session_id: str, path: bytes) -> Statement:
        return ("INSERT OR IGNORE INTO named (session, path) VALUES (?, ?)", (session_id, path))

    @staticmethod
    def set_state(session_id: str, entry_id: int, state: int) -> Statement:
        return (
            "UPDATE entry SET state = ? WHERE session = ? AND id = ?",
            (state, session_id, entry_id),
        )

    def pending_file(self, session_id: str, entry_id: int) -> tuple[pb.Entry, bool] | None:
        """A file planned for sending and not yet done, and whether it goes by delta."""
        rows = self._rows(
            "SELECT data, delta FROM entry WHERE session = ? AND id = ? AND state = ? AND kind = ?",
            (session_id, entry_id, PENDING, pb.ENTRY_KIND_FILE),
        )
        if not rows:
            return None
        data, delta = rows[0]
        return pb.Entry.FromString(data), bool(delta)  # type: ignore[arg-type]

    def pending(self, session_id: str, kind: int, *, deepest_first: bool) -> Iterator[pb.Entry]:
        """Pending entries of one kind, in manifest order or its reverse.

        The manifest is in walk order, a directory before its contents, so
        the reverse visits every directory after everything inside it.
        """
        order, beyond = ("DESC", "<") if deepest_first else ("ASC", ">")
        last: int | None = None
        while True:
            sql = "SELECT id, data FROM entry WHERE session = ? AND kind = ? AND state = ?"
            params: tuple[object, ...] = (session_id, kind, PENDING)
            if last is not None:
                sql += f" AND id {beyond} ?"
                params += (last,)
            rows = self._rows(sql + f" ORDER BY id {order} LIMIT 1000", params)
            if not rows:
                return
            for row_id, data in rows:
                yield pb.Entry.FromString(data)  # type: ignore[arg-type]
                last = row_id  # type: ignore[assignment]

    def is_named(self, session_id: str, path: bytes) -> bool:
        return bool(
            self._rows("SELECT 1 FROM named WHERE session = ? AND path = ?", (session_id, path))
        )

    # -- partial files ----------------------------------------------------------

    @staticmethod
    def put_partial(partial: Partial) -> Statement:
        return (
            "INSERT OR REPLACE INTO partial VALUES (?, ?, ?, ?, ?, ?)",
            (
                partial.path,
                partial.temp_name,
                partial.size,
                partial.mtime_ns,
                partial.ctime_ns,
                partial.durable_offset,
            ),
        )

    @staticmethod
    def set_durable(path: bytes, offset: int) -> Statement:
        return ("UPDATE partial SET durable_offset = ? WHERE path = ?", (offset, path))

    @staticmethod
    def drop_partial(path: bytes) -> Statement:
        return ("DELETE FROM partial WHERE path = ?", (path,))

    def partial(self, path: bytes) -> Partial | None:
        rows = self._rows("SELECT * FROM partial WHERE path = ?", (path,))
        return _partial(rows[0]) if rows else None

    def partials_of(self, paths: Sequence[bytes]) -> dict[bytes, Partial]:
        """The partial files of those of `paths` that have one, by path."""
        found: dict[bytes, Partial] = {}
        for start in range(0, len(paths), _PATHS_PER_QUERY):
            chunk = paths[start : start + _PATHS_PER_QUERY]
            marks = ", ".join("?" * len(chunk))
            for row in self._rows(f"SELECT * FROM partial WHERE path IN ({marks})", tuple(chunk)):
                partial = _partial(row)
                found[partial.path] = partial
        return found

    def partials(self) -> Iterator[Partial]:
        """Every partial file, in path order, without holding them all in memory."""
        last = b""
        while True:
            rows = self._rows(
                "SELECT * FROM partial WHERE path > ? ORDER BY path LIMIT 1000", (last,)
            )
            if not rows:
                return
            for row in rows:
                partial = _partial(row)
                yield partial
                last = partial.path


def _partial(row: tuple[object, ...]) -> Partial:
    path, temp, size, mtime, ctime, durable = row
    return Partial(bytes(path), bytes(temp), int(size), int(mtime), int(ctime), int(durable))  # type: ignore[arg-type,call-overload]
