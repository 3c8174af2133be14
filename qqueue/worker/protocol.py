"""The slot protocol: every message between the supervisor and a slot, as typed Structs, and the one place they
are framed, encoded and decoded.

To a slot go `Batch` (tasks to run, in order) and `Stop` (exit). From a slot come `Done` (outcomes, in run order,
with their timings) and `Skipped` (tasks it did not start because the supervisor is stopping). Each message is one
frame of `multiprocessing.connection.Connection.send_bytes`.

The two directions use different formats on purpose. Payloads going out are JSON documents read from jsonb, so
they are sent as JSON: msgpack cannot carry an integer beyond 64 bits, which jsonb (and therefore a payload) can
hold. Results coming back are already JSON bytes, so they travel as msgpack, where a result is one length-prefixed
blob that is neither escaped nor re-scanned. The Structs are arrays on the wire and untracked by the garbage
collector (they hold no cycles): on the supervisor's side, building, encoding and decoding them costs less per
task than the pickled tuples they replaced, which matters on the hot path of a no-op drain.
"""

from __future__ import annotations

from multiprocessing.connection import Connection

import msgspec

__all__ = [
    "Batch",
    "Done",
    "FromSlot",
    "Outcome",
    "Skipped",
    "Stop",
    "TaskToRun",
    "ToSlot",
    "receive_from_slot",
    "receive_in_slot",
    "send_to_slot",
    "send_to_supervisor",
]


class TaskToRun(msgspec.Struct, array_like=True, gc=False):
    """One task handed to a slot."""

    #: The supervisor's dispatch sequence number: the only handle the slot and the supervisor share for it.
    seq: int
    kind: str
    #: The payload's JSON as the claim read it from jsonb: the supervisor never decodes it, the slot does.
    payload: msgspec.Raw


class Batch(msgspec.Struct, array_like=True, gc=False, tag="batch"):
    """Tasks for a slot to run one after another, in this order."""

    tasks: list[TaskToRun]


class Stop(msgspec.Struct, array_like=True, gc=False, tag="stop"):
    """Exit once the current batch is done."""


class Outcome(msgspec.Struct, array_like=True, gc=False):
    """How one task ended in the slot."""

    seq: int
    #: True: `body` is the result's JSON; False: it is the error's JSON (type, message, retryable).
    ok: bool
    body: bytes
    #: Wall-clock time (`time.time()`) the slot started the task.
    slot_started_at: float
    exec_s: float


class Done(msgspec.Struct, array_like=True, gc=False, tag="done"):
    """Outcomes of tasks the slot ran, in run order."""

    outcomes: list[Outcome]


class Skipped(msgspec.Struct, array_like=True, gc=False, tag="skipped"):
    """Tasks the slot never started because it was told to stop."""

    seqs: list[int]


ToSlot = Batch | Stop
FromSlot = Done | Skipped

_to_slot_encoder = msgspec.json.Encoder()
_to_slot_decoder = msgspec.json.Decoder(ToSlot)
_from_slot_encoder = msgspec.msgpack.Encoder()
_from_slot_decoder = msgspec.msgpack.Decoder(FromSlot)


def send_to_slot(conn: Connection, message: ToSlot) -> None:
    """Send a message from the supervisor to a slot."""
    conn.send_bytes(_to_slot_encoder.encode(message))


def receive_in_slot(conn: Connection) -> ToSlot:
    """Read the next message from the supervisor (blocks; EOFError once the supervisor's end is closed)."""
    return _to_slot_decoder.decode(conn.recv_bytes())


def send_to_supervisor(conn: Connection, message: FromSlot) -> None:
    """Send a message from a slot to its supervisor."""
    conn.send_bytes(_from_slot_encoder.encode(message))


def receive_from_slot(conn: Connection) -> FromSlot:
    """Read the next message from a slot (blocks; EOFError once the slot is gone)."""
    return _from_slot_decoder.decode(conn.recv_bytes())
