"""Job state in SQLite (WAL): safe for many threads and processes at once.

Writes run in ``BEGIN IMMEDIATE`` transactions, so that claiming the next queued job (and
checking the concurrency limit) is atomic across every manager sharing the database.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    owner     TEXT NOT NULL,
    status    TEXT NOT NULL,
    created   REAL NOT NULL,
    started   REAL,
    finished  REAL,
    kernel    TEXT,
    python    TEXT,
    folder    TEXT NOT NULL,
    pid       INTEGER,
    pid_start TEXT,
    error     TEXT,
    progress  TEXT NOT NULL DEFAULT '{}',
    metrics   TEXT NOT NULL DEFAULT '{}',
    resources TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, created);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, created);
"""

JSON_COLUMNS = ("progress", "metrics", "resources")


class JobStore:
    """Rows of the ``jobs`` table as dicts (JSON columns decoded)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        # the owner's only: SQLite gives its -wal and -shm files the database file's mode
        os.close(os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600))
        for suffix in ("", "-wal", "-shm"):
            try:
                os.chmod(f"{self.path}{suffix}", 0o600)
            except (FileNotFoundError, PermissionError):
                pass  # not there yet, or another user's: theirs to keep private
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=60, isolation_level=None, check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA busy_timeout=60000")
        with self.transaction() as db:  # executescript() would commit on its own; one statement at a time
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    db.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict[str, Any] | None:
        if row is None:
            return None
        out = dict(row)
        for key in JSON_COLUMNS:
            out[key] = json.loads(out[key] or "{}")
        return out

    def insert(self, **row: Any) -> None:
        for key in JSON_COLUMNS:
            row[key] = json.dumps(row.get(key) or {})
        columns = ", ".join(row)
        marks = ", ".join("?" for _ in row)
        with self.transaction() as db:
            db.execute(f"INSERT INTO jobs ({columns}) VALUES ({marks})", tuple(row.values()))

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self._lock:
            return self._row(self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone())

    def list(self, owner: str | None = None, status: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        query, args = "SELECT * FROM jobs", []
        clauses = []
        if owner is not None:
            clauses.append("owner = ?")
            args.append(owner)
        if status:
            clauses.append(f"status IN ({', '.join('?' for _ in status)})")
            args += list(status)
        if clauses:
            query += " WHERE " + " AND ".join(clauses)
        with self._lock:
            return [self._row(r) for r in self._db.execute(query + " ORDER BY created, id", args).fetchall()]

    def update(self, job_id: str, *, only_if_status: tuple[str, ...] = (), **fields: Any) -> bool:
        """Set fields; with ``only_if_status`` only when the job is in one of those states.
        Returns whether a row changed."""
        for key in JSON_COLUMNS:
            if key in fields:
                fields[key] = json.dumps(fields[key] or {})
        sets = ", ".join(f"{k} = ?" for k in fields)
        query, args = f"UPDATE jobs SET {sets} WHERE id = ?", [*fields.values(), job_id]
        if only_if_status:
            query += f" AND status IN ({', '.join('?' for _ in only_if_status)})"
            args += list(only_if_status)
        with self.transaction() as db:
            return db.execute(query, args).rowcount > 0

    def claim_next(self, limit: int) -> dict[str, Any] | None:
        """Atomically mark the oldest queued job running, if fewer than ``limit`` run."""
        with self.transaction() as db:
            running = db.execute("SELECT COUNT(*) FROM jobs WHERE status = 'running'").fetchone()[0]
            if running >= limit:
                return None
            row = db.execute("SELECT id FROM jobs WHERE status = 'queued' ORDER BY created, id LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute("UPDATE jobs SET status = 'running', started = ?, pid = NULL WHERE id = ?",
                       (time.time(), row["id"]))
            return self._row(db.execute("SELECT * FROM jobs WHERE id = ?", (row["id"],)).fetchone())

    def delete(self, job_id: str) -> bool:
        with self.transaction() as db:
            return db.execute("DELETE FROM jobs WHERE id = ?", (job_id,)).rowcount > 0
