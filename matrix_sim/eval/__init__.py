"""Benchmarks and quality measured against the source world."""
