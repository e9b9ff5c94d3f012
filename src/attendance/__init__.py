"""Classroom attendance by face recognition."""
