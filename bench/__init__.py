"""Tollgate benchmarks (not part of the test run): ``python -m bench``, see docs/performance.md."""
