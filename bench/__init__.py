"""Benchmarks: one module per figure, run by bench/run.py (`make bench`)."""
