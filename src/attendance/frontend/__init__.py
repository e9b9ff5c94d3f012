"""The Streamlit app: the teachers' and administrators' window onto the API (and nothing else)."""
