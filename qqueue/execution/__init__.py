"""Execution: pure functions from a task's payload to its result; no database, no HTTP.

Task kinds register themselves in `registry`; slot processes look them up by name.
"""
