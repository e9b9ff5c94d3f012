"""Attendance: the marks (status, period, what made them), filtered by class, dates and student;
rates; CSV export.

A viewer token may read attendance but not the students: the page then works from the records
alone (no rosters, so no absentees and no per-day rates).
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from attendance.domain.schemas import AttendanceRecord, Student
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError
from attendance.frontend.roster import classes_of
from attendance.frontend.stats import daily_rates, roster_sizes, student_rates

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
        "distance",
    ]
    rows = [
        {
            "date": r.date.isoformat(),
            "period": r.period or "whole day",
            "class_id": r.class_id,
            "student_id": r.student_id,
            "name": r.name,
            "status": r.status,
            "source": r.source,
            "first_seen_at": r.first_seen_at.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "distance": r.distance,
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


def render() -> None:
    st.title("Attendance")
    api: ApiClient = ui.logged_in_client()
    roster = load_roster(api)
    if roster is None:
        st.caption(
            "Your token may read attendance but not the class rosters: classes and "
            "students are the ones with a record in the chosen dates."
        )

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
