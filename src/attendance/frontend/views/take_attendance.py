"""Take attendance: class photos in; annotated photos and who is present or absent out."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import streamlit as st

from attendance.domain.schemas import JobView, RecognitionResult, Student
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError, Photo, parse
from attendance.frontend.roster import classes_of, photo_batches, split_roster

RESULT_KEY = "take_attendance.result"


def submit_recognition(
    api: ApiClient,
    class_id: str,
    date: dt.date,
    photos: Sequence[Photo],
    max_photos: int,
    max_bytes: int | None = None,
) -> tuple[list[str], ApiError | None]:
    """Queue the photos (several jobs when there are more than one request takes): the jobs
    queued, and the error that stopped the rest, if any."""
    job_ids: list[str] = []
    for part in photo_batches(photos, max_photos, max_bytes):
        try:
            job_ids.append(api.recognise(class_id, date, part).job_id)
        except ApiError as exc:
            return job_ids, exc
    return job_ids, None


def run_recognition(
    api: ApiClient,
    class_id: str,
    date: dt.date,
    photos: Sequence[Photo],
    max_photos: int,
    max_bytes: int | None = None,
) -> dict | None:
    """Submit, follow each job with a progress bar, and return what the result view shows."""
    job_ids, error = submit_recognition(api, class_id, date, photos, max_photos, max_bytes)
    if error is not None:
        ui.show_error(
            error,
            "Could not submit the photos"
            if not job_ids
            else f"Only {len(job_ids)} batch(es) of photos were submitted",
        )
    if not job_ids:
        return None
    labels = (
        ["Recognition"]
        if len(job_ids) == 1
        else [f"Photos batch {i + 1} of {len(job_ids)}" for i in range(len(job_ids))]
    )
    outcome = ui.wait_for_jobs(api, list(zip(labels, job_ids)))
    return {
        "class_id": class_id,
        "date": date.isoformat(),
        "jobs": [
            {"job_id": job_id, "view": o.model_dump(mode="json")}
            if isinstance(o, JobView)
            else {"job_id": job_id, "error": o.message}
            for job_id, o in ((job_id, outcome[job_id]) for job_id in job_ids)
        ],
    }


def _face_summary(faces) -> str:
    if not faces:
        return "no face found"
    known = sum(1 for f in faces if f.outcome == "recognised")
    unclear = sum(1 for f in faces if f.outcome == "unidentifiable")
    summary = f"{known} recognised (green), {len(faces) - known - unclear} unknown (red)"
    return summary + (f", {unclear} too small or unclear to tell (amber)" if unclear else "")


def _roster_list(students: Sequence[Student]) -> None:
    if not students:
        st.caption("nobody")
    for s in students:
        st.markdown(f"- **{ui.plain(s.name)}** `{s.student_id}`")  # ids: letters, digits, ._-


def show_result(api: ApiClient, last: dict) -> None:
    class_id, date = last["class_id"], last["date"]
    results: list[tuple[str, RecognitionResult]] = []
    for job in last["jobs"]:
        if "error" in job:
            st.error(ui.plain(job["error"]), icon=":material/error:")
            continue
        view = parse(JobView, job["view"], "a job")
        if view.state == "failed":
            error = view.error
            st.error(
                "Recognition failed: " + (ui.plain(error.message) if error else "no reason given"),
                icon=":material/error:",
            )
            if error:
                st.caption(f"error code: `{error.code.replace('`', '')}`")
            continue
        try:
            results.append((view.job_id, parse(RecognitionResult, view.result, "a result")))
        except ApiError as exc:
            ui.show_error(exc)
    if not results:
        return

    try:
        roster = api.students(class_id)
    except ApiError as exc:
        ui.show_error(exc, "Could not load the class roster")
        roster = []
    present_ids = sorted({sid for _, r in results for sid in r.present})
    present, absent = split_roster(roster, present_ids)
    unknown = sum(r.unknown_faces for _, r in results)
    unclear = sum(r.unidentifiable_faces for _, r in results)

    st.subheader(f"Class {ui.plain(class_id)} on {date}")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Present", f"{len(present)} of {len(roster)}")
    m2.metric("Absent", len(absent))
    m3.metric("Unknown faces", unknown)
    # A student whose face was too unclear is not shown as present: the teacher should look.
    m4.metric("Too unclear to tell", unclear)

    photos_col, roster_col = st.columns([3, 2], gap="large")
    with photos_col:
        st.markdown("#### Photos")
        for job_id, result in results:
            for n, photo in enumerate(result.photos):
                if photo.error:
                    st.warning(
                        f"{ui.plain(photo.filename)}: {ui.plain(photo.error)}",
                        icon=":material/warning:",
                    )
                if photo.annotated_key is None:
                    continue
                try:
                    image = ui.annotated_image(api, job_id, n)
                except ApiError as exc:
                    ui.show_error(exc, f"Could not load the annotated {photo.filename}")
                    continue
                st.image(
                    image,
                    caption=f"{ui.plain(photo.filename)}: {_face_summary(photo.faces)}",
                    width="stretch",
                )
    with roster_col:
        st.markdown(f"#### Present ({len(present)})")
        _roster_list(present)
        st.markdown(f"#### Absent ({len(absent)})")
        _roster_list(absent)
        # Recognised but since removed from the class: still worth a line.
        others = [sid for sid in present_ids if sid not in {s.student_id for s in roster}]
        if others:
            st.caption(
                "Recognised but not on the roster: " + ", ".join(ui.plain(sid) for sid in others)
            )


def render() -> None:
    st.title("Take attendance")
    st.caption(
        "Pick a class and a date, drop one or more class photos, and submit. "
        "Recognised faces are boxed in green with their name, unknown faces in red, "
        "faces too small, blurred or turned away to tell who they are in amber."
    )
    api = ui.logged_in_client()
    students = ui.fetch("Could not load the classes", api.students)
    classes = classes_of(students)
    if not classes:
        st.info(
            "No class has enrolled students yet: enroll students first.", icon=":material/info:"
        )
        st.page_link("views/enroll.py", label="Enroll students", icon=":material/person_add:")
        return

    with st.form("take_attendance"):
        left, right = st.columns(2)
        class_id = left.selectbox("Class", classes, key="take.class_id")
        date = right.date_input("Date", value=dt.date.today(), key="take.date", format="YYYY-MM-DD")
        photos = st.file_uploader(
            "Class photos", type=ui.IMAGE_TYPES, accept_multiple_files=True, key="take.photos"
        )
        submitted = st.form_submit_button(
            "Take attendance", type="primary", icon=":material/how_to_reg:"
        )
    if submitted:
        if not photos:
            st.warning("Choose at least one class photo first.", icon=":material/warning:")
        else:
            settings = ui.settings()
            last = run_recognition(
                api,
                class_id,
                date,
                [(f.name, f.getvalue()) for f in photos],
                settings.max_recognition_photos,
                ui.request_bytes(settings),
            )
            if last is not None:
                st.session_state[RESULT_KEY] = last

    last = st.session_state.get(RESULT_KEY)
    if last:
        show_result(api, last)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
