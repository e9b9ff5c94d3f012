"""Records store on SQLite: ``sqlite:///<path>``, one file on one machine."""

from __future__ import annotations

import datetime as dt
import errno
import json
import logging
import os
import re
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from attendance.domain.accounts import Account
from attendance.domain.errors import (
    MarkChanged,
    RegisterFinalized,
    StorageFull,
    StoreBusy,
    StudentErased,
)
from attendance.domain.schemas import (
    AttendanceRecord,
    AuditEntry,
    Consent,
    RegisterLock,
    Student,
)
from attendance.stores.records.base import (
    Expected,
    GalleryPointer,
    changed_message,
    erased_message,
    stamp,
    utc_now_iso,
)

log = logging.getLogger(__name__)

# SQLite's primary result codes (an extended code keeps its primary one in the low byte).
_SQLITE_BUSY, _SQLITE_LOCKED, _SQLITE_READONLY = 5, 6, 8
_SQLITE_IOERR, _SQLITE_FULL, _SQLITE_CANTOPEN = 10, 13, 14
STORAGE_FULL_MESSAGE = (
    "storage full: the records database (SQLite) has no space left on its disk; nothing was "
    "written. Free space on it and try again"
)

# One mark per register (class, date, period) and student. distance is NULL for a mark a
# teacher made by hand.
_ATTENDANCE_COLUMNS = """
    class_id TEXT NOT NULL,
    date TEXT NOT NULL,
    period TEXT NOT NULL DEFAULT '',
    student_id TEXT NOT NULL,
    name TEXT NOT NULL,
    first_seen_at TEXT NOT NULL,
    distance REAL,
    job_id TEXT,
    status TEXT NOT NULL DEFAULT 'present',
    source TEXT NOT NULL DEFAULT 'face',
    marked_by TEXT,
    marked_at TEXT,
    note TEXT,
    photo INTEGER,
    face INTEGER,
    box TEXT,
    captured_at TEXT,
    PRIMARY KEY (class_id, date, period, student_id)
""".strip("\n")
# Columns added after registers had periods, each nullable: an older table gains them as they
# are (ADD COLUMN), its rows with none. box is the Box as JSON.
_EVIDENCE_COLUMNS = (
    ("photo", "INTEGER"),
    ("face", "INTEGER"),
    ("box", "TEXT"),
    ("captured_at", "TEXT"),
)

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
{attendance_columns}
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
CREATE TABLE IF NOT EXISTS consents (
    student_id TEXT PRIMARY KEY,
    given_by TEXT NOT NULL,
    relationship TEXT NOT NULL,
    given_on TEXT NOT NULL,
    minor INTEGER NOT NULL,
    recorded_by TEXT NOT NULL,
    recorded_at TEXT NOT NULL,
    withdrawn_at TEXT,
    withdrawn_by TEXT
);
CREATE TABLE IF NOT EXISTS accounts (
    username TEXT PRIMARY KEY,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS register_locks (
    class_id TEXT NOT NULL,
    date TEXT NOT NULL,
    period TEXT NOT NULL,
    finalized_by TEXT NOT NULL,
    finalized_at TEXT NOT NULL,
    PRIMARY KEY (class_id, date, period)
);
CREATE TABLE IF NOT EXISTS gallery_pointer (
    scope TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    manifest_key TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readiness_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    written_at TEXT NOT NULL
);
""".replace("{attendance_columns}", _ATTENDANCE_COLUMNS)

_MARK_COLUMNS = (
    "class_id",
    "date",
    "period",
    "student_id",
    "name",
    "first_seen_at",
    "distance",
    "job_id",
    "status",
    "source",
    "marked_by",
    "marked_at",
    "note",
    "photo",
    "face",
    "box",
    "captured_at",
)


_CONSENT_COLUMNS = (
    "student_id",
    "given_by",
    "relationship",
    "given_on",
    "minor",
    "recorded_by",
    "recorded_at",
    "withdrawn_at",
    "withdrawn_by",
)


def _mark_row(record: AttendanceRecord) -> tuple:
    return (
        record.class_id,
        record.date.isoformat(),
        record.period,
        record.student_id,
        record.name,
        record.first_seen_at.isoformat(),
        record.distance,
        record.job_id,
        record.status,
        record.source,
        record.marked_by,
        record.marked_at.isoformat() if record.marked_at else None,
        record.note,
        record.photo,
        record.face,
        record.box.model_dump_json() if record.box else None,
        record.captured_at.isoformat() if record.captured_at else None,
    )


def _record(row: sqlite3.Row) -> AttendanceRecord:
    values = dict(row)
    if values.get("box"):
        values["box"] = json.loads(values["box"])
    return AttendanceRecord(**values)


def _migrate_attendance(conn: sqlite3.Connection) -> None:
    """Databases made before registers had periods: their attendance table is keyed by
    (class_id, date, student_id), every row a face's mark for the whole day. Rebuilt in the
    caller's transaction, so a crash leaves the old table whole and the next open retries.
    Databases made before marks had their face's evidence gain those columns, in the same
    transaction."""
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(attendance)")}
    if not columns:
        return
    if "period" in columns:
        for name, kind in _EVIDENCE_COLUMNS:
            if name not in columns:
                conn.execute(f"ALTER TABLE attendance ADD COLUMN {name} {kind}")
        return
    conn.execute(f"CREATE TABLE attendance_migrated ({_ATTENDANCE_COLUMNS})")
    conn.execute(
        "INSERT INTO attendance_migrated (class_id, date, period, student_id, name, "
        "first_seen_at, distance, job_id, status, source) SELECT class_id, date, '', "
        "student_id, name, first_seen_at, distance, job_id, 'present', 'face' FROM attendance"
    )
    conn.execute("DROP TABLE attendance")
    conn.execute("ALTER TABLE attendance_migrated RENAME TO attendance")


_SCHEMA_OBJECTS = set(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA))


def _schema_current(conn: sqlite3.Connection) -> bool:
    """Whether every table and index of _SCHEMA is there, attendance with all its columns."""
    names = {row["name"] for row in conn.execute("SELECT name FROM sqlite_master")}
    if not _SCHEMA_OBJECTS <= names:
        return False
    columns = {row["name"] for row in conn.execute("PRAGMA table_info(attendance)")}
    return set(_MARK_COLUMNS) <= columns


def _disk_full(folder: Path) -> bool:
    """Whether a small write beside the database finds no space (ENOSPC, or EDQUOT: SQLite
    reports a quota as a plain I/O error, without the errno)."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-space-")
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        os.write(fd, b"\0" * 4096)
        os.fsync(fd)
    except OSError as exc:
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    finally:
        os.close(fd)
        os.unlink(tmp)
    return False


class SqliteRecords:
    """SQLite in WAL mode; one short connection per operation so it is safe across forks.

    A write waits up to ``busy_timeout`` seconds for another writer's lock. What SQLite cannot
    do for a while becomes StoreBusy, which a job retries and the API answers with 503: a lock
    held past that timeout, a read-only file or disk, a file that cannot be opened. A disk with
    no space left becomes StorageFull (507). Either way the transaction is rolled back whole.
    """

    def __init__(self, path: Path, *, busy_timeout: float = 30.0, ping_timeout: float = 2.0):
        self.path = path
        self.busy_timeout = busy_timeout
        self.ping_timeout = ping_timeout
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            # Opened while another writer holds the lock, or while the file is read-only (a
            # process restarting during such a fault), a database that needs nothing opens.
            if _schema_current(conn):
                return
        # Statement by statement: executescript would commit the migration half-way.
        with self._tx() as conn:
            _migrate_attendance(conn)
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)

    def translate(self, exc: sqlite3.Error, busy_timeout: float) -> Exception:
        """What ``exc`` means to a caller: StoreBusy (may pass), StorageFull, or ``exc``."""
        code = getattr(exc, "sqlite_errorcode", None)
        primary = code & 0xFF if isinstance(code, int) else None
        if primary in (_SQLITE_BUSY, _SQLITE_LOCKED):
            message = (
                "the records database (SQLite) stayed locked by another writer for the "
                f"{busy_timeout:g} s it waits; try again later"
            )
        elif primary == _SQLITE_READONLY:
            message = (
                "the records database (SQLite) is read-only: its file or disk refuses writes; "
                "try again later"
            )
        elif primary == _SQLITE_CANTOPEN:
            message = (
                "the records database (SQLite) cannot be opened: its file or folder is "
                "missing, not accessible or on a read-only disk; try again later"
            )
        elif primary == _SQLITE_FULL or (primary == _SQLITE_IOERR and _disk_full(self.path.parent)):
            log.warning("records database %s: %s", self.path, exc)
            return StorageFull(STORAGE_FULL_MESSAGE)
        else:
            return exc
        log.warning(
            "records database %s: %s (%s)", self.path, exc, getattr(exc, "sqlite_errorname", "")
        )
        return StoreBusy(message)

    @contextmanager
    def _conn(self, busy_timeout: float | None = None) -> Iterator[sqlite3.Connection]:
        timeout = self.busy_timeout if busy_timeout is None else busy_timeout
        try:
            conn = sqlite3.connect(self.path, timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise self.translate(exc, timeout) from exc
        conn.row_factory = sqlite3.Row
        try:
            conn.execute(f"PRAGMA busy_timeout={int(timeout * 1000)}")
            yield conn
        except sqlite3.Error as exc:
            mapped = self.translate(exc, timeout)
            if mapped is exc:
                raise
            raise mapped from exc
        finally:
            conn.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                # SQLite may have rolled back already (it does on SQLITE_FULL, for one); the
                # error that got us here is the one to report.
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.warning("records database %s: rollback failed", self.path)
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

    @staticmethod
    def _locked(conn: sqlite3.Connection, class_id: str, date: dt.date, period: str) -> bool:
        return (
            conn.execute(
                "SELECT 1 FROM register_locks WHERE class_id = ? AND date = ? AND period = ?",
                (class_id, date.isoformat(), period),
            ).fetchone()
            is not None
        )

    @staticmethod
    def _mark(
        conn: sqlite3.Connection, class_id: str, date: dt.date, period: str, student_id: str
    ) -> AttendanceRecord | None:
        row = conn.execute(
            "SELECT * FROM attendance WHERE class_id = ? AND date = ? AND period = ? "
            "AND student_id = ?",
            (class_id, date.isoformat(), period, student_id),
        ).fetchone()
        return _record(row) if row else None

    @staticmethod
    def _note_job(conn: sqlite3.Connection, student_id: str, job_id: str | None) -> None:
        if job_id:
            conn.execute(
                "INSERT OR IGNORE INTO attendance_jobs (student_id, job_id) VALUES (?, ?)",
                (student_id, job_id),
            )

    def mark_present(
        self, record: AttendanceRecord, *, not_erased_since: dt.datetime | None = None
    ) -> bool:
        with self._tx() as conn:
            self._refuse_if_erased(conn, record.student_id, not_erased_since)
            # Noted even when no mark is made (a signed-off register): the photo still shows
            # the student, and erasure must find it.
            self._note_job(conn, record.student_id, record.job_id)
            if self._locked(conn, record.class_id, record.date, record.period):
                return False
            cur = conn.execute(
                f"INSERT OR IGNORE INTO attendance ({', '.join(_MARK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_MARK_COLUMNS))})",
                _mark_row(record),
            )
            return cur.rowcount == 1

    def set_mark(
        self,
        record: AttendanceRecord,
        *,
        correction: bool = False,
        expected: Expected | None = None,
    ) -> AttendanceRecord | None:
        with self._tx() as conn:
            if not correction and self._locked(conn, record.class_id, record.date, record.period):
                raise RegisterFinalized(
                    f"the register of {record.class_id} on {record.date.isoformat()}"
                    f"{f' ({record.period})' if record.period else ''} is finalized"
                )
            old = self._mark(conn, record.class_id, record.date, record.period, record.student_id)
            if expected is not None and old != expected.mark:
                raise MarkChanged(changed_message(record))
            # The replaced mark's job goes on being among those that saw the student.
            if old is not None:
                self._note_job(conn, old.student_id, old.job_id)
            self._note_job(conn, record.student_id, record.job_id)
            conn.execute(
                f"INSERT OR REPLACE INTO attendance ({', '.join(_MARK_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_MARK_COLUMNS))})",
                _mark_row(record),
            )
            return old

    def get_mark(
        self, class_id: str, date: dt.date, period: str, student_id: str
    ) -> AttendanceRecord | None:
        with self._conn() as conn:
            return self._mark(conn, class_id, date, period, student_id)

    def finalize_register(
        self, class_id: str, date: dt.date, period: str, by: str, at: dt.datetime
    ) -> RegisterLock:
        with self._tx() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO register_locks "
                "(class_id, date, period, finalized_by, finalized_at) VALUES (?, ?, ?, ?, ?)",
                (class_id, date.isoformat(), period, by, at.isoformat()),
            )
            lock = self._lock_of(conn, class_id, date, period)
        assert lock is not None  # inserted above or there already, in this transaction
        return lock

    @staticmethod
    def _lock_of(
        conn: sqlite3.Connection, class_id: str, date: dt.date, period: str
    ) -> RegisterLock | None:
        row = conn.execute(
            "SELECT class_id, date, period, finalized_by, finalized_at FROM register_locks "
            "WHERE class_id = ? AND date = ? AND period = ?",
            (class_id, date.isoformat(), period),
        ).fetchone()
        return RegisterLock(**dict(row)) if row else None

    def register_lock(self, class_id: str, date: dt.date, period: str) -> RegisterLock | None:
        with self._conn() as conn:
            return self._lock_of(conn, class_id, date, period)

    def list_register_locks(
        self, class_id: str, date_from: dt.date, date_to: dt.date
    ) -> list[RegisterLock]:
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT class_id, date, period, finalized_by, finalized_at FROM register_locks "
                "WHERE class_id = ? AND date BETWEEN ? AND ? ORDER BY date, period",
                (class_id, date_from.isoformat(), date_to.isoformat()),
            ).fetchall()
        return [RegisterLock(**dict(row)) for row in rows]

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
        period: str | None = None,
    ) -> list[AttendanceRecord]:
        clauses, args = [], []
        for column, op, value in (
            ("class_id", "=", class_id),
            ("date", ">=", date_from.isoformat() if date_from else None),
            ("date", "<=", date_to.isoformat() if date_to else None),
            ("student_id", "=", student_id),
            ("period", "=", period),
        ):
            if value is not None:
                clauses.append(f"{column} {op} ?")
                args.append(value)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with self._conn() as conn:
            rows = conn.execute(
                f"SELECT * FROM attendance {where} ORDER BY date, class_id, period, student_id",
                args,
            ).fetchall()
        return [_record(row) for row in rows]

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

    def put_consent(self, consent: Consent) -> None:
        with self._tx() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO consents ({', '.join(_CONSENT_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_CONSENT_COLUMNS))})",
                (
                    consent.student_id,
                    consent.given_by,
                    consent.relationship,
                    consent.given_on.isoformat(),
                    int(consent.minor),
                    consent.recorded_by,
                    consent.recorded_at.isoformat(),
                    consent.withdrawn_at.isoformat() if consent.withdrawn_at else None,
                    consent.withdrawn_by,
                ),
            )

    @staticmethod
    def _consent(conn: sqlite3.Connection, student_id: str) -> Consent | None:
        row = conn.execute("SELECT * FROM consents WHERE student_id = ?", (student_id,)).fetchone()
        return Consent(**{**dict(row), "minor": bool(row["minor"])}) if row else None

    def get_consent(self, student_id: str) -> Consent | None:
        with self._conn() as conn:
            return self._consent(conn, student_id)

    def consents(self, student_ids: Iterable[str]) -> dict[str, Consent]:
        ids = sorted(set(student_ids))
        found: dict[str, Consent] = {}
        with self._conn() as conn:
            for start in range(0, len(ids), 500):  # below SQLite's limit on parameters
                chunk = ids[start : start + 500]
                rows = conn.execute(
                    f"SELECT * FROM consents WHERE student_id IN ({', '.join('?' * len(chunk))})",
                    chunk,
                ).fetchall()
                for row in rows:
                    found[row["student_id"]] = Consent(**{**dict(row), "minor": bool(row["minor"])})
        return found

    def withdraw_consent(self, student_id: str, by: str, at: dt.datetime) -> Consent | None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE consents SET withdrawn_at = ?, withdrawn_by = ? "
                "WHERE student_id = ? AND withdrawn_at IS NULL",
                (at.isoformat(), by, student_id),
            )
            return self._consent(conn, student_id)

    def delete_consent(self, student_id: str) -> bool:
        with self._tx() as conn:
            return (
                conn.execute("DELETE FROM consents WHERE student_id = ?", (student_id,)).rowcount
                == 1
            )

    # An account is one row: its username and the account as JSON.

    def create_account(self, account: Account) -> bool:
        with self._tx() as conn:
            return (
                conn.execute(
                    "INSERT OR IGNORE INTO accounts (username, body) VALUES (?, ?)",
                    (account.username, account.model_dump_json()),
                ).rowcount
                == 1
            )

    def put_account(self, account: Account) -> None:
        with self._tx() as conn:
            conn.execute(
                "UPDATE accounts SET body = ? WHERE username = ?",
                (account.model_dump_json(), account.username),
            )

    def get_account(self, username: str) -> Account | None:
        with self._conn() as conn:
            row = conn.execute(
                "SELECT body FROM accounts WHERE username = ?", (username,)
            ).fetchone()
        return Account.model_validate_json(row["body"]) if row else None

    def list_accounts(self) -> list[Account]:
        with self._conn() as conn:
            rows = conn.execute("SELECT body FROM accounts ORDER BY username").fetchall()
        return [Account.model_validate_json(row["body"]) for row in rows]

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
        with self._conn(self.ping_timeout) as conn:
            conn.execute("SELECT 1 FROM gallery_pointer LIMIT 1").fetchall()

    def probe_write(self) -> None:
        # One statement, committed on its own: a real write (a transaction rolled back, or only
        # begun, would not notice a read-only file).
        with self._conn(self.ping_timeout) as conn:
            conn.execute(
                "INSERT INTO readiness_probe (id, written_at) VALUES (1, ?) "
                "ON CONFLICT(id) DO UPDATE SET written_at = excluded.written_at",
                (utc_now_iso(),),
            )
