"""Submission bodies decoded with their bulk left as JSON text, so that no body holds the event loop for long.

A PUB's parameter values and observables may be megabytes of nested arrays. Decoding them into Python objects
takes the event loop for as long as it takes (10^6 parameter sets: half a second here; 32 MB of empty arrays:
three seconds), while every other request waits. So the API keeps them as `msgspec.Raw` JSON text, checked only
for being well-formed, and intake decodes them in its parser processes, under their deadline and memory ceiling
(`qqueue.intake.inputs`).

Everything else in a body is decoded here, with a bound: the arrays and objects of one object's other fields may
take at most `limit` bytes of JSON (the API's limit for a single submission's body), and the loop is yielded to
after every `YIELD_BYTES` decoded. A route names its body's layout in its `opt` (`LAYOUT_OPT`); routes without
one are decoded as Litestar decodes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import msgspec

#: Route option naming the layout of the route's body, and the app's option holding `limit`.
LAYOUT_OPT = "body_layout"
LIMIT_OPT = "body_object_limit"
#: A field kept as JSON text.
RAW: Final = "raw"
#: A layout: at each object, the fields that are kept as text (RAW) or have a layout of their own; a one-item
#: tuple is an array whose every item has that layout.
Layout = Mapping[str, "Layout"] | tuple["Layout"] | str
#: A submission's inputs (POST /tasks, and each batch item).
TASK: Final[Layout] = {"parameter_values": RAW, "observables": RAW}
#: POST /jobs: each PUB's inputs.
JOB: Final[Layout] = {"pubs": (TASK,)}
#: POST /tasks/batch: each item as text, decoded one at a time (`decode`) with the TASK layout.
BATCH: Final[Layout] = {"tasks": (RAW,)}
#: Decoded JSON after which the loop is given to other requests.
YIELD_BYTES = 256 * 1024

_objects = msgspec.json.Decoder(dict[str, msgspec.Raw])
_arrays = msgspec.json.Decoder(list[msgspec.Raw])


class BodyTooLarge(ValueError):
    """Part of a body that would be decoded here holds more JSON than one object may."""


async def decode(text: bytes | msgspec.Raw, layout: Layout, *, limit: int) -> Any:
    """`text` decoded as JSON, with the fields `layout` marks left as `msgspec.Raw` (a JSON null as None).

    Raises `msgspec.DecodeError` for text that is not JSON, `RecursionError` for nesting too deep to skip, and
    `BodyTooLarge` when one object's other fields hold more than `limit` bytes of arrays and objects."""
    return await _Decoding(limit).value(bytes(text).strip(b" \t\r\n"), layout, "$")


class _Decoding:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.unyielded = 0

    async def value(self, text: bytes | msgspec.Raw, layout: Layout, where: str) -> Any:
        if layout == RAW:
            return None if memoryview(text) == b"null" else msgspec.Raw(text)
        if isinstance(layout, tuple):
            if memoryview(text)[:1] != b"[":
                return await self.eager(text, where, [0])
            return [await self.value(item, layout[0], f"{where}[{i}]") for i, item in enumerate(_arrays.decode(text))]
        assert isinstance(layout, Mapping)
        if memoryview(text)[:1] != b"{":
            return await self.eager(text, where, [0])
        spent = [0]
        return {name: await (self.value(field, layout[name], f"{where}.{name}") if name in layout
                             else self.eager(field, where, spent))
                for name, field in _objects.decode(text).items()}

    async def eager(self, text: bytes | msgspec.Raw, where: str, spent: list[int]) -> Any:
        """`text` decoded whole; its arrays and objects charged to their object's `spent`."""
        size = len(text)
        if memoryview(text)[:1] in (b"[", b"{"):
            spent[0] += size
            if spent[0] > self.limit:
                raise BodyTooLarge(f"`{where}` holds more than {self.limit} bytes of JSON arrays and objects "
                                   "besides parameter_values and observables")
        value = msgspec.json.decode(text)
        self.unyielded += size
        if self.unyielded >= YIELD_BYTES:
            self.unyielded = 0
            await asyncio.sleep(0)
        return value
