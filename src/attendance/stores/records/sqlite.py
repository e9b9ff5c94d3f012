"""Records store on SQLite: ``sqlite:///<path>``, one file on one machine."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from attendance.domain.errors import StudentErased
from attendance.domain.schemas import AttendanceRecord, AuditEntry, Student
from attendance.stores.records.base import GalleryPointer, erased_message, stamp, utc_now_iso

_SCHEMA = """
CREATE TABLE IF NOT EXISTS students (
    student_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS student_classes (
    student_id TEXT NOT NULL REFERENCES students(student_id),
    class_id TEXT NOT NULL,
    PRIMARY KEY (class_id, student_id)
);
CREATE TABLE IF NOT EXISTS attendance (
    class_id TEXT NOT NULL,
    date TEXT NOT NULL,
    student_id TEXT NOT NULL,
    name TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    distance REAL NOT NULL,
    job_id TEXT,
    PRIMARY KEY (class_id, date, student_id)
);
CREATE INDEX IF NOT EXISTS attendance_by_student ON attendance (student_id, date);
CREATE TABLE IF NOT EXISTS attendance_jobs (
    student_id TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (student_id, job_id)
);
CREATE TABLE IF NOT EXISTS erasures (
    student_id TEXT PRIMARY KEY,
    erased_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS gallery_pointer (
    scope TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    manifest_key TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


class SqliteRecords:
    """SQLite in WAL mode; one short connection per operation so it is safe across forks."""

    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.executescript(_SCHEMA)

    @contextmanager
    def _conn(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    @staticmethod
    def _refuse_if_erased(
        conn: sqlite3.Connection, student_id: str, since: dt.datetime | None
    ) -> None:
        if since is None:
            return
        row = conn.execute(
            "SELECT 1 FROM erasures WHERE student_id = ? AND erased_at >= ?",
            (student_id, stamp(since)),
        ).fetchone()
        if row is not None:
            raise StudentErased(erased_message(student_id))

    def upsert_student(
        self,
        student_id: str,
        name: str,
        class_id: str | None,
        *,
        not_erased_since: dt.datetime | None = None,
    ) -> None:
        with self._tx() as conn:
            self._refuse_if_erased(conn, student_id, not_erased_since)
            conn.execute(
                "INSERT INTO students (student_id, name, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(student_id) DO UPDATE SET name = excluded.name",
                (student_id, name, utc_now_iso()),
            )
            if class_id:
                conn.execute(
                    "INSERT OR IGNORE INTO student_classes (student_id, class_id) VALUES (?, ?)",
                    (student_id, class_id),
                )

    def rename_student(self, student_id: str, name: str) -> bool:
        with self._tx() as conn:
            return (
                conn.execute(
                    "UPDATE students SET name = ? WHERE student_id = ?", (name, student_id)
                ).rowcount
                == 1
            )

    def _students(self, where: str, args: tuple) -> list[Student]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT s.student_id, s.name, "
                "(SELECT group_concat(class_id, char(31)) FROM "
                "  (SELECT class_id FROM student_classes c WHERE c.student_id = s.student_id "
                "   ORDER BY class_id)) AS class_ids "
                f"FROM students s {where} ORDER BY s.student_id",
                args,
            ).fetchall()
        return [
            Student(
                student_id=row["student_id"],
                name=row["name"],
                class_ids=row["class_ids"].split("\x1f") if row["class_ids"] else [],
            )
            for row in rows
        ]

    def get_student(self, student_id: str) -> Student | None:
        found = self._students("WHERE s.student_id = ?", (student_id,))
        return found[0] if found else None

    def list_students(self, class_id: str | None = None) -> list[Student]:
        if class_id is None:
            return self._students("", ())
        return self._students(
            "WHERE s.student_id IN (SELECT student_id FROM student_classes WHERE class_id = ?)",
            (class_id,),
        )

    def class_exists(self, class_id: str) -> bool:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT 1 FROM student_classes WHERE class_id = ? LIMIT 1", (class_id,)
            ).fetchone()
        return row is not None

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        with self._tx() as conn:
            self._refuse_if_erased(conn, record.student_id, not_erased_since)
            if record.job_id:
                conn.execute(
                    "INSERT OR IGNORE INTO attendance_jobs (student_id, job_id) VALUES (?, ?)",
                    (record.student_id, record.job_id),
                )
            cur = conn.execute(
                "INSERT OR IGNORE INTO attendance "
                "(class_id, date, student_id, name, first_seen_at, distance, job_id) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    record.class_id,
                    record.date.isoformat(),
                    record.student_id,
                    record.name,
                    record.first_seen_at.isoformat(),
                    record.distance,
                    record.job_id,
                ),
            )
            return cur.rowcount == 1

    def attendance_jobs(self, student_id: str) -> set[str]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT job_id FROM attendance_jobs WHERE student_id = ? "
                "UNION SELECT job_id FROM attendance WHERE student_id = ? "
                "AND job_id IS NOT NULL",
                (student_id, student_id),
            ).fetchall()
        return {row["job_id"] for row in rows}

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
    ) -> list[AttendanceRecord]:
        clauses, args = [], []
        for column, op, value in (
            ("class_id", "=", class_id),
            ("date", ">=", date_from.isoformat() if date_from else None),
            ("date", "<=", date_to.isoformat() if date_to else None),
            ("student_id", "=", student_id),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT * FROM attendance {where} ORDER BY date, class_id, student_id", args
            ).fetchall()
        return [AttendanceRecord(**dict(row)) for row in rows]

    def get_gallery_pointer(self) -> GalleryPointer | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT version, manifest_key FROM gallery_pointer WHERE scope = 'global'"
            ).fetchone()
        return GalleryPointer(row["version"], row["manifest_key"]) if row else None

    def swap_gallery_pointer(
        self,
        expected_version: int,
        new: GalleryPointer,
        *,
        guard: tuple[str, dt.datetime] | None = None,
    ) -> bool:
        with self._tx() as conn:
            if guard is not None:
                self._refuse_if_erased(conn, *guard)
            row = conn.execute(
                "SELECT version FROM gallery_pointer WHERE scope = 'global'"
            ).fetchone()
            current = row["version"] if row else 0
            if current != expected_version:
                return False
            conn.execute(
                "INSERT INTO gallery_pointer (scope, version, manifest_key, updated_at) "
                "VALUES ('global', ?, ?, ?) ON CONFLICT(scope) DO UPDATE SET "
                "version = excluded.version, manifest_key = excluded.manifest_key, "
                "updated_at = excluded.updated_at",
                (new.version, new.manifest_key, utc_now_iso()),
            )
            return True

    def delete_student(self, student_id: str) -> bool:
        with self._tx() as conn:
            conn.execute("DELETE FROM student_classes WHERE student_id = ?", (student_id,))
            return (
                conn.execute("DELETE FROM students WHERE student_id = ?", (student_id,)).rowcount
                == 1
            )

    def delete_attendance(self, student_id: str) -> int:
        with self._tx() as conn:
            conn.execute("DELETE FROM attendance_jobs WHERE student_id = ?", (student_id,))
            return conn.execute(
                "DELETE FROM attendance WHERE student_id = ?", (student_id,)
            ).rowcount

    def record_erasure(self, student_id: str, at: dt.datetime) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO erasures (student_id, erased_at) VALUES (?, ?) "
                "ON CONFLICT(student_id) DO UPDATE SET erased_at = "
                "max(erased_at, excluded.erased_at)",
                (student_id, stamp(at)),
            )

    def erased_since(self, student_ids: Iterable[str], since: dt.datetime) -> set[str]:
        ids = sorted(set(student_ids))
        found: set[str] = set()
        with self._conn() as conn:
            for start in range(0, len(ids), 500):  # below SQLite's limit on parameters
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    f"SELECT student_id FROM erasures WHERE erased_at >= ? AND student_id IN "
                    f"({', '.join('?' * len(chunk))})",
                    (stamp(since), *chunk),
                ).fetchall()
                found.update(row["student_id"] for row in rows)
        return found

    def append_audit(self, entry: AuditEntry) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
                (
                    entry.at.isoformat(),
                    entry.actor,
                    entry.action,
                    entry.target,
                    json.dumps(entry.detail, sort_keys=True),
                ),
            )

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT at, actor, action, target, detail FROM audit ORDER BY seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            AuditEntry(
                at=r["at"],
                actor=r["actor"],
                action=r["action"],
                target=r["target"],
                detail=json.loads(r["detail"]),
            )
            for r in rows
        ]

    def ping(self) -> None:
        with self._conn() as conn:
            conn.execute("SELECT 1 FROM gallery_pointer LIMIT 1").fetchall()
