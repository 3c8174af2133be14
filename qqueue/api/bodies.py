"""Submission bodies decoded with their bulk left as JSON text, so that no body holds the event loop for long.

A PUB's parameter values and observables may be megabytes of nested arrays. Decoding them into Python objects
takes the event loop for as long as it takes (10^6 parameter sets: about a second here; 27 MB of empty arrays:
three), while every other request waits. So the API keeps them as `msgspec.Raw` JSON text, checked for being
well-formed JSON (not for holding only numbers a double can take: that is intake's to say), and intake decodes
them in its parser processes, under their deadline and memory ceiling (`qqueue.intake.inputs`).

Everything else in a body is decoded here, with bounds: the arrays and objects of one object's other fields may
take at most `limit` bytes of JSON (the API's limit for a single submission's body), those of a whole body
`BODY_OBJECTS` times that; an array the schema caps (a batch's items, a job's PUBs) is not split past its cap;
large arrays and objects of many containers are decoded a member at a time, and the loop is yielded to after
every `YIELD_BYTES` read. A route names its body's layout in its `opt` (`LAYOUT_OPT`); routes without one are
decoded as Litestar decodes them.
"""

from __future__ import annotations

import asyncio
import codecs
import functools
import re
from collections.abc import Mapping
from typing import Any, Final

import msgspec

from qqueue.api.schemas import MAX_BATCH, MAX_JOB_PUBS

#: Route option naming the layout of the route's body, and the app's option holding `limit`.
LAYOUT_OPT = "body_layout"
LIMIT_OPT = "body_object_limit"
#: A field kept as JSON text.
RAW: Final = "raw"


class Items(msgspec.Struct, frozen=True):
    """An array whose every item has `layout`, at most `most` of them (the schema's own cap)."""

    layout: Layout
    most: int


#: A layout: at each object, the fields that are kept as text (RAW), or have a layout of their own.
Layout = Mapping[str, "Layout"] | Items | str
#: A submission's inputs (POST /tasks, and each batch item).
TASK: Final[Layout] = {"parameter_values": RAW, "observables": RAW}
#: POST /jobs: each PUB's inputs.
JOB: Final[Layout] = {"pubs": Items(TASK, MAX_JOB_PUBS)}
#: POST /tasks/batch: each item as text, decoded one at a time (`Decoding.decode`) with the TASK layout.
BATCH: Final[Layout] = {"tasks": Items(RAW, MAX_BATCH)}
#: JSON read after which the loop is given to other requests.
YIELD_BYTES = 64 * 1024
#: Arrays and objects larger than this, holding more than `PIECE_CONTAINERS` arrays and objects, are decoded a
#: member at a time: containers are what costs (a megabyte of empty arrays takes a tenth of a second at once, a
#: megabyte of numbers a few milliseconds).
PIECE_BYTES = 64 * 1024
PIECE_CONTAINERS = 4096
#: The arrays and objects a whole body may hold outside its inputs, in objects' worth (`limit` each): a job of
#: many PUBs, or a batch of many items, is bounded as a whole, not only each of its objects. 16 MiB by default:
#: a batch of 1,000 items with 8 KiB of metadata each, or of 100 transpile items with coupling maps of 10,000
#: edges, fits; 16 MiB of nothing but empty arrays would be some 400 MiB of Python objects.
BODY_OBJECTS = 16

_objects = msgspec.json.Decoder(dict[str, msgspec.Raw])
_arrays = msgspec.json.Decoder(list[msgspec.Raw])
_LOCATION = re.compile(r" - at `\$(.*)`$")
_FIELD_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_SPACE = b" \t\r\n"


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
    """Decodes the text of one request against one budget, in one part or several: a batch's items are decoded
    one by one by its handler, on a `Decoding` of their own, after the body's."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.left = BODY_OBJECTS * limit
        self._unyielded = 0

    async def decode(self, text: bytes | msgspec.Raw, layout: Layout, *, where: str = "$") -> Any:
        """`decode`, charged to this request's budget; `where` names `text` in the body, for messages."""
        whole = bytes(text)
        _check_utf8(whole)  # JSON text is UTF-8; the splits below do not check inside what they skip
        return await self._value(whole, layout, where)

    async def _value(self, text: bytes | msgspec.Raw, layout: Layout, where: str) -> Any:
        if layout == RAW:
            return None if memoryview(text) == b"null" else msgspec.Raw(text)
        if isinstance(layout, Items):
            if _first(text) != b"[":
                return await self._eager(text, where, [0])
            items = await self._split(_capped(layout.most), text, where)
            if items is None:
                # Past the cap: the schema refuses it, in its own words, without this splitting it further.
                return [None] * (layout.most + 1)
            return [await self._value(item, layout.layout, f"{where}[{i}]") for i, item in enumerate(items)]
        assert isinstance(layout, Mapping)
        if _first(text) != b"{":
            return await self._eager(text, where, [0])
        spent = [0]
        return {name: await (self._value(field, layout[name], f"{where}.{name}") if name in layout
                             else self._eager(field, _member(where, name), spent, at=where))
                for name, field in (await self._split(_objects, text, where)).items()}

    async def _split(self, decoder: msgspec.json.Decoder[Any], text: bytes | msgspec.Raw, where: str) -> Any:
        """`text` as an array or object of its members' texts; None past a capped array's cap."""
        try:
            parts = decoder.decode(text)
        except msgspec.ValidationError:
            return None  # only the capped decoders validate anything
        except msgspec.DecodeError as exc:
            raise _located(exc, where) from None
        await self._read(len(text))
        if isinstance(parts, msgspec.Struct):
            parts = [part for part in msgspec.structs.astuple(parts) if len(part)]
        return parts

    async def _eager(self, text: bytes | msgspec.Raw, where: str, spent: list[int], *, at: str | None = None) -> Any:
        """`text` decoded whole; its arrays and objects charged to their object's `spent` and to the body's."""
        size = len(text)
        if _first(text) in (b"[", b"{"):
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
        """`text` decoded; a large array or object of many containers a member at a time."""
        if len(text) > PIECE_BYTES and _first(text) in (b"[", b"{"):
            plain = bytes(text)
            if plain.count(b"[") + plain.count(b"{") > PIECE_CONTAINERS:
                if _first(text) == b"[":
                    members = await self._split(_arrays, text, where)
                    return [await self._decoded(member, f"{where}[{i}]") for i, member in enumerate(members)]
                fields = await self._split(_objects, text, where)
                return {name: await self._decoded(field, _member(where, name)) for name, field in fields.items()}
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


@functools.cache
def _capped(most: int) -> msgspec.json.Decoder[Any]:
    """A decoder splitting an array of at most `most` items into their texts, failing as soon as it meets one
    more: an array-like Struct of `most` optional fields stops at the first surplus item, where a list with a
    maximum length would first split all of them (15,000,000 zeros: most of a second, and a gigabyte)."""
    fields = [(f"item{i}", msgspec.Raw, msgspec.Raw()) for i in range(most)]
    return msgspec.json.Decoder(msgspec.defstruct("CappedItems", fields, array_like=True,
                                                  forbid_unknown_fields=True))


def _first(text: bytes | msgspec.Raw) -> bytes:
    """The first byte of `text` that is not JSON whitespace."""
    view = memoryview(text)
    for start in range(len(view)):
        if view[start] not in _SPACE:
            return bytes(view[start:start + 1])
    return b""


def _member(where: str, name: str) -> str:
    """Where an object's member is, as msgspec writes it: by name for a field name, `[...]` for other keys."""
    return f"{where}.{name}" if _FIELD_NAME.fullmatch(name) else f"{where}[...]"


def _check_utf8(data: bytes) -> None:
    """Raise `UnicodeDecodeError` unless `data` is UTF-8, decoding a piece at a time rather than copying it whole."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    view = memoryview(data)
    for start in range(0, len(view), YIELD_BYTES):
        decoder.decode(view[start:start + YIELD_BYTES])
    decoder.decode(b"", final=True)


def _located(exc: msgspec.DecodeError, where: str) -> msgspec.DecodeError:
    """`exc` naming where in the whole body it happened (msgspec names where in the part it was given); as it is
    where neither says."""
    text = str(exc)
    found = _LOCATION.search(text)
    if not found and where == "$":
        return exc
    return msgspec.DecodeError(f"{_LOCATION.sub('', text)} - at `{where}{found[1] if found else ''}`")
