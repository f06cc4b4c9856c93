"""Benchmarks: ``python3 bench/run.py`` runs the whole server benchmark (see README.md)."""
