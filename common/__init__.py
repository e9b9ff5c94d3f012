"""Code shared by the web API, the workers and the frontend: nothing framework-bound."""
