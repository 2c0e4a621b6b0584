"""Benchmarks (not timed tests): each script runs on its own, see its docstring."""
