"""Students and model: who is enrolled with how many embeddings, and what the gallery is."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from common.schemas import ModelInfo, Student
from frontend import ui
from frontend.roster import classes_of

ALL = "All"


def students_frame(students: list[Student]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"student_id": s.student_id, "name": s.name, "classes": ", ".join(s.class_ids),
          "embeddings": s.embeddings}
         for s in sorted(students, key=lambda s: (s.name.lower(), s.student_id))],
        columns=["student_id", "name", "classes", "embeddings"],
    )


def show_model(model: ModelInfo) -> None:
    st.subheader("Model")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Gallery version", model.version)
    c2.metric("Model", model.model_name)
    c3.metric("Detector", model.detector)
    c4.metric("Match threshold", f"{model.threshold:.2f}",
              help=f"{model.metric} distance above which a face is unknown")
    c1.metric("Students in the gallery", model.students)
    c2.metric("Embeddings", model.embeddings)
    c3.metric("Metric", model.metric)
    c4.metric("Updated", model.updated_at.strftime("%Y-%m-%d") if model.updated_at else "never",
              help=model.updated_at.isoformat(timespec="seconds") if model.updated_at else None)
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
    st.markdown(f"**{len(shown)} student{'s' * (len(shown) != 1)}**, "
                f"{sum(s.embeddings for s in shown)} embeddings")
    st.dataframe(
        students_frame(shown), hide_index=True, width="stretch", key="students.table",
        column_config={"embeddings": st.column_config.NumberColumn(
            "embeddings", help="face photos of this student in the current gallery")},
    )
    if without:
        st.warning("No embedding (cannot be recognised): "
                   + ", ".join(ui.plain(f"{s.name} ({s.student_id})") for s in without),
                   icon=":material/warning:")


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
