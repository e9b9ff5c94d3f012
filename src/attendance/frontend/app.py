"""The Streamlit app's entry point: ``streamlit run src/attendance/frontend/app.py`` (the
Procfile's frontend).

It talks to the API at ATTENDANCE_API_URL (attendance.frontend.settings) and to nothing else,
with the API token someone logged in with in the sidebar (ATTENDANCE_API_TOKEN until then).
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from attendance.frontend import ui

# Not "pages/": Streamlit takes a pages/ folder next to the entry point for an old-style
# multipage app, and a fresh server (or AppTest) would then run a deep-linked page (/attendance)
# on its own, without this script: no navigation, no API status, no login in the sidebar.
PAGES = Path(__file__).resolve().parent / "views"
# The app's own, served by Streamlit itself (a :material/...: page icon is fetched from Google's
# font servers, so a school network without internet access would show none).
ICON = Path(__file__).resolve().parent / "icon.svg"
SIDEBAR_PX = 248

# The toolbar shows only these menu items (client.toolbarMode = "minimal", .streamlit/config.toml).
st.set_page_config(
    page_title="Classroom attendance",
    page_icon=ICON,
    layout="wide",
    # A width in pixels keeps the "auto" state (collapsed on a phone) and leaves a tablet's
    # portrait screen (820 px) about two thirds for the page instead of Streamlit's 300 px.
    initial_sidebar_state=SIDEBAR_PX,
    menu_items={
        "About": "**Classroom attendance**: take attendance from class photos, enroll students "
        "and keep the register."
    },
)

navigation = st.navigation(
    {
        "Classroom": [
            st.Page(
                PAGES / "take_attendance.py",
                title="Take attendance",
                icon=":material/photo_camera:",
                url_path="take_attendance",
                default=True,
            ),
            st.Page(
                PAGES / "attendance.py",
                title="Attendance",
                icon=":material/table_chart:",
                url_path="attendance",
            ),
        ],
        "Administration": [
            st.Page(
                PAGES / "enroll.py", title="Enroll", icon=":material/person_add:", url_path="enroll"
            ),
            st.Page(
                PAGES / "students.py",
                title="Students and model",
                icon=":material/badge:",
                url_path="students",
            ),
            st.Page(
                PAGES / "accounts.py",
                title="Accounts",
                icon=":material/manage_accounts:",
                url_path="accounts",
            ),
            st.Page(
                PAGES / "monitoring.py",
                title="Monitoring",
                icon=":material/monitor_heart:",
                url_path="monitoring",
            ),
        ],
    }
)
# Before the pages: a login (or log out) takes effect in the same run.
ui.login_sidebar(ui.api_status_sidebar())
navigation.run()
