"""Benchmarks (not tests): `python3 dev.py bench` writes docs/benchmarks.md and a plot."""
