"""Browser tests: the Streamlit app in headless Chromium (skipped when it is missing)."""
