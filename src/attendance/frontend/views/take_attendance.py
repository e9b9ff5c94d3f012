"""Take attendance: class photos in; the register of that session out (who is absent and
present, then every student, absent first, corrected with one click, signed off, exported), then
the faces nobody was matched to, each to be said who it is, and last the annotated photos, each
with its faces listed one by one (a name drawn on a photo is small on a phone)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import streamlit as st

from attendance.domain.schemas import (
    WHOLE_DAY,
    FaceMatch,
    JobView,
    ModelInfo,
    PhotoResult,
    RecognitionResult,
    Student,
)
from attendance.frontend import register, ui
from attendance.frontend.api_client import ApiClient, ApiError, Photo, parse
from attendance.frontend.roster import classes_of, photo_batches

RESULT_KEY = "take_attendance.result"
# The period last sent: the next recognition starts with it (a teacher takes one period after
# another, or the whole day every time).
LAST_PERIOD_KEY = "take_attendance.last_period"


def submit_recognition(
    api: ApiClient,
    class_id: str,
    date: dt.date,
    photos: Sequence[Photo],
    max_photos: int,
    max_bytes: int | None = None,
    period: str = WHOLE_DAY,
) -> tuple[list[str], ApiError | None]:
    """Queue the photos (several jobs when there are more than one request takes): the jobs
    queued, and the error that stopped the rest, if any."""
    job_ids: list[str] = []
    for part in photo_batches(photos, max_photos, max_bytes):
        try:
            job_ids.append(api.recognise(class_id, date, part, period).job_id)
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
    period: str = WHOLE_DAY,
) -> dict | None:
    """Submit, follow each job with a progress bar, and return what the result view shows."""
    job_ids, error = submit_recognition(api, class_id, date, photos, max_photos, max_bytes, period)
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
        "period": period,
        "jobs": [
            {"job_id": job_id, "view": o.model_dump(mode="json")}
            if isinstance(o, JobView)
            else {"job_id": job_id, "error": o.message}
            for job_id, o in ((job_id, outcome[job_id]) for job_id in job_ids)
        ],
    }


# A photo is named by the job it was read in and its place there: (job_id, n).
PhotoRef = tuple[str, int]
# Wide enough for a student's name in the "This is…" picker; narrower than a phone.
UNKNOWN_CARD_PX = 250
# Faces listed one by one under their photo; the others are counted.
NAMED_OUTCOMES = ("recognised", "assigned", "rejected")
FACE_ICON: dict[str, str] = {
    "recognised": ":material/check_circle:",
    "assigned": ":material/how_to_reg:",
    "unknown": ":material/help:",
    "rejected": ":material/person_off:",
    "unidentifiable": ":material/blur_on:",
}


def photo_labels(results: Sequence[tuple[str, RecognitionResult]]) -> dict[PhotoRef, str]:
    """Each photo's name on screen: its file name, else "Photo N" by its place in the upload
    (the jobs are in the order their photos were chosen)."""
    labels: dict[PhotoRef, str] = {}
    for job_id, result in results:
        for n, photo in enumerate(result.photos):
            labels[(job_id, n)] = ui.photo_label(photo.filename, len(labels) + 1)
    return labels


def face_words(face: FaceMatch, threshold: float | None) -> str:
    """Who a face in a class photo is and how sure that is, in plain words (plain text)."""
    who = face.name or face.student_id or "a student"
    by = f" by {face.settled_by}" if face.settled_by else " by a teacher"
    if face.outcome == "recognised":
        quality = register.quality_words(register.face_quality(face.distance, threshold))
        return f"{who} ({quality})" if quality else who
    if face.outcome == "assigned":
        return f"{who} (said{by})"
    if face.outcome == "rejected":
        return f"not a student of this class (said{by})"
    if face.outcome == "unidentifiable":
        return face.reason or "too small or unclear to tell who it is"
    return f"{register.NO_MATCH}: nobody of the class (say who it is above)"


def photo_alt(label: str, faces: Sequence[FaceMatch]) -> str:
    """What an annotated photo shows, for screen readers: who was found in it."""
    named = [f.name or f.student_id or "a student" for f in faces if f.student_id]
    unknown = sum(1 for f in faces if f.outcome == "unknown")
    unclear = sum(1 for f in faces if f.outcome == "unidentifiable")
    parts = [f"Class photo {label}, a box around each face found"]
    if named:
        parts.append("named: " + ", ".join(named))
    if unknown:
        parts.append(f"{unknown} not recognised")
    if unclear:
        parts.append(f"{unclear} too small or unclear to tell")
    if not faces:
        parts = [f"Class photo {label}: no face found"]
    return ui.alt_text("; ".join(parts))


def _face_summary(faces) -> str:
    if not faces:
        return "no face found"
    known = sum(1 for f in faces if f.outcome == "recognised")
    assigned = sum(1 for f in faces if f.outcome == "assigned")
    rejected = sum(1 for f in faces if f.outcome == "rejected")
    unclear = sum(1 for f in faces if f.outcome == "unidentifiable")
    unknown = len(faces) - known - assigned - rejected - unclear
    summary = f"{known} recognised (green), {unknown} unknown (red)"
    if unclear:
        summary += f", {unclear} too small or unclear to tell (amber)"
    # Settled by a teacher after the photo was drawn: the drawing shows the match as it was.
    if assigned:
        summary += f", {assigned} assigned by a teacher"
    if rejected:
        summary += f", {rejected} rejected by a teacher"
    return summary


def _current(api: ApiClient, job: dict) -> JobView:
    """The job as the API has it now: assigning a face settles it in the job's result."""
    view = parse(JobView, job["view"], "a job")
    if view.state != "succeeded":
        return view
    try:
        return api.job(view.job_id)
    except ApiError:
        return view


def unknown_faces(
    job_id: str, result: dict, labels: dict[PhotoRef, str] | None = None
) -> list[tuple[tuple[str, int, int], str, dict]]:
    """Every face of a job's result that matched nobody and is not settled yet:
    ((job, photo, face), the photo's name on screen (``labels``, else its file name), the
    face)."""
    found = []
    for n, photo in enumerate(result.get("photos") or []):
        for k, face in enumerate(photo.get("faces") or []):
            if face.get("outcome") == "unknown":
                found.append(((job_id, n, k), _label(labels, job_id, n, photo), face))
    return found


def settled_faces(
    result: dict, job_id: str = "", labels: dict[PhotoRef, str] | None = None
) -> list[tuple[str, int, dict]]:
    """Faces a person has said who they are: (the photo's name on screen, face number, the
    face)."""
    return [
        (_label(labels, job_id, n, photo), k + 1, face)
        for n, photo in enumerate(result.get("photos") or [])
        for k, face in enumerate(photo.get("faces") or [])
        if face.get("outcome") in ("assigned", "rejected")
    ]


def _label(labels: dict[PhotoRef, str] | None, job_id: str, n: int, photo: dict) -> str:
    if labels and (job_id, n) in labels:
        return labels[(job_id, n)]
    return ui.photo_label(str(photo.get("filename") or ""), n + 1)


def _settled_words(filename: str, number: int, face: dict) -> str:
    by = f" by {face['settled_by']}" if face.get("settled_by") else ""
    if face.get("outcome") == "rejected":
        return f"{filename}, face {number}: not a student of this class{by}"
    who = face.get("name") or face.get("student_id") or "a student"
    return f"{filename}, face {number}: {who}{by}"


def _unknown_section(
    api: ApiClient,
    views: Sequence[JobView],
    students: Sequence[Student],
    labels: dict[PhotoRef, str],
) -> int:
    """Each face nobody was matched to, to be said who it is; the number of such faces."""
    faces = [
        f for view in views if view.result for f in unknown_faces(view.job_id, view.result, labels)
    ]
    settled = [
        f for view in views if view.result for f in settled_faces(view.result, view.job_id, labels)
    ]
    st.markdown(f"#### Faces nobody was matched to ({len(faces)})")
    if not faces:
        st.caption("none left to look at" if settled else "none")
    else:
        st.caption(
            "Say who each face is: they are marked present. *Learn this face* also adds it to "
            "their photos, so they are recognised next time. *Not a student* sets a face aside."
        )
    # Cards of one width that wrap: as many to a line as the screen holds, one on a phone.
    with st.container(horizontal=True, gap="medium"):
        for where, filename, _face in faces:
            job_id, n, k = where
            with st.container(
                border=True, width=UNKNOWN_CARD_PX, key=f"unknown-face-{job_id[:8]}-{n}-{k}"
            ):
                image = ui.face_image(api, *where)
                if image:
                    st.image(
                        image,
                        width=register.CROP_PX,
                        alt=ui.alt_text(f"Face {k + 1} in {filename}, not recognised"),
                    )
                st.caption(f"{ui.plain(filename)}, face {k + 1}")
                register.face_picker(api, where, students, key=f"take.face.{job_id}.{n}.{k}")
    if settled:
        with st.expander(f"Faces already said who they are ({len(settled)})"):
            for filename, number, face in settled:
                st.markdown("- " + ui.plain(_settled_words(filename, number, face)))
    return len(faces)


def _photos(
    api: ApiClient,
    results: Sequence[tuple[str, RecognitionResult]],
    labels: dict[PhotoRef, str],
    threshold: float | None,
) -> None:
    with st.expander("The class photos, with the faces found", expanded=True):
        st.caption("Under each photo, each named face beside its crop, to read on a small screen.")
        for job_id, result in results:
            for n, photo in enumerate(result.photos):
                _photo(api, job_id, n, photo, labels[(job_id, n)], threshold)


def _photo(
    api: ApiClient,
    job_id: str,
    n: int,
    photo: PhotoResult,
    label: str,
    threshold: float | None,
) -> None:
    if photo.error:
        st.warning(f"{ui.plain(label)}: {ui.plain(photo.error)}", icon=":material/warning:")
    if photo.annotated_key is None:
        if photo.annotation_error:
            st.info(
                f"{ui.plain(label)}: {ui.plain(photo.annotation_error)}", icon=":material/info:"
            )
        return
    try:
        image = ui.annotated_image(api, job_id, n)
    except ApiError as exc:
        ui.show_error(exc, f"Could not load the annotated {label}")
        return
    st.image(
        image,
        caption=f"{ui.plain(label)}: {_face_summary(photo.faces)}",
        width="stretch",
        alt=photo_alt(label, photo.faces),
    )
    _faces_of_photo(api, job_id, n, photo, label, threshold)


def _faces_of_photo(
    api: ApiClient,
    job_id: str,
    n: int,
    photo: PhotoResult,
    label: str,
    threshold: float | None,
) -> None:
    """Each face of the photo a name was drawn on (or a teacher settled), its crop beside who
    it is: what the photo's labels say, large enough to read on any screen. The faces nobody
    was matched to are counted here: their crops are above, each to be said who it is."""
    named = [(k, f) for k, f in enumerate(photo.faces) if f.outcome in NAMED_OUTCOMES]
    unknown = sum(1 for f in photo.faces if f.outcome == "unknown")
    unclear = sum(1 for f in photo.faces if f.outcome == "unidentifiable")
    if not photo.faces:
        return
    with st.container(key=f"photo-faces-{job_id[:8]}-{n}", gap="small"):
        st.markdown(f"**Faces in {ui.plain(label)}**")
        for k, face in named:
            words = face_words(face, threshold)
            # The crop beside the words on every screen: the text takes what room is left.
            with st.container(horizontal=True, vertical_alignment="center", gap="small"):
                crop = ui.face_image(api, job_id, n, k)
                if crop:
                    st.image(
                        crop,
                        width=register.THUMB_PX,
                        alt=ui.alt_text(f"Face {k + 1} in {label}: {words}"),
                    )
                with st.container(width="stretch"):
                    st.markdown(
                        f"{FACE_ICON.get(face.outcome, '')} **Face {k + 1}:** {ui.plain(words)}"
                    )
        for line in uncounted_words(unknown, unclear):
            st.markdown(line)


def uncounted_words(unknown: int, unclear: int) -> list[str]:
    """The faces of a photo not listed one by one, as lines with an icon (Markdown)."""
    lines = []
    if unknown:
        faces = f"{unknown} face{'s' * (unknown != 1)}"
        lines.append(
            f"{FACE_ICON['unknown']} {faces} with {register.NO_MATCH} (red boxes): say who "
            f"{'they are' if unknown != 1 else 'it is'} above."
        )
    if unclear:
        faces = f"{unclear} face{'s' * (unclear != 1)}"
        lines.append(
            f"{FACE_ICON['unidentifiable']} {faces} too small or unclear to tell who "
            f"{'they are' if unclear != 1 else 'it is'} (amber boxes, without a name)."
        )
    return lines


def _technical_details(
    results: Sequence[tuple[str, RecognitionResult]], model: ModelInfo | None
) -> None:
    """For an administrator looking into a result: the jobs and the model they were read with."""
    with st.expander("Technical details"):
        for job_id, result in results:
            st.markdown(
                f"- job `{job_id}`: {len(result.photos)} photo"
                f"{'s' * (len(result.photos) != 1)}, gallery version {result.model_version}"
            )
        if model is not None:
            st.markdown(
                f"- model now: gallery version {model.version}, {ui.plain(model.model_name)}, "
                f"detector {ui.plain(model.detector)}, {ui.plain(model.metric)} distance "
                f"threshold {model.threshold:.2f}"
            )


def model_updated_since(
    results: Sequence[tuple[str, RecognitionResult]], model: ModelInfo | None
) -> bool:
    """Whether the face model learned something after these photos were read (a face learned,
    a student enrolled): reading them again may recognise more."""
    return model is not None and any(r.model_version < model.version for _, r in results)


def _model(api: ApiClient) -> ModelInfo | None:
    """The face model's threshold grades each match; without it, matches are not graded."""
    try:
        return api.model()
    except ApiError:
        return None


def show_result(api: ApiClient, last: dict) -> None:
    class_id, date = last["class_id"], dt.date.fromisoformat(last["date"])
    period = last.get("period", WHOLE_DAY)
    views: list[JobView] = []
    results: list[tuple[str, RecognitionResult]] = []
    for job in last["jobs"]:
        if "error" in job:
            st.error(ui.plain(job["error"]), icon=":material/error:")
            continue
        view = _current(api, job)
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
            views.append(view)
        except ApiError as exc:
            ui.show_error(exc)
    if not results:
        return

    try:
        roster = api.students(class_id)
    except ApiError as exc:
        ui.show_error(exc, "Could not load the class roster")
        roster = []
    register.show_feedback()
    register.show_learning(api)
    reg = register.load_register(api, class_id, date, period)
    rows = reg.rows if reg is not None else []
    attended = sum(1 for r in rows if r.status in ("present", "late"))
    # Those still to be looked at: a face someone said who it is no longer counts.
    unknown = sum(
        1 for _, r in results for p in r.photos for f in p.faces if f.outcome == "unknown"
    )
    unclear = sum(r.unidentifiable_faces for _, r in results)

    labels = photo_labels(results)
    model = _model(api)
    st.subheader(
        f"Class {ui.plain(class_id)} on {date.isoformat()}, {register.period_words(period)}"
    )
    # A wrapping row, not columns: two to a line on a phone rather than one under another.
    with st.container(horizontal=True, gap="medium"):
        st.metric("Present", f"{attended} of {len(rows)}", help="present or late", width=140)
        st.metric("Absent", sum(1 for r in rows if r.status == "absent"), width=140)
        st.metric("Unknown faces", unknown, width=140)
        # A student whose face was too unclear is not shown as present: the teacher should look.
        st.metric("Too unclear to tell", unclear, width=140)

    if reg is not None:
        register.show_register(api, reg, where="take", students=roster or None)
        # Recognised but since removed from the class: still worth a line.
        on_register = {r.student_id for r in rows}
        others = sorted({sid for _, r in results for sid in r.present} - on_register)
        if others:
            st.caption(
                "Recognised but not on the roster: " + ", ".join(ui.plain(sid) for sid in others)
            )
    _unknown_section(
        api, views, roster or [Student(student_id=r.student_id, name=r.name) for r in rows], labels
    )
    if model_updated_since(results, model):
        st.info(
            "The face model was updated since these photos were read (a face was learned or a "
            "student enrolled): taking attendance again from them may recognise more.",
            icon=":material/update:",
        )
    _photos(api, results, labels, model.threshold if model else None)
    _technical_details(results, model)


def _period_input() -> str:
    """The period picker's default: the period last sent in this session (whole day at first)."""
    return st.session_state.get(LAST_PERIOD_KEY, WHOLE_DAY)


def render() -> None:
    st.title("Take attendance")
    st.caption(
        "Pick a class, a date and a period (or none, for the whole day), drop one or more class "
        "photos, and submit. Then check the register: change a status with one click, say who "
        "the unknown faces are, and sign it off. In the photos, recognised faces are boxed in "
        "green with their name, unknown faces in red, faces too small, blurred or turned away "
        "to tell who they are in amber."
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

    camera = st.toggle(
        "Use the camera",
        key="take.use_camera",
        help="Take the class photo with this device's camera (the browser asks to allow it; "
        "away from this computer the app must be served over HTTPS for that).",
    )
    with st.form("take_attendance"):
        left, middle, right = st.columns(3)
        class_id = left.selectbox("Class", classes, key="take.class_id")
        date = middle.date_input(
            "Date", value=dt.date.today(), key="take.date", format="YYYY-MM-DD"
        )
        period = right.text_input(
            "Period",
            value=_period_input(),
            key="take.period",
            max_chars=32,
            placeholder="whole day",
            help="A short label such as 1, morning or P3 maths; leave it empty for the "
            "whole day. Each period has a register of its own.",
        )
        photos = st.file_uploader(
            "Class photos",
            type=ui.IMAGE_TYPES,
            accept_multiple_files=True,
            key="take.photos",
            max_upload_size=ui.photo_upload_mb(ui.settings()),
            help=ui.photo_upload_help(ui.settings()),
        )
        shot = st.camera_input("Class photo from the camera", key="take.camera") if camera else None
        submitted = st.form_submit_button(
            "Take attendance", type="primary", icon=":material/how_to_reg:"
        )
    if submitted:
        period = (period or "").strip()
        problem = register.period_problem(period)
        if problem:
            st.warning(problem, icon=":material/warning:")
        elif not photos and shot is None:
            st.warning(
                "Choose at least one class photo, or take one with the camera, first.",
                icon=":material/warning:",
            )
        else:
            st.session_state[LAST_PERIOD_KEY] = period
            settings = ui.settings()
            chosen = [(f.name, f.getvalue()) for f in photos or []]
            if shot is not None:
                taken = dt.datetime.now().strftime("%H-%M-%S")
                chosen.append((f"camera-{date.isoformat()}-{taken}.jpg", shot.getvalue()))
            last = run_recognition(
                api,
                class_id,
                date,
                chosen,
                settings.max_recognition_photos,
                ui.request_bytes(settings),
                period,
            )
            if last is not None:
                st.session_state[RESULT_KEY] = last
                st.session_state.pop(register.LEARNING, None)  # those were the last photos

    last = st.session_state.get(RESULT_KEY)
    if last:
        show_result(api, last)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
