"""The register of one session (a class, a date, a period) on screen, shared by *Take
attendance* and *Attendance*: one row per student of the class, absent students first, each with
their status in words and an icon (never colour alone), the face that marked them and what marked
them; one click changes a status; signing off; CSV and Excel exports.

The pure functions at the top say things in a teacher's words; they are unit-tested.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import streamlit as st

from attendance.domain.matching import match_quality
from attendance.domain.schemas import (
    PERIOD_RE,
    WHOLE_DAY,
    AttendanceStatus,
    JobView,
    Register,
    RegisterLock,
    RegisterRow,
    Student,
)
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError

STATUSES: tuple[AttendanceStatus, ...] = ("present", "late", "excused", "absent")
STATUS_LABEL: dict[str, str] = {
    "present": "Present",
    "late": "Late",
    "excused": "Excused",
    "absent": "Absent",
}
# Shown beside the word, so a status reads the same without colour.
STATUS_ICON: dict[str, str] = {
    "present": ":material/check_circle:",
    "late": ":material/schedule:",
    "excused": ":material/event_available:",
    "absent": ":material/cancel:",
}
# The teacher looks first at who is missing, then at whom a person marked, then at the rest.
STATUS_ORDER: dict[str, int] = {"absent": 0, "excused": 1, "late": 2, "present": 3}
QUALITY_WORDS: dict[str, str] = {
    "strong": "strong match",
    "borderline": "borderline match — check",
}
# A clear face that is nobody of the class: the third grade a teacher reads.
NO_MATCH = "no match"
NOT_A_STUDENT = "Not a student of this class"
THUMB_PX = 64
CROP_PX = 120


# --- words ---------------------------------------------------------------------------------------


def period_words(period: str) -> str:
    return "whole day" if period == WHOLE_DAY else f"period {period}"


def period_problem(period: str) -> str | None:
    """Why ``period`` cannot name a register, in plain words; None when it can."""
    if period == WHOLE_DAY or PERIOD_RE.fullmatch(period):
        return None
    return (
        "A period is a short label: up to 32 letters, digits, spaces, '.', '_' or '-', "
        "starting with a letter or a digit (e.g. 1, morning, P3 maths). Leave it empty for "
        "the whole day."
    )


def ordered(rows: Iterable[RegisterRow]) -> list[RegisterRow]:
    """Absent students first, then excused, late and present; by name within each."""
    return sorted(
        rows, key=lambda r: (STATUS_ORDER.get(r.status, 0), r.name.casefold(), r.student_id)
    )


def status_words(status: str) -> str:
    """The status as a word with its icon (Markdown)."""
    return f"{STATUS_ICON.get(status, '')} {STATUS_LABEL.get(status, status)}".strip()


def quality_words(quality: str | None) -> str | None:
    """How sure the face match is, in plain words; None when no face made the mark."""
    return QUALITY_WORDS.get(quality) if quality else None


def face_quality(distance: float | None, threshold: float | None) -> str | None:
    """How near a face the model matched is: "strong" or "borderline", graded against the
    threshold the API reports (GET /api/v1/model) as the register grades its marks; None
    without either."""
    if distance is None or threshold is None:
        return None
    return match_quality(distance, threshold)


def summary_lines(rows: Sequence[RegisterRow]) -> list[str]:
    """Who is absent, excused, late and present, one line per status that has anyone: the
    status as a word with its icon, how many, and their names (Markdown, names escaped)."""
    lines = []
    for status in sorted(STATUSES, key=lambda s: STATUS_ORDER[s]):
        names = [r.name for r in ordered(rows) if r.status == status]
        if names:
            lines.append(
                f"**{status_words(status)} ({len(names)}):** "
                + ", ".join(ui.plain(n) for n in names)
            )
    return lines


def _time(at: dt.datetime | None, day: dt.date | None) -> str:
    if at is None:
        return ""
    utc = at.astimezone(dt.UTC) if at.tzinfo else at
    if day is not None and utc.date() == day:
        return utc.strftime("%H:%M UTC")
    return utc.strftime("%Y-%m-%d %H:%M UTC")


def how_marked(row: RegisterRow, day: dt.date | None = None) -> str:
    """What put the status there and when, in plain words (plain text, not Markdown)."""
    if row.source is None:
        return "nothing marked them"
    when = _time(row.marked_at, day)
    if row.source == "face":
        words = "seen in a class photo"
        quality = quality_words(row.match_quality)
        if quality:
            words += f" ({quality})"
        if row.captured_at is not None:
            return f"{words}, taken at {_time(row.captured_at, day)}"
    else:
        words = f"marked by {row.marked_by}" if row.marked_by else "marked by hand"
        if face_of(row) is not None:
            words += ", from a face in a class photo"
    return f"{words} at {when}" if when else words


def counts(rows: Iterable[RegisterRow]) -> Counter[str]:
    return Counter(r.status for r in rows)


def counts_words(rows: Sequence[RegisterRow]) -> str:
    found = counts(rows)
    return " · ".join(f"{found.get(s, 0)} {STATUS_LABEL[s].lower()}" for s in STATUSES)


def finalized_words(lock: RegisterLock) -> str:
    at = lock.finalized_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"Signed off by {lock.finalized_by} on {at}. Only an administrator can change it now; "
        "a teacher's change is refused."
    )


def face_of(row: RegisterRow) -> tuple[str, int, int] | None:
    """(job, photo, face) of the face the row's mark rests on: the face that marked them, or
    the one a teacher said is theirs."""
    if row.job_id is None or row.photo is None or row.face is None:
        return None
    return row.job_id, row.photo, row.face


def register_key(class_id: str, day: dt.date, period: str) -> str:
    """A short stable token naming a register in widget keys (ids and periods hold '.', ' ')."""
    raw = f"{class_id}\n{day.isoformat()}\n{period}"
    return hashlib.sha256(raw.encode()).hexdigest()[:12]


def row_key(student_id: str) -> str:
    """The CSS-safe name of a student's row (``st-key-register-row-<this>`` on the page)."""
    return hashlib.sha256(student_id.encode()).hexdigest()[:12]


def export_name(class_id: str, day: dt.date, period: str, fmt: str) -> str:
    name = f"register-{class_id}-{day.isoformat()}{'-' + period if period else ''}"
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name) + f".{fmt}"


# --- actions (callbacks: they run before the page, which then shows the register as it is) ------

FEEDBACK = "register.feedback"
# Faces being learned (an enrollment job each): [{"job_id", "name"}], followed on screen.
LEARNING = "register.learning"


def _say(kind: str, text: str, error: ApiError | None = None) -> None:
    st.session_state[FEEDBACK] = (kind, text, error)


def show_feedback() -> None:
    """What the last click did (or why the API refused it), once."""
    said = st.session_state.pop(FEEDBACK, None)
    if not said:
        return
    kind, text, error = said
    if error is not None:
        ui.show_error(error, text)
    elif kind == "success":
        st.success(ui.plain(text), icon=":material/check:")
    else:
        st.info(ui.plain(text), icon=":material/info:")


def mark(
    api: ApiClient,
    reg: Register,
    row: RegisterRow,
    status: str | None,
    note: str | None,
    widget_key: str | None = None,
) -> bool:
    """PUT the student's new status (and note); True when the API took it. A status equal to
    the row's and an unchanged note change nothing."""
    if status is None or (status == row.status and (note or None) == (row.note or None)):
        if widget_key is not None:
            st.session_state[widget_key] = row.status
        return False
    try:
        after = api.mark(reg.class_id, reg.date, row.student_id, status, reg.period, note or None)
    except ApiError as exc:
        if widget_key is not None:  # the control goes back to what the register says
            st.session_state[widget_key] = row.status
        _say("error", f"Could not mark {row.name} {STATUS_LABEL.get(status, status)}", exc)
        return False
    _say(
        "success",
        f"{row.name}: {STATUS_LABEL[after.status].lower()}"
        + (f" (was {STATUS_LABEL[row.status].lower()})" if after.status != row.status else "")
        + (f"; note: {after.note}" if after.note else ""),
    )
    return True


def _on_status(api: ApiClient, reg: Register, row: RegisterRow, widget_key: str, note_key: str):
    mark(
        api,
        reg,
        row,
        st.session_state.get(widget_key),
        st.session_state.get(note_key, row.note),
        widget_key,
    )


def _on_note(api: ApiClient, reg: Register, row: RegisterRow, note_key: str) -> None:
    mark(api, reg, row, row.status, (st.session_state.get(note_key) or "").strip() or None)


def assign(
    api: ApiClient,
    where: tuple[str, int, int],
    student: Student | None,
    learn: bool,
    was: str | None = None,
) -> bool:
    """Say who a face is (``student``), or that it is nobody of the class (None)."""
    job_id, photo, face = where
    try:
        answer = api.assign_face(
            job_id, photo, face, None if student is None else student.student_id, learn
        )
    except ApiError as exc:
        _say("error", "Could not save who this face is", exc)
        return False
    if student is None:
        text = "Face set aside: not a student of this class" + (
            f"; {was} is no longer marked by it" if was else ""
        )
    else:
        text = f"The face is {student.name}: marked present"
        learn_job = answer.get("learn_job_id")
        if learn and isinstance(learn_job, str):
            text += "; it is being added to their photos"
            learning = st.session_state.setdefault(LEARNING, [])
            learning.append({"job_id": learn_job, "name": student.name})
    _say("success", text)
    return True


def _on_assign(api: ApiClient, where: tuple[str, int, int], pick_key: str, learn_key: str, was):
    choice = st.session_state.get(pick_key)
    if choice is None:
        _say("info", "Pick the student this face is first.")
        return
    assign(
        api,
        where,
        None if choice == NOT_A_STUDENT else choice,
        bool(st.session_state.get(learn_key)),
        was,
    )


def _on_reject(api: ApiClient, where: tuple[str, int, int], was: str | None) -> None:
    assign(api, where, None, False, was)


def finalize(api: ApiClient, reg: Register, confirm_key: str) -> None:
    st.session_state.pop(confirm_key, None)
    try:
        api.finalize(reg.class_id, reg.date, reg.period)
    except ApiError as exc:
        _say("error", "Could not sign the register off", exc)
        return
    _say("success", "The register is signed off.")


# --- on screen -----------------------------------------------------------------------------------


def learning_words(name: str, job: JobView) -> tuple[str, str]:
    """("info" | "success" | "warning", what became of learning a face for ``name``)."""
    if job.state in ("queued", "running"):
        return "info", f"Adding the face to {name}'s photos…"
    if job.state == "failed":
        reason = job.error.message if job.error else "no reason given"
        return "warning", f"The face was not added to {name}'s photos: {reason}"
    result = job.result or {}
    if result.get("accepted_photos"):
        return (
            "success",
            f"The face was added to {name}'s photos: they are recognised by it next time.",
        )
    rejected = result.get("rejected") or [{}]
    reason = rejected[0].get("reason") or "it could not be used"
    return "warning", f"The face was not added to {name}'s photos: {reason}"


def show_learning(api: ApiClient) -> None:
    """What became of each face being learned; while one is still being learned, this part of
    the page asks again every few seconds."""
    learnings = st.session_state.get(LEARNING) or []
    if learnings:
        pending = any("outcome" not in learning for learning in learnings)
        st.fragment(_learning, run_every=2 if pending else None)(api)


def _learning(api: ApiClient) -> None:
    finished = False
    for learning in st.session_state.get(LEARNING, []):
        if "outcome" in learning:
            kind, text = learning["outcome"]
        else:
            try:
                job = api.job(learning["job_id"])
            except ApiError as exc:
                ui.show_error(
                    exc, f"Could not follow adding the face to {learning['name']}'s photos"
                )
                continue
            kind, text = learning_words(learning["name"], job)
            if job.state in ("succeeded", "failed"):
                learning["outcome"] = (kind, text)
                finished = True
        icon = {"info": ":material/hourglass_top:", "success": ":material/face:"}.get(
            kind, ":material/warning:"
        )
        getattr(st, kind)(ui.plain(text), icon=icon)
    if finished:
        # The whole page again: this part then stops asking.
        st.rerun()


def face_picker(
    api: ApiClient,
    where: tuple[str, int, int],
    students: Sequence[Student],
    *,
    key: str,
    was: str | None = None,
    label: str = "This is…",
) -> None:
    """A "This is…" student picker, a "learn this face" box and the buttons that save it."""
    others = [s for s in students if s.name != was] if was else list(students)
    pick_key, learn_key = f"{key}.pick", f"{key}.learn"
    options: list[Any] = [*sorted(others, key=lambda s: (s.name.casefold(), s.student_id))]
    st.selectbox(
        label,
        options,
        index=None,
        format_func=lambda s: f"{s.name} ({s.student_id})",
        placeholder="Choose a student",
        key=pick_key,
    )
    st.checkbox(
        "Learn this face",
        key=learn_key,
        help="Add this face to the student's photos, so they are recognised next time.",
    )
    st.button(
        "Save",
        key=f"{key}.save",
        icon=":material/how_to_reg:",
        type="primary",
        on_click=_on_assign,
        args=(api, where, pick_key, learn_key, was),
        width="stretch",
    )
    st.button(
        "Not a student",
        key=f"{key}.reject",
        icon=":material/person_off:",
        on_click=_on_reject,
        args=(api, where, was),
        width="stretch",
    )


def _thumbnail(api: ApiClient, row: RegisterRow) -> None:
    where = face_of(row)
    image = ui.face_image(api, *where) if where else None
    if image:
        st.image(image, width=THUMB_PX, alt=ui.alt_text(f"The face that marked {row.name}"))
    else:  # the same room as a picture, so the names line up
        st.markdown(f"## {STATUS_ICON.get(row.status, '')}", width=THUMB_PX)


def _row(
    api: ApiClient,
    reg: Register,
    row: RegisterRow,
    students: Sequence[Student],
    prefix: str,
    editable: bool,
) -> None:
    where = face_of(row)
    # The keys carry the row's mark, so a control shows the register as it is now after any
    # change (a click here, a photo, an assignment), never a value left from an earlier run.
    version = f"{row.status}.{row.marked_at.isoformat() if row.marked_at else ''}"
    status_key = f"{prefix}.status.{row.student_id}.{version}"
    note_key = f"{prefix}.note.{row.student_id}.{version}"
    # Horizontal containers wrap: one line on a desktop, the controls below the name on a phone.
    with st.container(border=True, key=f"register-row-{row_key(row.student_id)}"):
        with st.container(horizontal=True, vertical_alignment="center", gap="medium"):
            with st.container(horizontal=True, vertical_alignment="center", width=300):
                _thumbnail(api, row)
                with st.container(width="stretch", gap=None):
                    st.markdown(
                        f"**{ui.plain(row.name)}** · {status_words(row.status)}",
                        help=f"student id {row.student_id}",
                    )
                    st.caption(
                        ui.plain(how_marked(row, reg.date))
                        + (f" · note: {ui.plain(row.note)}" if row.note else "")
                    )
            if not editable:
                return
            with st.container(horizontal=True, vertical_alignment="center", width="content"):
                st.segmented_control(
                    f"Status of {ui.plain(row.name)}",
                    STATUSES,
                    default=row.status,
                    required=True,
                    format_func=lambda s: STATUS_LABEL[s],
                    key=status_key,
                    label_visibility="collapsed",
                    on_change=_on_status,
                    args=(api, reg, row, status_key, note_key),
                )
                more = st.popover(
                    "Note" if where is None else "Note or fix", icon=":material/edit_note:"
                )
                with more:
                    st.text_input(
                        f"Note on {ui.plain(row.name)}",
                        value=row.note or "",
                        max_chars=500,
                        key=note_key,
                        placeholder="e.g. doctor's appointment",
                    )
                    st.button(
                        "Save note",
                        key=f"{note_key}.save",
                        on_click=_on_note,
                        args=(api, reg, row, note_key),
                    )
                if where is not None:
                    with more:
                        st.markdown("**Wrong person?**")
                        st.caption(
                            f"If the face that marked {ui.plain(row.name)} is someone else, say "
                            "who (they are marked present instead), or that it is not a student."
                        )
                        face_picker(
                            api,
                            where,
                            students,
                            key=f"{prefix}.fix.{row.student_id}.{version}",
                            was=row.name,
                            label="The face is…",
                        )


def _sign_off(api: ApiClient, reg: Register, prefix: str) -> None:
    if reg.finalized is not None:
        st.success(ui.plain(finalized_words(reg.finalized)), icon=":material/verified:")
        return
    confirm_key = f"{prefix}.confirm"
    if not st.session_state.get(confirm_key):
        st.button(
            "Sign off the register",
            key=f"{prefix}.finalize",
            icon=":material/verified:",
            on_click=lambda: st.session_state.__setitem__(confirm_key, True),
        )
        return
    st.warning(
        f"Sign off the register of {ui.plain(reg.class_id)} on {reg.date.isoformat()} "
        f"({period_words(reg.period)})? After that only an administrator can change it.",
        icon=":material/help:",
    )
    yes, no = st.columns(2)
    yes.button(
        "Yes, sign it off",
        key=f"{prefix}.finalize_yes",
        type="primary",
        on_click=finalize,
        args=(api, reg, confirm_key),
        width="stretch",
    )
    no.button(
        "Cancel",
        key=f"{prefix}.finalize_no",
        on_click=lambda: st.session_state.pop(confirm_key, None),
        width="stretch",
    )


def _exports(api: ApiClient, reg: Register, prefix: str) -> None:
    """CSV and Excel downloads, each asked of the API only when clicked (every export is noted
    in the audit log; a viewer's token may not export)."""
    csv_col, xlsx_col = st.columns(2)
    for column, fmt, label, mime in (
        (csv_col, "csv", "Download CSV", "text/csv"),
        (
            xlsx_col,
            "xlsx",
            "Download Excel (XLSX)",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
    ):
        column.download_button(
            label,
            data=_exporter(api, reg, fmt),
            file_name=export_name(reg.class_id, reg.date, reg.period, fmt),
            mime=mime,
            icon=":material/download:",
            key=f"{prefix}.export.{fmt}",
            on_click="ignore",
            width="stretch",
        )


def _exporter(api: ApiClient, reg: Register, fmt: str):
    def export() -> bytes:
        try:
            return api.register_export(reg.class_id, reg.date, reg.period, fmt)
        except ApiError as exc:
            # A download cannot show an error; the file then says why in words.
            return f"The export failed: {exc.message}\n".encode()

    return export


def load_register(api: ApiClient, class_id: str, day: dt.date, period: str) -> Register | None:
    """The register, or None after saying why it cannot be read."""
    try:
        return api.register(class_id, day, period)
    except ApiError as exc:
        ui.show_error(exc, "Could not load the register")
        return None


def show_register(
    api: ApiClient,
    reg: Register,
    *,
    where: str,
    students: Sequence[Student] | None = None,
    editable: bool = True,
) -> None:
    """The register with its controls: a row per student, sign-off, exports. ``students``
    (the class) are offered when a face is someone else; by default the register's own.
    Not ``editable`` (a viewer's token): the statuses only."""
    prefix = f"{where}.register.{register_key(reg.class_id, reg.date, reg.period)}"
    if students is None:
        students = [Student(student_id=r.student_id, name=r.name) for r in reg.rows]
    st.markdown(
        f"#### Register: {ui.plain(reg.class_id)}, {reg.date.isoformat()}, "
        f"{period_words(reg.period)}"
    )
    st.caption(counts_words(reg.rows))
    # Who is missing, in a few lines before the rows (on a phone, each row is a screen's height).
    summary_key = f"register-summary-{register_key(reg.class_id, reg.date, reg.period)}"
    with st.container(key=summary_key, gap=None):
        for line in summary_lines(reg.rows):
            st.markdown(line)
    if reg.finalized is not None:
        st.info("Signed off: only an administrator can still correct it.", icon=":material/lock:")
    for row in ordered(reg.rows):
        _row(api, reg, row, students, prefix, editable)
    if not editable:
        st.caption("Your token may read the register but not change or export it.")
        return
    _sign_off(api, reg, prefix)
    _exports(api, reg, prefix)
