"""One script per page of the Streamlit app (src/attendance/frontend/app.py registers them; the folder is not
called pages/, which Streamlit would take for an old-style multipage app)."""
