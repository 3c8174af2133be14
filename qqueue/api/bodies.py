"""Submission bodies decoded with their bulk left as JSON text, so that no body holds the event loop for long.

A PUB's parameter values and observables may be megabytes of nested arrays. Decoding them into Python objects
takes the event loop for as long as it takes (10^6 parameter sets: half a second here; 32 MB of empty arrays:
three seconds), while every other request waits. So the API keeps them as `msgspec.Raw` JSON text, checked only
for being well-formed, and intake decodes them in its parser processes, under their deadline and memory ceiling
(`qqueue.intake.inputs`).

Everything else in a body is decoded here, with a bound: the arrays and objects of one object's other fields may
take at most `limit` bytes of JSON (the API's limit for a single submission's body), those of the whole body
`BODY_OBJECTS` times that; large arrays and objects are decoded a member at a time, and the loop is yielded to
after every `YIELD_BYTES` read. A route names its body's layout in its `opt` (`LAYOUT_OPT`); routes without one
are decoded as Litestar decodes them.
"""

from __future__ import annotations

import asyncio
import codecs
import re
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
#: JSON read after which the loop is given to other requests.
YIELD_BYTES = 64 * 1024
#: Arrays and objects larger than this are decoded a member at a time.
PIECE_BYTES = 64 * 1024
#: The arrays and objects a whole body may hold outside its inputs, in objects' worth (`limit` each): a job of
#: many PUBs, or a batch of many items, is bounded as a whole, not only each of its objects (8 MiB by default:
#: a batch of 1,000 tasks with 8 KiB of metadata each; some 200 MiB of Python objects if all of it were empty
#: arrays).
BODY_OBJECTS = 8

_objects = msgspec.json.Decoder(dict[str, msgspec.Raw])
_arrays = msgspec.json.Decoder(list[msgspec.Raw])
_LOCATION = re.compile(r" - at `\$(.*)`$")


class BodyTooLarge(ValueError):
    """Part of a body that would be decoded here holds more arrays and objects than it may."""


async def decode(text: bytes | msgspec.Raw, layout: Layout, *, limit: int) -> Any:
    """`text` decoded as JSON, with the fields `layout` marks left as `msgspec.Raw` (a JSON null as None).

    Raises `UnicodeDecodeError` for text that is not UTF-8, `msgspec.DecodeError` for text that is not JSON
    (naming where), `RecursionError` for nesting too deep to skip, and `BodyTooLarge` when one object's other
    fields hold more than `limit` bytes of arrays and objects, or the whole text more than `BODY_OBJECTS` times
    that."""
    return await Decoding(limit).decode(text, layout)


class Decoding:
    """Decodes the text of one request, in one or more parts (a batch's items, one by one), against one budget."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = BODY_OBJECTS * limit
        self._unyielded = 0

    async def decode(self, text: bytes | msgspec.Raw, layout: Layout, *, where: str = "$") -> Any:
        """`decode`, charged to this request's budget; `where` names `text` in the body, for messages."""
        whole = bytes(text)
        if whole[:1].isspace() or whole[-1:].isspace():
            whole = whole.strip(b" \t\r\n")
        _check_utf8(whole)  # JSON text is UTF-8; the splits below do not check inside what they skip
        return await self._value(whole, layout, where)

    async def _value(self, text: bytes | msgspec.Raw, layout: Layout, where: str) -> Any:
        if layout == RAW:
            return None if memoryview(text) == b"null" else msgspec.Raw(text)
        if isinstance(layout, tuple):
            if memoryview(text)[:1] != b"[":
                return await self._eager(text, where, [0])
            items = await self._split(_arrays, text, where)
            return [await self._value(item, layout[0], f"{where}[{i}]") for i, item in enumerate(items)]
        assert isinstance(layout, Mapping)
        if memoryview(text)[:1] != b"{":
            return await self._eager(text, where, [0])
        spent = [0]
        return {name: await (self._value(field, layout[name], f"{where}.{name}") if name in layout
                             else self._eager(field, f"{where}.{name}", spent, at=where))
                for name, field in (await self._split(_objects, text, where)).items()}

    async def _split(self, decoder: msgspec.json.Decoder[Any], text: bytes | msgspec.Raw, where: str) -> Any:
        """`text` as an array or object of its members' texts."""
        try:
            parts = decoder.decode(text)
        except msgspec.DecodeError as exc:
            raise _located(exc, where) from None
        await self._read(len(text))
        return parts

    async def _eager(self, text: bytes | msgspec.Raw, where: str, spent: list[int], *, at: str | None = None) -> Any:
        """`text` decoded whole; its arrays and objects charged to their object's `spent` and to the body's."""
        size = len(text)
        if memoryview(text)[:1] in (b"[", b"{"):
            spent[0] += size
            self.left -= size
            if spent[0] > self.limit:
                raise BodyTooLarge(f"`{at or where}` holds more than {self.limit} bytes of JSON arrays and objects "
                                   "besides parameter_values and observables")
            if self.left < 0:
                raise BodyTooLarge(f"the body holds more than {BODY_OBJECTS * self.limit} bytes of JSON arrays and "
                                   "objects besides parameter_values and observables")
        return await self._decoded(text, where)

    async def _decoded(self, text: bytes | msgspec.Raw, where: str) -> Any:
        """`text` decoded, an array or object larger than `PIECE_BYTES` member by member, so that no single
        decode holds the loop for long (a megabyte of empty arrays takes a tenth of a second at once)."""
        if len(text) > PIECE_BYTES and memoryview(text)[:1] == b"[":
            members = await self._split(_arrays, text, where)
            return [await self._decoded(member, f"{where}[{i}]") for i, member in enumerate(members)]
        if len(text) > PIECE_BYTES and memoryview(text)[:1] == b"{":
            fields = await self._split(_objects, text, where)
            return {name: await self._decoded(field, f"{where}[...]") for name, field in fields.items()}
        try:
            value = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise _located(exc, where) from None
        await self._read(len(text))
        return value

    async def _read(self, size: int) -> None:
        """Count `size` bytes read; let other requests run after every `YIELD_BYTES`."""
        self._unyielded += size
        if self._unyielded >= YIELD_BYTES:
            self._unyielded = 0
            await asyncio.sleep(0)


def _check_utf8(data: bytes) -> None:
    """Raise `UnicodeDecodeError` unless `data` is UTF-8, decoding a piece at a time rather than copying it whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), YIELD_BYTES):
        decoder.decode(view[start:start + YIELD_BYTES])
    decoder.decode(b"", final=True)


def _located(exc: msgspec.DecodeError, where: str) -> msgspec.DecodeError:
    """`exc` naming where in the whole body it happened (msgspec names where in the part it was given)."""
    text = str(exc)
    found = _LOCATION.search(text)
    path = where + (found[1] if found else "")
    return msgspec.DecodeError(f"{_LOCATION.sub('', text)} - at `{path}`")
