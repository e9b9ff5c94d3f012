"""Students and model: who is enrolled, how many of their face photos the face model learned and
whose consent it holds, and what the face model knows (its technical details for administrators
behind an expander); recording and withdrawing consent, and putting a student on the roster
without photos (marked by hand)."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from attendance.domain.consent import RELATIONSHIPS, latest_today
from attendance.domain.schemas import ModelInfo, Student
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError, consent_form
from attendance.frontend.roster import classes_of
from attendance.frontend.views.enroll import (
    NEW_CLASS,
    chosen_class,
    new_class_box,
    run_enrollments,
    show_outcomes,
)

ALL = "All"
# "Also add them to a class": no, their classes stay as they are.
KEEP_CLASSES = "keep"
# Results of the last rename or photo upload, shown until the next one.
CHANGE_KEY = "students.change_result"
# Part of the add-photos widgets' keys: a new, empty uploader after every submission.
GEN_KEY = "students.form_generation"


def consent_state(student: Student) -> str:
    """The student's consent in a few words: given (by whom, when), withdrawn, or none."""
    consent = student.consent
    if consent is None:
        return "none"
    if consent.withdrawn_at is not None:
        return f"withdrawn {consent.withdrawn_at.date().isoformat()}"
    return f"{consent.relationship}, {consent.given_on.isoformat()}"


METRIC_PX = 160
# The students table's column of learned face photos (the API's "embeddings").
FACE_PHOTOS = "face photos learned"


def students_frame(students: list[Student]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "student_id": s.student_id,
                "name": s.name,
                "classes": ", ".join(s.class_ids),
                FACE_PHOTOS: s.embeddings,
                "consent": consent_state(s),
                "face data": "held" if s.face_data else "none",
            }
            for s in sorted(students, key=lambda s: (s.name.lower(), s.student_id))
        ],
        columns=["student_id", "name", "classes", FACE_PHOTOS, "consent", "face data"],
    )


def updated_words(model: ModelInfo) -> str:
    """When the face model last changed, in words (it changes with every enrollment)."""
    if model.version == 0 or model.updated_at is None:
        return "The face model has not learned anyone yet."
    at = model.updated_at.astimezone(dt.UTC).strftime("%Y-%m-%d at %H:%M UTC")
    return f"The face model was updated on {at}."


def show_model(model: ModelInfo) -> None:
    st.subheader("Face model")
    st.caption(
        "What recognises the students in class photos: it learns each student's face from "
        "their enrollment photos, and is updated every time a student is enrolled or a face "
        "is learned."
    )
    # A wrapping row: both side by side on a phone too.
    with st.container(horizontal=True, gap="medium"):
        st.metric(
            "Students it knows",
            model.students,
            help="students it can recognise in a class photo",
            width=METRIC_PX,
        )
        st.metric(
            "Face photos learned",
            model.embeddings,
            help="enrollment photos it learned faces from",
            width=METRIC_PX,
        )
    st.markdown(ui.plain(updated_words(model)))
    if model.version == 0:
        st.info("Nobody is enrolled yet: the face model knows no one.", icon=":material/info:")
    if model.students_to_reembed:
        st.warning(
            f"{model.students_to_reembed} student{'s' * (model.students_to_reembed != 1)} "
            "cannot be recognised until an administrator has their photos read again by the "
            "current face model.",
            icon=":material/warning:",
        )
    _technical_details(model)


def technical_lines(model: ModelInfo) -> list[str]:
    """The model as the API describes it, for administrators (plain text lines)."""
    lines = [
        f"Gallery version: {model.version}",
        f"Model: {model.model_name}",
        f"Detector: {model.detector}",
        f"Metric: {model.metric}",
        f"Match threshold: {model.threshold:.2f} (a face farther than this from every student "
        "is unknown)",
        f"Embeddings: {model.embeddings}",
        f"Pipeline: {model.pipeline}",
    ]
    lines += [
        f"Embeddings of another pipeline {name} (never matched): {count}"
        for name, count in sorted(model.other_pipelines.items())
    ]
    return lines


def _technical_details(model: ModelInfo) -> None:
    with st.expander("Technical details"):
        for line in technical_lines(model):
            st.markdown("- " + ui.plain(line))


def render() -> None:
    st.title("Students and model")
    api = ui.logged_in_client()
    model = ui.fetch("Could not load the model information", api.model)
    show_model(model)

    st.subheader("Students")
    students = ui.fetch("Could not load the students", api.students)
    choice = st.selectbox("Class", [ALL, *classes_of(students)], key="students.class_id")
    shown = [s for s in students if choice == ALL or choice in s.class_ids]
    without = [s for s in shown if s.embeddings == 0]
    no_consent = [s for s in shown if s.consent is None or s.consent.withdrawn_at is not None]
    learned = sum(s.embeddings for s in shown)
    st.markdown(
        f"**{len(shown)} student{'s' * (len(shown) != 1)}**, "
        f"{learned} face photo{'s' * (learned != 1)} learned"
    )
    st.dataframe(
        students_frame(shown),
        hide_index=True,
        width="stretch",
        key="students.table",
        column_config={
            FACE_PHOTOS: st.column_config.NumberColumn(
                FACE_PHOTOS, help="photos of this student the face model learned their face from"
            ),
            "consent": st.column_config.TextColumn(
                "consent", help="consent to hold their face data: who gave it and when"
            ),
        },
    )
    if without:
        st.warning(
            "No face photo learned yet (cannot be recognised; marked by hand): "
            + ", ".join(ui.plain(f"{s.name} ({s.student_id})") for s in without),
            icon=":material/warning:",
        )
    if no_consent:
        st.info(
            "No consent on record (not enrolled by face; marked by hand in the register): "
            + ", ".join(ui.plain(f"{s.name} ({s.student_id})") for s in no_consent),
            icon=":material/info:",
        )
    if shown:
        change_student(api, shown)
        manage_consent(api, shown)
    add_to_roster(api, [] if choice == ALL else [choice])


def _key(name: str) -> str:
    return f"students.{name}.{st.session_state.get(GEN_KEY, 0)}"


def change_student(api: ApiClient, students: list[Student]) -> None:
    """Rename one student, or add photos to them (both need an admin token; the API says so
    otherwise)."""
    st.subheader("Rename or add photos")
    by_id = {s.student_id: s for s in students}
    ordered = sorted(by_id, key=lambda sid: (by_id[sid].name.lower(), sid))
    sid = st.selectbox(
        "Student", ordered, key="students.change_id", format_func=lambda i: f"{by_id[i].name} ({i})"
    )
    chosen = by_id[sid]
    rename_col, photos_col = st.columns(2, gap="large")
    with rename_col:
        st.markdown("**Rename**")
        new_name = st.text_input("New name", key=_key(f"name.{sid}"), value=chosen.name)
        if st.button("Rename", key=_key("rename"), icon=":material/edit:"):
            new_name = new_name.strip()
            try:
                renamed = api.rename(sid, new_name)
            except ApiError as exc:
                st.session_state[CHANGE_KEY] = (
                    "error",
                    f"Could not rename {ui.plain(sid)}: " + ui.plain(exc.message),
                    [],
                )
            else:
                st.session_state[CHANGE_KEY] = (
                    "ok",
                    f"Renamed {ui.plain(sid)} to {ui.plain(renamed.name)}.",
                    [],
                )
            st.session_state[GEN_KEY] = st.session_state.get(GEN_KEY, 0) + 1
            st.rerun()  # the table above shows the new name
    with photos_col:
        st.markdown("**Add photos**")
        theirs = ", ".join(chosen.class_ids) or "none"
        classes = classes_of(students)
        others = [c for c in classes if c not in chosen.class_ids]
        class_choice = st.selectbox(
            "Also add them to a class (optional)",
            [KEEP_CLASSES, *others, NEW_CLASS],
            key=_key(f"class_choice.{sid}"),
            format_func=lambda c: f"No: keep their classes ({theirs})" if c == KEEP_CLASSES else c,
        )
        typed = None
        if class_choice == NEW_CLASS:
            typed = new_class_box(_key(f"new_class.{sid}"))
        class_id, class_problem = (
            (None, None)
            if class_choice == KEEP_CLASSES
            else chosen_class(class_choice, typed, classes)
        )
        files = st.file_uploader(
            f"More photos of {ui.plain(chosen.name)}",
            type=ui.IMAGE_TYPES,
            accept_multiple_files=True,
            key=_key("photos"),
            max_upload_size=ui.photo_upload_mb(ui.settings()),
            help=ui.photo_upload_help(ui.settings()),
        )
        photos = [(f.name, f.getvalue()) for f in files or []]
        ui.show_thumbnails(photos)
        if st.button(
            "Add photos",
            key=_key("add"),
            type="primary",
            icon=":material/add_photo_alternate:",
            disabled=not photos,
        ):
            if class_problem:
                st.warning(class_problem, icon=":material/warning:")
                return
            config = ui.settings()
            outcomes = run_enrollments(
                api,
                [(sid, chosen.name, class_id, photos)],
                config.max_enroll_photos,
                ui.request_bytes(config),
                add=True,
            )
            st.session_state[CHANGE_KEY] = ("jobs", "", outcomes)
            st.session_state[GEN_KEY] = st.session_state.get(GEN_KEY, 0) + 1
            st.rerun()  # an empty uploader, and the table's new count of face photos
    result = st.session_state.get(CHANGE_KEY)
    if result:
        kind, message, outcomes = result
        if kind == "jobs":
            show_outcomes(outcomes)
        else:
            (st.success if kind == "ok" else st.error)(message)


CONSENT_KEY = "students.consent_result"


def erased_words(faces: int, photos: int) -> str:
    """What withdrawing a consent erased, in words."""
    return (
        f"{faces} learned face{'s' * (faces != 1)} and {photos} photo{'s' * (photos != 1)} erased."
    )


def manage_consent(api: ApiClient, students: list[Student]) -> None:
    """Record a student's consent, or withdraw it (an admin; erases their face data, after a
    confirmation)."""
    st.subheader("Consent")
    by_id = {s.student_id: s for s in students}
    ordered = sorted(by_id, key=lambda sid: (by_id[sid].name.lower(), sid))
    sid = st.selectbox(
        "Student",
        ordered,
        key="students.consent_id",
        format_func=lambda i: f"{by_id[i].name} ({i})",
    )
    chosen = by_id[sid]
    consent = chosen.consent
    if consent is None:
        st.markdown(f"No consent is on record for {ui.plain(chosen.name)}.")
    else:
        st.markdown(
            f"Consent given by {ui.plain(consent.given_by)} ({consent.relationship}) on "
            f"{consent.given_on.isoformat()}, recorded by {ui.plain(consent.recorded_by)}"
            + (", a minor" if consent.minor else "")
            + "."
        )
        if consent.withdrawn_at is not None:
            st.warning(
                f"Withdrawn on {consent.withdrawn_at.date().isoformat()} by "
                f"{ui.plain(consent.withdrawn_by or 'unknown')}.",
                icon=":material/block:",
            )
    record_col, withdraw_col = st.columns(2, gap="large")
    with record_col, st.form(f"students.consent_form.{sid}", clear_on_submit=True):
        st.markdown("**Record consent**")
        given_by = st.text_input("Consent given by", key="students.consent_by")
        relationship = st.selectbox(
            "Their relationship to the student",
            RELATIONSHIPS,
            index=RELATIONSHIPS.index("parent"),
            key="students.consent_relationship",
        )
        given_on = st.date_input(
            "Consent given on",
            value=dt.date.today(),
            max_value=latest_today(),
            key="students.consent_on",
        )
        minor = st.checkbox("The student is a minor", value=True, key="students.minor")
        held = st.checkbox("A signed consent form is held", key="students.form_held")
        if st.form_submit_button("Record consent", icon=":material/how_to_reg:"):
            if not given_by.strip() or not held:
                st.session_state[CONSENT_KEY] = (
                    "error",
                    "Say who gave the consent and tick that a signed form is held.",
                )
            else:
                try:
                    api.put_consent(
                        sid, consent_form(given_by.strip(), relationship, given_on, minor)
                    )
                except ApiError as exc:
                    st.session_state[CONSENT_KEY] = (
                        "error",
                        f"Could not record the consent of {ui.plain(sid)}: "
                        + ui.plain(exc.message),
                    )
                else:
                    st.session_state[CONSENT_KEY] = (
                        "ok",
                        f"Consent of {ui.plain(chosen.name)} recorded.",
                    )
            st.rerun()
    with withdraw_col:
        st.markdown("**Withdraw consent**")
        st.caption(
            "Erases their face data (what the face model learned of their face, and their "
            "enrollment photos); they stay on the roster with their attendance, and are marked "
            "by hand."
        )
        sure = st.checkbox(
            f"Yes, withdraw the consent of {ui.plain(chosen.name)} and erase their face data",
            key=f"students.withdraw_sure.{sid}",
        )
        if st.button(
            "Withdraw consent",
            key=f"students.withdraw.{sid}",
            type="primary",
            icon=":material/person_remove:",
            disabled=not sure,
        ):
            try:
                done = api.withdraw_consent(sid)
            except ApiError as exc:
                st.session_state[CONSENT_KEY] = (
                    "error",
                    f"Could not withdraw the consent of {ui.plain(sid)}: " + ui.plain(exc.message),
                )
            else:
                st.session_state[CONSENT_KEY] = (
                    "ok",
                    f"Consent of {ui.plain(chosen.name)} withdrawn: "
                    + erased_words(
                        done.get("embeddings_removed", 0), done.get("photos_removed", 0)
                    ),
                )
            st.session_state.pop(f"students.withdraw_sure.{sid}", None)
            st.rerun()
    result = st.session_state.get(CONSENT_KEY)
    if result:
        (st.success if result[0] == "ok" else st.error)(result[1])


ROSTER_KEY = "students.roster_result"


def add_to_roster(api: ApiClient, classes: list[str]) -> None:
    """Put a student on a class's roster without photos (an admin): they are marked by hand."""
    st.subheader("Add a student without photos")
    with st.form("students.roster", clear_on_submit=True):
        c1, c2, c3 = st.columns(3)
        sid = c1.text_input("Student id", key="students.roster_id")
        name = c2.text_input("Name", key="students.roster_name")
        class_id = c3.text_input(
            "Class", key="students.roster_class", value=classes[0] if classes else ""
        )
        if st.form_submit_button("Add to the roster", icon=":material/person_add:"):
            try:
                added = api.add_to_roster(sid.strip(), name.strip(), class_id.strip())
            except ApiError as exc:
                st.session_state[ROSTER_KEY] = (
                    "error",
                    "Could not add the student: " + ui.plain(exc.message),
                )
            else:
                st.session_state[ROSTER_KEY] = (
                    "ok",
                    f"{ui.plain(added.name)} ({ui.plain(added.student_id)}) is on the roster of "
                    f"{ui.plain(', '.join(added.class_ids))}.",
                )
            st.rerun()
    result = st.session_state.get(ROSTER_KEY)
    if result:
        (st.success if result[0] == "ok" else st.error)(result[1])


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
