"""One script per page of the Streamlit app (frontend/app.py registers them)."""
