"""Records store: students, attendance and the gallery's current-version pointer.

The pointer moves only by compare-and-set, so concurrent enrollments never lose each other's work.

Erasure leaves a tombstone (the student id and when it was erased). Every write that could bring
a student back (an attendance mark, a gallery commit, the student record) takes the time its work
was asked for, ``not_erased_since``, and is refused with StudentErased, in the same transaction or
conditional write, when the student was erased at or after that time. Work asked for after the
erasure (a new enrollment) goes ahead.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import parse_qs, urlsplit

from attendance.domain.errors import StudentErased
from attendance.domain.schemas import AttendanceRecord, AuditEntry, Student

if TYPE_CHECKING:
    from attendance.config.settings import Settings


@dataclass(frozen=True)
class GalleryPointer:
    version: int
    manifest_key: str


_STAMP = "%Y-%m-%dT%H:%M:%S.%fZ"


def stamp(at: dt.datetime) -> str:
    """A UTC time as fixed-width text, so stored times compare as strings do."""
    return at.astimezone(dt.UTC).strftime(_STAMP)


def erased_message(student_id: str) -> str:
    return f"student {student_id!r} was erased after this work was asked for"


class RecordsStore(Protocol):
    def upsert_student(
        self,
        student_id: str,
        name: str,
        class_id: str | None,
        *,
        not_erased_since: dt.datetime | None = None,
    ) -> None:
        """Create or update the student; StudentErased if erased at or after not_erased_since."""
        ...

    def rename_student(self, student_id: str, name: str) -> bool:
        """Change the name of an existing student; False if there is no such student."""
        ...

    def get_student(self, student_id: str) -> Student | None: ...

    def list_students(self, class_id: str | None = None) -> list[Student]: ...

    def class_exists(self, class_id: str) -> bool: ...

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        """Insert unless (class_id, date, student_id) exists; True if this call inserted it.
        Either way the record's job is noted among the jobs that saw the student. StudentErased,
        writing nothing, if the student was erased at or after not_erased_since."""
        ...

    def attendance_jobs(self, student_id: str) -> set[str]:
        """Every recognition job that marked the student or saw them again."""
        ...

    def list_attendance(
        self,
        class_id: str | None = None,
        date_from: dt.date | None = None,
        date_to: dt.date | None = None,
        student_id: str | None = None,
    ) -> list[AttendanceRecord]: ...

    def get_gallery_pointer(self) -> GalleryPointer | None: ...

    def swap_gallery_pointer(
        self,
        expected_version: int,
        new: GalleryPointer,
        *,
        guard: tuple[str, dt.datetime] | None = None,
    ) -> bool:
        """Point at ``new`` only if the current version is still ``expected_version`` (0: none).
        ``guard`` (student_id, not_erased_since): StudentErased instead, if that student was
        erased at or after that time."""
        ...

    def record_erasure(self, student_id: str, at: dt.datetime) -> None:
        """Leave (or move forward) the student's tombstone."""
        ...

    def erased_since(self, student_ids: Iterable[str], since: dt.datetime) -> set[str]:
        """Those of the students erased at or after ``since``."""
        ...

    def delete_student(self, student_id: str) -> bool:
        """Remove the student and their class memberships; True if they existed."""
        ...

    def delete_attendance(self, student_id: str) -> int:
        """Remove every attendance record of the student; return how many there were."""
        ...

    def append_audit(self, entry: AuditEntry) -> None: ...

    def list_audit(self, limit: int = 100) -> list[AuditEntry]:
        """The most recent entries first."""
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


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


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
                (student_id, name, _now()),
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
                (new.version, new.manifest_key, _now()),
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


# DynamoDB table names are 3-255 of [A-Za-z0-9_.-]; the prefix leaves room for "-class-members".
_TABLE_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,200}$")
_DYNAMODB_OPTIONS = ("region", "endpoint_url", "page_size")


@dataclass(frozen=True)
class DynamoUrl:
    table_prefix: str
    region: str | None = None
    endpoint_url: str | None = None
    page_size: int | None = None  # Limit per Query/Scan page; None: DynamoDB's 1 MB pages


def parse_dynamodb_url(url: str) -> DynamoUrl:
    """``dynamodb://<table-prefix>[?region=...][&endpoint_url=...][&page_size=...]``."""
    parts = urlsplit(url)
    if parts.scheme != "dynamodb":
        raise ValueError(f"not a dynamodb:// URL: {url!r}")
    if not _TABLE_PREFIX.fullmatch(parts.netloc) or parts.path not in ("", "/"):
        raise ValueError(
            "records_url must be dynamodb://<table-prefix>?region=...: the prefix is 1-200 of "
            f"letters, digits, '_', '.' or '-', got {parts.netloc + parts.path!r}"
        )
    query = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = sorted(set(query) - set(_DYNAMODB_OPTIONS))
    if unknown:
        raise ValueError(
            f"unknown records_url option(s) {', '.join(unknown)}; "
            f"known: {', '.join(_DYNAMODB_OPTIONS)}"
        )
    options = {}
    for key, values in query.items():
        if len(values) != 1 or not values[0]:
            raise ValueError(f"records_url option {key} needs exactly one non-empty value")
        options[key] = values[0]
    endpoint = options.get("endpoint_url")
    if endpoint is not None and not re.match(r"^https?://[^/?#\s]+/?$", endpoint):
        raise ValueError(
            f"records_url endpoint_url must be http(s)://host[:port], got {endpoint!r}"
        )
    page_size = options.get("page_size")
    if page_size is not None:
        if not page_size.isdigit() or not 1 <= int(page_size) <= 1000:
            raise ValueError("records_url page_size must be an integer from 1 to 1000")
    return DynamoUrl(
        table_prefix=parts.netloc,
        region=options.get("region"),
        endpoint_url=endpoint.rstrip("/") if endpoint else None,
        page_size=int(page_size) if page_size else None,
    )


def open_records(url: str, settings: Settings | None = None) -> RecordsStore:
    """The store a URL names; cloud clients take their timeouts and retries from ``settings``
    (defaults when None). SQLite creates its file now; DynamoDB contacts AWS on first use."""
    if url.startswith("sqlite:///"):
        return SqliteRecords(Path(url[len("sqlite:///") :]))
    if url.startswith("dynamodb://"):
        from attendance.stores.records.dynamodb import DynamoRecords

        return DynamoRecords.from_url(url, settings)
    raise ValueError(f"unsupported records URL: {url}")
