"""Celery workers: thin tasks over attendance.services."""
