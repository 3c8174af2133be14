"""Submission bodies whose inputs stay JSON text in the API: what is kept as text, what is decoded and within
what bound, and an Idempotency-Key hash that is the same as when the API decoded everything."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from qqueue.api import bodies
from qqueue.api.schemas import JobSubmission, PubSubmission
from qqueue.api.submit import as_read, request_hash
from qqueue.errors import IntakeError
from qqueue.execution import registry
from qqueue.intake import IntakeLimits, IntakeRequest, pipeline

registry.load()

SWEEP = 'OPENQASM 3.0;\ninclude "stdgates.inc";\ninput float a;\ninput float b;\nqubit q;\nbit c;\n' \
        "rx(a) q;\nry(b) q;\nc = measure q;\n"


def decode(text: bytes, layout: bodies.Layout = bodies.JOB, limit: int = 1024) -> Any:
    return asyncio.run(bodies.decode(text, layout, limit=limit))


def test_a_jobs_inputs_stay_json_text_and_everything_else_is_decoded():
    body = decode(b' {"kind": "sample", "tags": ["x"], "pubs": [{"qc": "q", "parameter_values": [[1, 2.5]],'
                  b' "observables": null}, {"qc": "r"}]} ')
    assert body["kind"] == "sample" and body["tags"] == ["x"]
    first, second = body["pubs"]
    assert isinstance(first["parameter_values"], msgspec.Raw)
    assert bytes(first["parameter_values"]) == b"[[1, 2.5]]"
    assert first["observables"] is None  # null reads as absent, as a decoded body's did
    assert second == {"qc": "r"}


def test_the_rest_of_an_object_may_hold_only_so_much_json_in_arrays_and_objects():
    # Strings are cheap to decode and are not counted; arrays and objects are, the object's fields together.
    assert decode(b'{"qc": "' + b"x" * 5000 + b'", "pubs": []}')["pubs"] == []
    with pytest.raises(bodies.BodyTooLarge, match=r"`\$` holds more than 1024 bytes"):
        decode(b'{"metadata": {"a": [' + b"0," * 300 + b'0]}, "tags": [' + b'"t",' * 150 + b'"t"]}')
    with pytest.raises(bodies.BodyTooLarge, match=r"`\$.pubs\[1\]`"):
        decode(b'{"pubs": [{}, {"unknown": [' + b"[]," * 400 + b"[]]}]}")
    # The inputs themselves are not counted: they are intake's to bound.
    assert isinstance(decode(b'{"pubs": [{"parameter_values": [' + b"[0]," * 1000 + b"[0]]}]}")["pubs"][0][
        "parameter_values"], msgspec.Raw)


def test_a_whole_body_may_hold_only_so_many_objects_worth_of_arrays_however_they_are_spread():
    pub = b'{"qc": "q", "x": [' + b"[]," * 330 + b"[]]}"  # 994 bytes of arrays: under the object's 1024
    assert len(decode(b'{"pubs": [' + b",".join([pub] * bodies.BODY_OBJECTS) + b"]}")["pubs"]) == bodies.BODY_OBJECTS
    with pytest.raises(bodies.BodyTooLarge, match=f"the body holds more than {bodies.BODY_OBJECTS * 1024} bytes"):
        decode(b'{"pubs": [' + b",".join([pub] * (bodies.BODY_OBJECTS + 1)) + b"]}")


def test_text_that_is_not_utf8_or_json_is_refused_naming_where():
    with pytest.raises(UnicodeDecodeError):
        decode(b'{"pubs": [{"parameter_values": ["\xff"]}]}')
    with pytest.raises(msgspec.DecodeError, match=r"Number out of range - at `\$\.pubs\[0\]\.shots`"):
        decode(b'{"pubs": [{"shots": 1e999}]}')
    with pytest.raises(msgspec.DecodeError, match=r"- at `\$\.tasks\[3\]\.metadata\[\.\.\.\]\[1\]`"):
        asyncio.run(bodies.Decoding(1024).decode(b'{"metadata": {"a": [0, 1e999]}}', bodies.TASK,
                                                 where="$.tasks[3]"))


def test_a_large_array_is_decoded_a_piece_at_a_time_to_the_same_value():
    values = [[i, {"k": [i] * 3}] for i in range(20_000)]
    text = msgspec.json.encode({"metadata": {"a": values, "b": "x"}})
    assert len(text) > bodies.PIECE_BYTES
    assert decode(text, bodies.TASK, limit=len(text)) == {"metadata": {"a": values, "b": "x"}}


def test_a_body_not_shaped_as_its_layout_is_decoded_as_it_is_for_the_schema_to_refuse():
    assert decode(b'{"pubs": 5}') == {"pubs": 5}
    assert decode(b'[1, 2]') == [1, 2]
    assert decode(b'{"pubs": ["x", 3]}') == {"pubs": ["x", 3]}
    with pytest.raises(bodies.BodyTooLarge):
        decode(b"[" + b"[]," * 1000 + b"[]]")
    with pytest.raises(msgspec.DecodeError):
        decode(b'{"pubs": [{"parameter_values": [1,]}]}')


def test_a_batch_keeps_each_item_as_text_to_be_decoded_on_its_own():
    body = decode(b'{"tasks": [{"kind": "noop"}, 7]}', bodies.BATCH)
    assert [bytes(item) for item in body["tasks"]] == [b'{"kind": "noop"}', b"7"]
    item = decode(bytes(body["tasks"][0]), bodies.TASK)
    assert item == {"kind": "noop"}


@pytest.mark.parametrize("values", [
    b'[[0.1, 0.2], [0.3, 0.4]]',
    b'[ [0.1,0.2] ,[0.3 , 0.4] ]',
])
def test_a_hash_over_inputs_kept_as_text_is_the_hash_of_the_decoded_request(values):
    """The hash a job had when the API decoded its inputs itself: an Idempotency-Key stored then still matches,
    and two spellings of the same values are the same request."""
    decoded = JobSubmission(kind="sample", pubs=[PubSubmission(qc=SWEEP,
                                                               parameter_values=msgspec.json.decode(values))])
    as_text = JobSubmission(kind="sample", pubs=[PubSubmission(qc=SWEEP, parameter_values=msgspec.Raw(values))])
    prepared = pipeline.run(IntakeRequest(qc=SWEEP, kind="sample", parameter_values=msgspec.Raw(values),
                                          echo_inputs=True))
    read = msgspec.structs.replace(as_text, pubs=[as_read(as_text.pubs[0], prepared)])
    assert request_hash(read) == request_hash(decoded)


def test_a_named_object_of_values_hashes_alike_in_any_key_order():
    def read(text: bytes) -> str:
        pub = PubSubmission(qc=SWEEP, parameter_values=msgspec.Raw(text))
        prepared = pipeline.run(IntakeRequest(qc=SWEEP, kind="sample", parameter_values=pub.parameter_values,
                                              echo_inputs=True))
        return request_hash(as_read(pub, prepared))

    assert read(b'{"a": [0.1, 0.2], "b": [0.3, 0.4]}') == read(b'{"b": [0.3, 0.4], "a": [0.1, 0.2]}')
    assert read(b'{"a": [0.1, 0.2], "b": [0.3, 0.4]}') != read(b'{"a": [0.1, 0.2], "b": [0.3, 0.5]}')


def test_intake_bounds_the_arrays_of_inputs_kept_as_text_before_decoding_them():
    limits = IntakeLimits(max_parameter_values=1000)
    with pytest.raises(IntakeError) as refused:
        pipeline.run(IntakeRequest(qc=SWEEP, kind="sample", limits=limits,
                                   parameter_values=msgspec.Raw(b"[" + b"[]," * 3000 + b"[]]")))
    assert refused.value.code == "too_many_parameter_sets" and "3002 arrays and objects" in refused.value.message
    with pytest.raises(IntakeError) as deep:
        pipeline.run(IntakeRequest(qc=SWEEP, kind="sample",
                                   parameter_values=msgspec.Raw(b"[" * 1500 + b"]" * 1500)))
    assert deep.value.code == "invalid_parameters"
