"""Records store: students, attendance and the gallery's current-version pointer.

The pointer moves only by compare-and-set, so concurrent enrollments never lose each other's work.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Protocol

from common.schemas import AttendanceRecord, Student


@dataclass(frozen=True)
class GalleryPointer:
    version: int
    manifest_key: str


class RecordsStore(Protocol):
    def upsert_student(self, student_id: str, name: str, class_id: str | None) -> None: ...

    def get_student(self, student_id: str) -> Student | None: ...

    def list_students(self, class_id: str | None = None) -> list[Student]: ...

    def class_exists(self, class_id: str) -> bool: ...

    def mark_present(self, record: AttendanceRecord) -> bool:
        """Insert unless (class_id, date, student_id) exists; True if this call inserted it."""
        ...

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
    ) -> list[AttendanceRecord]: ...

    def get_gallery_pointer(self) -> GalleryPointer | None: ...

    def swap_gallery_pointer(self, expected_version: int, new: GalleryPointer) -> bool:
        """Point at ``new`` only if the current version is still ``expected_version`` (0: none)."""
        ...

    def ping(self) -> None: ...


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
CREATE TABLE IF NOT EXISTS gallery_pointer (
    scope TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    manifest_key TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
"""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


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

    def upsert_student(self, student_id: str, name: str, class_id: str | None) -> None:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO students (student_id, name, created_at) VALUES (?, ?, ?) "
                "ON CONFLICT(student_id) DO UPDATE SET name = excluded.name",
                (student_id, name, _now()),
            )
            if class_id:
                conn.execute(
                    "INSERT OR IGNORE INTO student_classes (student_id, class_id) VALUES (?, ?)",
                    (student_id, class_id),
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

    def mark_present(self, record: AttendanceRecord) -> bool:
        with self._tx() as conn:
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

    def swap_gallery_pointer(self, expected_version: int, new: GalleryPointer) -> bool:
        with self._tx() as conn:
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
                (new.version, new.manifest_key, _now()),
            )
            return True

    def ping(self) -> None:
        with self._conn() as conn:
            conn.execute("SELECT 1 FROM gallery_pointer LIMIT 1").fetchall()


def open_records(url: str) -> RecordsStore:
    if url.startswith("sqlite:///"):
        return SqliteRecords(Path(url[len("sqlite:///"):]))
    raise ValueError(f"unsupported records URL: {url}")
