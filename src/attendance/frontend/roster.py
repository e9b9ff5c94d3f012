"""Pure logic behind enrollment and the roster: no Streamlit, no HTTP, so it is unit-tested.

Bulk enrollment takes a CSV roster (``student_id,name[,class_id]``, header optional, and the
consent columns ``consent_given_by,consent_relationship,consent_given_on,minor`` after them) and a
zip of photos named by student id: ``s001.jpg``, ``s001_2.jpg`` (anything after ``_``, ``-``, ``.`` or a
space), or ``s001/xyz.jpg`` (a folder per student, at any depth). It becomes one enrollment job
per student (more when a student has more photos than one request takes), plus the list of
everything that could not be used and why.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from attendance.domain.consent import FIELDS as CONSENT_FIELDS
from attendance.domain.consent import latest_today, parse_consent
from attendance.domain.errors import ValidationFailed
from attendance.domain.schemas import MAX_NAME_LENGTH, STUDENT_ID_RE, Student

Photo = tuple[str, bytes]

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif", ".heic", ".heif"}
)
# Guards against zip bombs: the photos are read into memory before they are sent.
MAX_ZIP_MEMBERS = 5000
MAX_ZIP_TOTAL_BYTES = 1024 * 1024 * 1024
MAX_ZIP_MEMBER_BYTES = 64 * 1024 * 1024
# What the class uploaders take, in MB. A zip of photos is hardly smaller than the photos in it,
# and Streamlit refuses any file over server.maxUploadSize (.streamlit/config.toml) before a
# widget sees it, so that is set to this too.
MAX_ZIP_MB = MAX_ZIP_TOTAL_BYTES // 2**20
# A roster of MAX_ZIP_MEMBERS students, consent columns and all, is well under 1 MB.
MAX_ROSTER_MB = 5
COLUMNS = ("student_id", "name", "class_id", *CONSENT_FIELDS)
_SEPARATORS = re.compile(r"[_\-. ]")


@dataclass(frozen=True)
class RosterRow:
    line: int
    student_id: str
    name: str
    class_id: str | None
    # The row's consent as the API's form fields; None: the row gives none (the student's
    # consent must then be on record already).
    consent: dict[str, str] | None = None


@dataclass
class RosterParse:
    rows: list[RosterRow] = field(default_factory=list)
    # "line 4: ..." for every row that was skipped.
    errors: list[str] = field(default_factory=list)


@dataclass
class ZipPhotos:
    # Photos by the file name each has in the zip (its last path component).
    by_path: dict[str, bytes] = field(default_factory=dict)
    # Members that are not photos (e.g. "notes.txt"), and why; folders and __MACOSX are dropped.
    ignored: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class Unmatched:
    filename: str
    reason: str


@dataclass
class BulkEntry:
    student_id: str
    name: str
    class_id: str | None
    photos: list[Photo]
    consent: dict[str, str] | None = None


@dataclass
class BulkPlan:
    entries: list[BulkEntry] = field(default_factory=list)
    csv_errors: list[str] = field(default_factory=list)
    zip_error: str | None = None
    unmatched_photos: list[Unmatched] = field(default_factory=list)
    ignored_files: list[str] = field(default_factory=list)
    students_without_photos: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        """Everything the user should read before (or after) submitting, one line each."""
        out = [f"CSV {e}" for e in self.csv_errors]
        if self.zip_error:
            out.append(f"zip: {self.zip_error}")
        out += [f"photo {u.filename}: {u.reason}" for u in self.unmatched_photos]
        out += [f"file {name}: not a photo (skipped)" for name in self.ignored_files]
        out += [
            f"student {sid}: no photo in the zip (not enrolled)"
            for sid in self.students_without_photos
        ]
        return out

    def jobs(
        self, max_photos: int, max_bytes: int | None = None
    ) -> Iterator[tuple[BulkEntry, list[Photo]]]:
        """One (entry, photos) per request, each within the API's per-request limits."""
        for entry in self.entries:
            for part in photo_batches(entry.photos, max_photos, max_bytes):
                yield entry, part


def photo_batches(
    photos: Sequence[Photo], max_photos: int, max_bytes: int | None = None
) -> list[list[Photo]]:
    """Photos split, in order, into requests of at most ``max_photos`` photos and (when given)
    ``max_bytes`` of photo data. A single photo over ``max_bytes`` still gets a request of its
    own, so that the API says why it is refused."""
    if max_photos < 1:
        raise ValueError("max_photos must be at least 1")
    batches: list[list[Photo]] = []
    size = 0
    for photo in photos:
        data_len = len(photo[1])
        if (
            not batches
            or len(batches[-1]) >= max_photos
            or (max_bytes is not None and size + data_len > max_bytes and batches[-1])
        ):
            batches.append([])
            size = 0
        batches[-1].append(photo)
        size += data_len
    return batches


def identifier_problem(value: str, field_name: str) -> str | None:
    if not value:
        return f"{field_name} is empty"
    if not STUDENT_ID_RE.fullmatch(value):
        return (
            f"{field_name} {value[:70]!r} must be 1-64 characters of letters, digits, "
            "'.', '_' or '-', starting with a letter or a digit"
        )
    return None


def name_problem(value: str) -> str | None:
    if not value:
        return "name is empty"
    if len(value) > MAX_NAME_LENGTH or not value.isprintable():
        return f"name must be printable text of at most {MAX_NAME_LENGTH} characters"
    return None


def _decode(data: bytes | str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        # Spreadsheets on some systems still save CSV as Windows-1252.
        return data.decode("cp1252", errors="replace")


def parse_roster_csv(data: bytes | str, default_class: str | None = None) -> RosterParse:
    """Rows ``student_id,name[,class_id]``; a header row naming the columns is optional.

    A row without a class_id gets ``default_class``. Blank rows and rows starting with ``#`` are
    skipped silently; every other row that cannot be used is reported with its line number.
    """
    result = RosterParse()
    text = _decode(data)
    default_class = (default_class or "").strip() or None
    columns: tuple[str, ...] = COLUMNS
    seen: dict[str, int] = {}
    first = True
    reader = csv.reader(io.StringIO(text, newline=""))
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            result.errors.append(f"line {reader.line_num}: not valid CSV ({exc})")
            continue
        line = reader.line_num
        cells = [c.strip() for c in cells]
        if not any(cells) or cells[0].startswith("#"):
            continue
        if first:
            first = False
            lowered = [c.lower() for c in cells]
            if "student_id" in lowered:
                unknown = [c for c in lowered if c not in COLUMNS]
                if unknown or "name" not in lowered or len(set(lowered)) != len(lowered):
                    result.errors.append(
                        f"line {line}: the header must name the columns student_id, name and "
                        f"optionally class_id, {', '.join(CONSENT_FIELDS)}, got "
                        f"{','.join(cells)!r}"
                    )
                    return result
                columns = tuple(lowered)
                continue
        if len(cells) > len(columns):
            extra = [c for c in cells[len(columns) :] if c]
            if extra:
                result.errors.append(
                    f"line {line}: {len(cells)} columns; expected {','.join(columns)}"
                )
                continue
        if len(cells) < 2 and len(columns) >= 2:
            result.errors.append(f"line {line}: expected {','.join(columns)}, got {cells[0]!r}")
            continue
        values = dict(zip(columns, cells))
        student_id = values.get("student_id", "")
        name = values.get("name", "")
        class_id = values.get("class_id") or default_class
        problem = (
            identifier_problem(student_id, "student_id")
            or name_problem(name)
            or (
                identifier_problem(class_id, "class_id")
                if class_id
                else "no class_id: add a class_id column or choose a class for the roster"
            )
        )
        if problem is None and student_id in seen:
            problem = f"student_id {student_id!r} is already on line {seen[student_id]}"
        consent = None
        if problem is None:
            consent, problem = _row_consent(values)
        if problem:
            result.errors.append(f"line {line}: {problem}")
            continue
        seen[student_id] = line
        result.rows.append(RosterRow(line, student_id, name, class_id, consent))
    return result


def _row_consent(values: dict[str, str]) -> tuple[dict[str, str] | None, str | None]:
    """(the row's consent as form fields, None) or (None, why it cannot be used); (None, None)
    when the row gives no consent. Checked as the API checks it."""
    fields = {k: values[k] for k in CONSENT_FIELDS if values.get(k)}
    try:
        given = parse_consent(fields, latest_today())
    except ValidationFailed as exc:
        return None, exc.message
    if given is None:
        return None, None
    return {**fields, "minor": "true" if given.minor else "false"}, None


def read_zip_photos(data: bytes) -> ZipPhotos:
    """Every image file in the zip, by its path inside it; never extracted to disk."""
    out = ZipPhotos()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError):
        out.error = "not a zip file"
        return out
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        if len(members) > MAX_ZIP_MEMBERS:
            out.error = f"{len(members)} files; at most {MAX_ZIP_MEMBERS} are read"
            return out
        total = 0
        for member in members:
            path = PurePosixPath(member.filename.replace("\\", "/"))
            if "__MACOSX" in path.parts or any(p.startswith(".") for p in path.parts):
                continue
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                out.ignored.append(str(path))
                continue
            if member.file_size > MAX_ZIP_MEMBER_BYTES:
                out.ignored.append(str(path))
                continue
            total += member.file_size
            if total > MAX_ZIP_TOTAL_BYTES:
                out.error = f"more than {MAX_ZIP_TOTAL_BYTES // 2**20} MB of photos"
                return out
            try:
                out.by_path[str(path)] = archive.read(member)
            except (zipfile.BadZipFile, OSError, NotImplementedError, RuntimeError) as exc:
                out.ignored.append(f"{path} (unreadable: {exc})")
    return out


def student_for_photo(path: str, known_ids: Iterable[str]) -> str | None:
    """Which student a photo in the zip belongs to, or None.

    Tried in order: the folders it is in (nearest first), the file name without its extension,
    then that name cut at each ``_``, ``-``, ``.`` or space from the right (``s001_2`` ->
    ``s001``). Exact matches win; otherwise a match that ignores case, if only one student fits.
    """
    known = set(known_ids)
    by_lower: dict[str, list[str]] = {}
    for sid in known:
        by_lower.setdefault(sid.lower(), []).append(sid)
    p = PurePosixPath(path.replace("\\", "/"))
    candidates = list(reversed(p.parent.parts)) if p.parent.parts else []
    stem = p.stem
    candidates.append(stem)
    cuts = [m.start() for m in _SEPARATORS.finditer(stem)]
    candidates += [stem[:i] for i in reversed(cuts) if i > 0]
    for candidate in candidates:
        if candidate in known:
            return candidate
    for candidate in candidates:
        matches = by_lower.get(candidate.lower(), [])
        if len(matches) == 1:
            return matches[0]
    return None


def plan_bulk_enrollment(
    csv_data: bytes | str, zip_data: bytes, default_class: str | None = None
) -> BulkPlan:
    """Match the roster with the photos; whatever does not fit is listed, not guessed."""
    parsed = parse_roster_csv(csv_data, default_class)
    photos = read_zip_photos(zip_data)
    plan = BulkPlan(csv_errors=parsed.errors, zip_error=photos.error, ignored_files=photos.ignored)
    ids = [row.student_id for row in parsed.rows]
    by_student: dict[str, list[Photo]] = {sid: [] for sid in ids}
    for path in sorted(photos.by_path):
        sid = student_for_photo(path, ids)
        if sid is None:
            plan.unmatched_photos.append(
                Unmatched(path, "matches no student_id in the roster (skipped)")
            )
            continue
        by_student[sid].append((PurePosixPath(path).name, photos.by_path[path]))
    for row in parsed.rows:
        if by_student[row.student_id]:
            plan.entries.append(
                BulkEntry(
                    row.student_id,
                    row.name,
                    row.class_id,
                    by_student[row.student_id],
                    row.consent,
                )
            )
        else:
            plan.students_without_photos.append(row.student_id)
    return plan


def roster_class_problems(
    entries: Sequence[BulkEntry], classes: Sequence[str], new_allowed: bool
) -> list[str]:
    """Why the roster's classes stop a class enrollment, one line each (empty: none do).

    A typo in a class id would otherwise create a class nobody teaches (a row with no class at
    all is refused by parse_roster_csv already): a class that differs from an existing one only
    in capitals is refused, and one that does not exist yet is taken only when the person said
    the roster may create classes."""
    known = set(classes)
    by_lower = {c.lower(): c for c in classes}
    problems = []
    new = sorted({e.class_id for e in entries if e.class_id and e.class_id not in known})
    for class_id in new:
        if class_id.lower() in by_lower:
            problems.append(
                f"class {class_id}: there is a class {by_lower[class_id.lower()]} already "
                "(capitals make a different class): correct the roster."
            )
    unlike = [c for c in new if c.lower() not in by_lower]
    if unlike and not new_allowed:
        problems.append(
            f"the roster names {len(unlike)} class(es) that do not exist yet ({_some(unlike)}): "
            "tick that the roster may create classes if they are new, or correct it."
        )
    return problems


def _some(names: Sequence[str], shown: int = 5) -> str:
    more = len(names) - shown
    return ", ".join(names[:shown]) + (f" and {more} more" if more > 0 else "")


def classes_of(students: Iterable[Student]) -> list[str]:
    return sorted({c for s in students for c in s.class_ids})


def split_roster(
    roster: Iterable[Student], present_ids: Iterable[str]
) -> tuple[list[Student], list[Student]]:
    """(present, absent), each sorted by name: the roster against who was recognised."""
    present_set = set(present_ids)
    ordered = sorted(roster, key=lambda s: (s.name.lower(), s.student_id))
    return (
        [s for s in ordered if s.student_id in present_set],
        [s for s in ordered if s.student_id not in present_set],
    )
