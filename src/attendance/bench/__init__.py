"""Benchmarks: one module per figure, run by src/attendance/bench/run.py (`make bench`)."""
