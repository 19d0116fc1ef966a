"""Benchmarks: each script accepts --quick and ends with one `RESULT <bench> k=v ...` line."""
