"""Attendance: the register of one session (class, date, period: every student with their
status, corrected with one click, signed off, exported); and the marks over a range of dates
(status, period, what made them), filtered by class and student, with rates and a CSV export.

A viewer token may read attendance but not the students: the page then works from the records
alone (no rosters, so no absentees and no per-day rates).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from attendance.domain.reports import ClassAbsences, StudentHistory
from attendance.domain.schemas import WHOLE_DAY, AttendanceRecord, Student
from attendance.frontend import register, ui
from attendance.frontend.api_client import ApiClient, ApiError
from attendance.frontend.roster import classes_of
from attendance.frontend.stats import (
    daily_rates,
    describe_days,
    describe_students,
    roster_sizes,
    student_rates,
)

ALL = "All"
DEFAULT_DAYS = 30


def records_frame(records: list[AttendanceRecord]) -> pd.DataFrame:
    columns = [
        "date",
        "period",
        "class_id",
        "student_id",
        "name",
        "status",
        "source",
        "first_seen_at",
        "marked_by",
        "note",
    ]
    # No match distance: a teacher reads the source ("face" or "manual") and who marked it.
    rows = [
        {
            "date": r.date.isoformat(),
            "period": r.period or "whole day",
            "class_id": r.class_id,
            "student_id": r.student_id,
            "name": r.name,
            "status": r.status,
            "source": "class photo" if r.source == "face" else "by hand",
            "first_seen_at": r.first_seen_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "marked_by": r.marked_by or "",
            "note": r.note or "",
        }
        for r in sorted(
            records, key=lambda r: (r.date, r.class_id, r.period, r.name.lower()), reverse=True
        )
    ]
    return pd.DataFrame(rows, columns=columns)


def _date_range(value) -> tuple[dt.date | None, dt.date | None]:
    """st.date_input gives a tuple of 0, 1 or 2 dates while a range is being picked."""
    if isinstance(value, dt.date):
        return value, value
    value = tuple(value or ())
    if len(value) == 2:
        return value[0], value[1]
    if len(value) == 1:
        return value[0], value[0]
    return None, None


def _in_words(summary: str, frame: pd.DataFrame) -> None:
    """A chart's text alternative: a chart is a picture a screen reader cannot read, so its gist
    is said in a sentence and its figures are there as a table."""
    st.markdown(ui.plain(summary))
    with st.expander("The figures as a table"):
        st.dataframe(frame, hide_index=True)


def _charts(
    records: list[AttendanceRecord],
    roster: list[Student] | None,
    class_id: str | None,
    student_id: str | None,
) -> None:
    """The rate charts; ``roster`` is None when the token may not read the rosters (a viewer):
    then the day chart counts students present, and only recorded students have a rate."""
    days = daily_rates(records, roster_sizes(roster or []))
    per_student = student_rates(records, roster or [], class_id)
    chosen = next((r for r in per_student if r.student_id == student_id), None)
    if chosen is not None:
        st.metric(
            f"{ui.plain(chosen.name)}: attendance rate",
            f"{100 * chosen.rate:.0f} %",
            f"{chosen.present_days} of {chosen.class_days} class days",
            delta_color="off",
        )
    left, right = st.columns(2, gap="large")
    with left:
        if roster is None:
            st.markdown("#### Students present per day")
            st.caption("rates per day need the class rosters, which your token may not read")
        else:
            st.markdown("#### Attendance rate per day")
            st.caption("present / students on the class roster")
        if days:
            if roster is None:
                frame = pd.DataFrame(
                    [
                        {"date": d.date.isoformat(), "class": d.class_id, "present": d.present}
                        for d in days
                    ]
                )
                st.bar_chart(frame, x="date", y="present", color="class", stack=False, height=320)
            else:
                frame = pd.DataFrame(
                    [
                        {
                            "date": d.date.isoformat(),
                            "class": d.class_id,
                            "rate (%)": round(100 * d.rate, 1),
                        }
                        for d in days
                    ]
                )
                st.bar_chart(frame, x="date", y="rate (%)", color="class", stack=False, height=320)
            _in_words(describe_days(days, with_rates=roster is not None), frame)
        else:
            st.caption("no attendance in this range")
    with right:
        st.markdown("#### Attendance rate per student")
        st.caption(
            "days present / days the class met (had any attendance) in the range"
            + ("; only students with a record (no roster)" if roster is None else "")
        )
        if per_student:
            frame = pd.DataFrame(
                [
                    {
                        "student": f"{r.name} ({r.student_id})",
                        "rate (%)": round(100 * r.rate, 1),
                        "days": f"{r.present_days}/{r.class_days}",
                    }
                    for r in per_student
                ]
            )
            st.bar_chart(
                frame, x="student", y="rate (%)", horizontal=True, height=320, sort="-rate (%)"
            )
            _in_words(describe_students(per_student), frame)
        else:
            st.caption("no class met in this range")


def load_roster(api: ApiClient) -> list[Student] | None:
    """Every student the token may see, or None when its role may not read students (a viewer
    may read attendance only); any other failure is shown and stops the page."""
    try:
        return api.students()
    except ApiError as exc:
        if exc.forbidden:
            return None
        ui.show_error(exc, "Could not load the students")
        st.stop()
        raise


def period_options(records: list[AttendanceRecord], *also: str) -> list[str]:
    """The periods to offer for a class's day: the whole day, then those with a mark that day
    and any other given (the last one attendance was taken for), each once."""
    found = {r.period for r in records} | {p for p in also if p is not None}
    return [WHOLE_DAY, *sorted(found - {WHOLE_DAY}, key=str.casefold)]


def _register_section(api: ApiClient, roster: list[Student] | None) -> None:
    """Pick a date, a class and a period; the register of that session below."""
    st.subheader("Register of a session")
    d1, d2, d3 = st.columns(3)
    day = d1.date_input(
        "Date", value=dt.date.today(), key="attendance.register.date", format="YYYY-MM-DD"
    )
    if not isinstance(day, dt.date):
        return
    if roster is None:
        # No rosters for a viewer: the classes are those with a mark that day.
        marks_that_day = ui.fetch(
            "Could not load attendance", api.attendance, date_from=day, date_to=day
        )
        classes = sorted({r.class_id for r in marks_that_day})
    else:
        classes = classes_of(roster)
    if not classes:
        d2.selectbox("Class", [], key="attendance.register.class_id", placeholder="no class")
        st.caption("No class to show: none has students (or, for your token, marks that day).")
        return
    class_id = d2.selectbox("Class", classes, key="attendance.register.class_id")
    day_marks = ui.fetch(
        "Could not load attendance", api.attendance, class_id=class_id, date_from=day, date_to=day
    )
    last = st.session_state.get("take_attendance.last_period")
    period = d3.selectbox(
        "Period",
        period_options(day_marks, *([last] if last else [])),
        format_func=lambda p: "Whole day" if p == WHOLE_DAY else p,
        key="attendance.register.period",
        accept_new_options=True,
        help="The whole day, or a period the class had that day; type another to open it.",
    )
    period = (period or WHOLE_DAY).strip()
    problem = register.period_problem(period)
    if problem:
        st.warning(problem, icon=":material/warning:")
        return
    register.show_feedback()
    reg = register.load_register(api, class_id, day, period)
    if reg is None:
        return
    in_class = None if roster is None else [s for s in roster if class_id in s.class_ids]
    register.show_register(
        api,
        reg,
        where="attendance",
        students=in_class or None,
        editable=st.session_state.get(ui.ROLE_KEY) != ui.ROLE_VIEWER,
    )


def render() -> None:
    st.title("Attendance")
    api: ApiClient = ui.logged_in_client()
    roster = load_roster(api)
    if roster is None:
        st.caption(
            "Your token may read attendance but not the class rosters: classes and "
            "students are the ones with a record in the chosen dates."
        )
    _register_section(api, roster)
    st.subheader("Over a range of dates")

    c1, c2, c3 = st.columns([1, 1, 1])
    today = dt.date.today()
    picked = c2.date_input(
        "Dates",
        value=(today - dt.timedelta(days=DEFAULT_DAYS - 1), today),
        key="attendance.dates",
        format="YYYY-MM-DD",
    )
    date_from, date_to = _date_range(picked)
    if roster is None:
        # No roster to take the classes and students from: the range's records give them.
        in_range = ui.fetch(
            "Could not load attendance", api.attendance, date_from=date_from, date_to=date_to
        )
        classes = sorted({r.class_id for r in in_range})
    else:
        classes = classes_of(roster)
    class_choice = c1.selectbox("Class", [ALL, *classes], key="attendance.class_id")
    class_id = None if class_choice == ALL else class_choice
    if roster is None:
        in_class = []
        everyone = [r for r in in_range if class_id is None or r.class_id == class_id]
        names = {r.student_id: f"{r.name} ({r.student_id})" for r in everyone}
    else:
        in_class = [s for s in roster if class_id is None or class_id in s.class_ids]
        names = {s.student_id: f"{s.name} ({s.student_id})" for s in in_class}
    student_choice = c3.selectbox(
        "Student",
        [ALL, *sorted(names, key=lambda sid: names[sid])],
        format_func=lambda sid: names.get(sid, sid),
        key="attendance.student_id",
    )
    student_id = None if student_choice == ALL else student_choice

    if roster is None:
        records = [r for r in everyone if student_id is None or r.student_id == student_id]
    else:
        # Rates need everyone's records for the range, so the student filter is applied by the
        # API to the table only.
        everyone = ui.fetch(
            "Could not load attendance",
            api.attendance,
            class_id=class_id,
            date_from=date_from,
            date_to=date_to,
        )
        records = (
            everyone
            if student_id is None
            else ui.fetch(
                "Could not load attendance",
                api.attendance,
                class_id=class_id,
                date_from=date_from,
                date_to=date_to,
                student_id=student_id,
            )
        )

    shown_days = len({(r.class_id, r.date) for r in records})
    st.markdown(
        f"**{len(records)} record{'s' * (len(records) != 1)}** over {shown_days} "
        f"class day{'s' * (shown_days != 1)}"
    )
    st.dataframe(records_frame(records), hide_index=True, width="stretch", key="attendance.table")
    _export(api, records, class_id, date_from, date_to, student_id)
    roster_for_charts = None if roster is None else (in_class if class_id else roster)
    _charts(everyone, roster_for_charts, class_id, student_id)
    if date_from is not None and date_to is not None:
        exports = st.session_state.get(ui.ROLE_KEY) != ui.ROLE_VIEWER
        _reports(api, class_id, student_id, date_from, date_to, exports)


def absences_frame(found: ClassAbsences) -> pd.DataFrame:
    columns = ["student", "sessions", "attended", "absent", "late", "excused", "rate (%)"]
    rows = [
        {
            "student": f"{r.name} ({r.student_id})",
            "sessions": r.sessions,
            "attended": r.attended,
            "absent": r.absent,
            "late": r.late,
            "excused": r.excused,
            "rate (%)": None if r.rate is None else round(100 * r.rate, 1),
            "absent on": ", ".join(r.absent_on),
        }
        for r in found.rows
    ]
    return pd.DataFrame(rows, columns=[*columns, "absent on"])


def _report_downloads(api: ApiClient, what: str, call, name: str) -> None:
    """CSV and Excel of a report, asked of the API only when clicked (audited)."""
    left, right = st.columns(2)
    for column, fmt, label in ((left, "csv", "CSV"), (right, "xlsx", "Excel (XLSX)")):

        def export(fmt: str = fmt) -> bytes:
            try:
                return call(fmt)
            except ApiError as exc:
                return f"The export failed: {exc.message}\n".encode()

        column.download_button(
            f"Download {what} ({label})",
            data=export,
            file_name=f"{name}.{fmt}",
            icon=":material/download:",
            key=f"attendance.report.{what}.{fmt}",
            on_click="ignore",
            width="stretch",
        )


def _reports(
    api: ApiClient,
    class_id: str | None,
    student_id: str | None,
    date_from: dt.date,
    date_to: dt.date,
    exports: bool,
) -> None:
    """Sessions (registers held) over the range: a student's own, and a class's absences."""
    span = f"{date_from.isoformat()}-to-{date_to.isoformat()}"
    if student_id is not None:
        try:
            history = api.student_history(student_id, date_from, date_to)
        except ApiError as exc:
            ui.show_error(exc, "Could not load the student's sessions")
        else:
            assert isinstance(history, StudentHistory)
            c = history.counts
            st.markdown(f"#### {ui.plain(history.name)}: sessions")
            st.caption(
                f"{history.attended} of {history.sessions} sessions attended "
                f"({c.present} present, {c.late} late); {c.excused} excused, {c.absent} absent"
            )
            if exports:
                _report_downloads(
                    api,
                    "their sessions",
                    lambda fmt: api.student_history(student_id, date_from, date_to, fmt),
                    f"attendance-{student_id}-{span}",
                )
    if class_id is None:
        st.caption("Pick a class to see each of its students' absences over these dates.")
        return
    st.markdown("#### Absences per student")
    st.caption(
        "sessions: the class's registers held in these dates (any period); attended: present "
        "or late"
    )
    try:
        found = api.class_absences(class_id, date_from, date_to)
    except ApiError as exc:
        ui.show_error(exc, "Could not load the absences")
        return
    assert isinstance(found, ClassAbsences)
    st.dataframe(absences_frame(found), hide_index=True, width="stretch", key="attendance.absences")
    if exports:
        _report_downloads(
            api,
            "absences",
            lambda fmt: api.class_absences(class_id, date_from, date_to, fmt),
            f"absences-{class_id}-{span}",
        )


def _export(
    api: ApiClient,
    records: list[AttendanceRecord],
    class_id: str | None,
    date_from: dt.date | None,
    date_to: dt.date | None,
    student_id: str | None,
) -> None:
    """The API's CSV export, asked for only when the user asks: each one is noted in the audit
    log, and a viewer's token may not export."""
    query = (class_id, date_from, date_to, student_id)
    if st.button(
        "Prepare CSV export",
        icon=":material/table_view:",
        disabled=not records,
        key="attendance.export_prepare",
    ):
        try:
            st.session_state["attendance.export_csv"] = (
                query,
                api.attendance_csv(
                    class_id=class_id, date_from=date_from, date_to=date_to, student_id=student_id
                ),
            )
        except ApiError as exc:
            ui.show_error(exc, "Could not export the attendance")
    prepared = st.session_state.get("attendance.export_csv")
    if prepared and prepared[0] == query:
        parts = ["attendance", class_id or "all", str(date_from or "start"), str(date_to or "end")]
        st.download_button(
            "Download CSV",
            prepared[1],
            mime="text/csv",
            icon=":material/download:",
            file_name="_".join(parts + ([student_id] if student_id else [])) + ".csv",
            key="attendance.export",
        )


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
