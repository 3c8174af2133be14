"""API key format, hashing and comparison: pure functions, no database."""

from __future__ import annotations

import hashlib

from qqueue.store import keys


def test_only_a_well_formed_key_yields_its_prefix():
    key = f"qq_abcdefgh1234_{'x' * 43}"
    assert keys.parse(key) == "abcdefgh1234"
    for bad in ("", "qq_", key + "x", key[:-1], key.replace("qq_", "qk_"), f"qq_ABCDEFGH1234_{'x' * 43}",
                f" {key}", f"qq_abcdefgh1234_{'x' * 42}!"):
        assert keys.parse(bad) is None, bad


def test_the_stored_form_is_the_sha256_of_the_key_and_verify_accepts_only_that_key():
    key = f"qq_abcdefgh1234_{'y' * 43}"
    stored = keys.hash_key(key)
    assert stored == hashlib.sha256(key.encode()).digest() and len(stored) == 32
    assert keys.verify(key, stored)
    assert keys.verify(key, memoryview(stored))  # as psycopg returns bytea
    assert not keys.verify(key[:-1] + "z", stored)
    assert not keys.verify("", stored)
