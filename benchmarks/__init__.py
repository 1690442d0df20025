"""Throughput benchmarks: ``.venv/bin/python -m benchmarks.run --help``."""
