"""The receiver's journal: SQLite in WAL mode in the state directory.

It holds each session's manifest (entries that still need work: files to be
sent, directories whose metadata comes last, hardlinks), so memory stays flat
whatever the tree size. A file's temporary name is chosen and recorded when it
is planned, in the same transaction as the rest of its batch, before the file
exists: a crash leaves no temporary file the next start does not know about.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from common.pb.migrate.v1 import receiver_pb2 as pb

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
    data BLOB NOT NULL,
    temp_name BLOB,
    PRIMARY KEY (session, id)
) WITHOUT ROWID;
"""

# Entry states.
PENDING = 0
COMMITTED = 1
FAILED = 2


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
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            # FULL: a commit is on disk before the receiver acknowledges it.
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _transaction(self, statements: Iterable[tuple[str, tuple[object, ...]]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                for sql, params in statements:
                    self._db.execute(sql, params)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- sessions ---------------------------------------------------------------

    def open_session(self, session_id: str, source: str, now_ns: int) -> None:
        self._transaction(
            [
                (
                    "INSERT INTO session (id, source, started_ns) VALUES (?, ?, ?)",
                    (session_id, source, now_ns),
                )
            ]
        )

    def finish_session(self, session_id: str, now_ns: int) -> None:
        self._transaction(
            [
                ("UPDATE session SET finished_ns = ? WHERE id = ?", (now_ns, session_id)),
                ("DELETE FROM entry WHERE session = ?", (session_id,)),
            ]
        )

    def forget_unfinished_sessions(self) -> None:
        """Drop manifests of sessions a previous process left open."""
        self._transaction([("DELETE FROM entry", ())])

    # -- entries ----------------------------------------------------------------

    def add_entries(
        self, session_id: str, entries: Iterable[tuple[pb.Entry, bytes | None]]
    ) -> None:
        """Record (entry, temporary name or None) pairs in one transaction."""
        self._transaction(
            (
                "INSERT OR REPLACE INTO entry (session, id, kind, state, data, temp_name)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (session_id, e.id, e.kind, PENDING, e.SerializeToString(), temp),
            )
            for e, temp in entries
        )

    def pending_file(self, session_id: str, entry_id: int) -> tuple[pb.Entry, bytes] | None:
        """A file planned for sending and not yet done, with its temporary name."""
        with self._lock:
            row = self._db.execute(
                "SELECT data, temp_name FROM entry"
                " WHERE session = ? AND id = ? AND state = ? AND kind = ?",
                (session_id, entry_id, PENDING, pb.ENTRY_KIND_FILE),
            ).fetchone()
        return None if row is None else (pb.Entry.FromString(row[0]), bytes(row[1]))

    def set_states(self, session_id: str, states: Iterable[tuple[int, int]]) -> None:
        """Record (entry id, state) pairs in one transaction."""
        self._transaction(
            ("UPDATE entry SET state = ? WHERE session = ? AND id = ?", (state, session_id, id_))
            for id_, state in states
        )

    def pending(self, session_id: str, kind: int, *, deepest_first: bool) -> Iterator[pb.Entry]:
        """Pending entries of one kind, in manifest order or its reverse.

        The manifest is in walk order, a directory before its contents, so
        the reverse visits every directory after everything inside it.
        """
        order = "DESC" if deepest_first else "ASC"
        last = None
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, data FROM entry WHERE session = ? AND kind = ? AND state = ?"
                    + ("" if last is None else f" AND id {'<' if deepest_first else '>'} ?")
                    + f" ORDER BY id {order} LIMIT 1000",
                    (session_id, kind, PENDING) + (() if last is None else (last,)),
                ).fetchall()
            if not rows:
                return
            for row_id, data in rows:
                yield pb.Entry.FromString(data)
                last = row_id

    def count(self, session_id: str, state: int | None = None) -> int:
        sql = "SELECT count(*) FROM entry WHERE session = ? AND kind = ?"
        params: tuple[object, ...] = (session_id, pb.ENTRY_KIND_FILE)
        if state is not None:
            sql += " AND state = ?"
            params += (state,)
        with self._lock:
            return int(self._db.execute(sql, params).fetchone()[0])

    # -- temporary files --------------------------------------------------------

    def leftover_temp_files(self) -> list[tuple[bytes, bytes]]:
        """(path, temporary name) of every file planned but not committed."""
        with self._lock:
            rows = self._db.execute(
                "SELECT data, temp_name FROM entry WHERE temp_name IS NOT NULL AND state != ?",
                (COMMITTED,),
            ).fetchall()
        return [(pb.Entry.FromString(data).path, bytes(temp)) for data, temp in rows]
