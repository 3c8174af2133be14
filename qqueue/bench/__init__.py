"""Benchmarks behind `qqueue bench`: measured on the machine at hand, reported as medians and rates."""
