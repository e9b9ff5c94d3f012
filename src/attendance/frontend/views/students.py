"""Students and model: who is enrolled with how many embeddings, and what the gallery is."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attendance.domain.schemas import ModelInfo, Student
from attendance.frontend import ui
from attendance.frontend.api_client import ApiClient, ApiError
from attendance.frontend.roster import classes_of
from attendance.frontend.views.enroll import run_enrollments, show_outcomes

ALL = "All"
# Results of the last rename or photo upload, shown until the next one.
CHANGE_KEY = "students.change_result"
# Part of the add-photos widgets' keys: a new, empty uploader after every submission.
GEN_KEY = "students.form_generation"


def students_frame(students: list[Student]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "student_id": s.student_id,
                "name": s.name,
                "classes": ", ".join(s.class_ids),
                "embeddings": s.embeddings,
            }
            for s in sorted(students, key=lambda s: (s.name.lower(), s.student_id))
        ],
        columns=["student_id", "name", "classes", "embeddings"],
    )


def show_model(model: ModelInfo) -> None:
    st.subheader("Model")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Gallery version", model.version)
    c2.metric("Model", model.model_name)
    c3.metric("Detector", model.detector)
    c4.metric(
        "Match threshold",
        f"{model.threshold:.2f}",
        help=f"{model.metric} distance above which a face is unknown",
    )
    c1.metric("Students in the gallery", model.students)
    c2.metric("Embeddings", model.embeddings)
    c3.metric("Metric", model.metric)
    c4.metric(
        "Updated",
        model.updated_at.strftime("%Y-%m-%d") if model.updated_at else "never",
        help=model.updated_at.isoformat(timespec="seconds") if model.updated_at else None,
    )
    if model.version == 0:
        st.info("Nobody is enrolled yet: the gallery is empty.", icon=":material/info:")


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
    st.markdown(
        f"**{len(shown)} student{'s' * (len(shown) != 1)}**, "
        f"{sum(s.embeddings for s in shown)} embeddings"
    )
    st.dataframe(
        students_frame(shown),
        hide_index=True,
        width="stretch",
        key="students.table",
        column_config={
            "embeddings": st.column_config.NumberColumn(
                "embeddings", help="face photos of this student in the current gallery"
            )
        },
    )
    if without:
        st.warning(
            "No embedding (cannot be recognised): "
            + ", ".join(ui.plain(f"{s.name} ({s.student_id})") for s in without),
            icon=":material/warning:",
        )
    if shown:
        change_student(api, shown)


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
        class_id = st.text_input(
            "Also add them to a class (optional)",
            key=_key("class_id"),
            help="Leave empty to keep their classes: " + (", ".join(chosen.class_ids) or "none"),
        )
        files = st.file_uploader(
            f"More photos of {ui.plain(chosen.name)}",
            type=ui.IMAGE_TYPES,
            accept_multiple_files=True,
            key=_key("photos"),
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
            config = ui.settings()
            outcomes = run_enrollments(
                api,
                [(sid, chosen.name, class_id.strip() or None, photos)],
                config.max_enroll_photos,
                ui.request_bytes(config),
                add=True,
            )
            st.session_state[CHANGE_KEY] = ("jobs", "", outcomes)
            st.session_state[GEN_KEY] = st.session_state.get(GEN_KEY, 0) + 1
            st.rerun()  # an empty uploader, and the table's new embedding count
    result = st.session_state.get(CHANGE_KEY)
    if result:
        kind, message, outcomes = result
        if kind == "jobs":
            show_outcomes(outcomes)
        else:
            (st.success if kind == "ok" else st.error)(message)


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
