"""Monitoring: the API's readiness checks, and a link to Flower for the Celery tasks."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from attendance.frontend import ui
from attendance.frontend.api_client import ApiError


def render() -> None:
    st.title("Monitoring")
    flower = ui.flower_url()
    st.markdown(
        "Flower shows the Celery workers and every enrollment and recognition task "
        "(queued, running, succeeded, failed, retried). `make run` starts it."
    )
    st.link_button("Open Flower", flower, icon=":material/open_in_new:", type="primary")
    st.caption(f"Flower: {ui.plain(flower, links=True)}")

    st.subheader("API readiness")
    api = ui.client()
    st.caption(f"GET {ui.plain(api.base_url, links=True)}/readyz")
    try:
        ready = api.readiness()
    except ApiError as exc:
        ui.show_error(exc, "Could not ask the API")
        return
    checks = ready.get("checks", {})
    if ready.get("status") == "ready":
        st.success(
            "The API is ready: Redis, the stores and at least one worker answer.",
            icon=":material/check_circle:",
        )
    else:
        st.warning("The API is not ready: see the checks below.", icon=":material/warning:")
    st.dataframe(
        pd.DataFrame(
            [{"check": k, "status": v} for k, v in checks.items()], columns=["check", "status"]
        ),
        hide_index=True,
        width="stretch",
    )
    st.link_button(
        "OpenAPI document", f"{api.base_url}/api/v1/openapi.json", icon=":material/description:"
    )


if __name__ == "__main__":  # Streamlit runs a page as __main__; tests import it
    render()
