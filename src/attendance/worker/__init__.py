"""Celery workers: thin tasks over common/."""
