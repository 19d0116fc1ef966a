"""What a Yjs update (v1 encoding) adds and what it depends on, read before pycrdt sees it.
Sans-IO, bounded by the bytes it is given; raises only ``RemoteProtocolError``.

Why: pycrdt (yrs) integrates some structs of an update whose dependencies are missing, and
keeps others as "pending", in either case holding state that the update it emits, the
state it encodes and its peers disagree on (a struct after a gap in its own client's clocks
shows up in the text yet is never relayed; a delete of clocks not yet seen would silently
delete another client's future text on the server only). An update is therefore refused
unless everything it references is already in the document or in the update itself, and
its own structs continue each client's clocks without a gap. An item whose left and right
origins are the same item cannot come from any Yjs client and is integrated differently by
a replica that reads it from a snapshot, so it is refused too.

The v1 encoding (Yjs ``encoding.js``/``UpdateDecoderV1``, lib0 varints)::

    update    = varUint(#clients) { varUint(#structs) varUint(client) varUint(clock) struct* }
                delete_set
    struct    = info:uint8 ...      info & 0x1f: 0 GC, 10 Skip, else the content of an Item
    item      = [origin: ID if info & 0x80] [right origin: ID if info & 0x40]
                [parent if neither: varUint(1) varString(root name) | varUint(0) ID]
                [parent sub: varString if neither and info & 0x20] content
    ID        = varUint(client) varUint(clock)
    delete_set= varUint(#clients)
                { varUint(client) varUint(#ranges) (varUint(clock) varUint(len))* }

A struct's length in clocks is its content's: a string counts UTF-16 code units.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from syncrox.errors import RemoteProtocolError
from syncrox.protocol.collab import BAD_UPDATE, MAX_VAR_UINT, MAX_VAR_UINT_BYTES

_GC, _SKIP = 0, 10  # struct kinds that are not items; 1-9 are item content types
_HAS_ORIGIN, _HAS_RIGHT_ORIGIN, _HAS_PARENT_SUB = 0x80, 0x40, 0x20
_XML_ELEMENT, _XML_HOOK = 3, 5  # type refs that carry a name
MAX_ANY_DEPTH = 64  # nesting of lib0 "any" values (JSON-like); deeper is refused
# yrs keeps clocks and lengths in 32 bits and silently cuts larger ones: a GC of length
# 2^32 + 1 is 1 to it, a gap to us. Every clock, and every clock plus length, must fit.
MAX_CLOCK = 2**32 - 1

ID = tuple[int, int]
_MISSING = "depends on changes this document does not have"


class TooManyDeletes(RemoteProtocolError):
    """More delete ranges than the caller allows (see ``collab_doc.MAX_DELETE_RANGES``)."""


def _bad(reason: str) -> RemoteProtocolError:
    return RemoteProtocolError(BAD_UPDATE, reason)


@dataclass
class UpdateShape:
    """What one update holds: per client the clock range its structs cover, every ID its
    items reference, and the delete set's ranges."""

    ranges: dict[int, tuple[int, int]] = field(default_factory=dict)  # client -> [start, end)
    references: list[ID] = field(default_factory=list)
    deletes: list[tuple[int, int, int]] = field(default_factory=list)  # client, clock, length


def read_update_shape(update: bytes, max_deletes: int | None = None) -> UpdateShape:
    """``max_deletes``: refuse (``TooManyDeletes``) an update with more delete ranges,
    without reading the rest of them."""
    reader = _Reader(update)
    shape = UpdateShape()
    for _ in range(reader.count("client")):
        structs, client, clock = reader.uint(), reader.uint(), reader.uint()
        if structs > len(update) or client in shape.ranges:
            raise _bad("malformed struct section")
        start = clock
        for _ in range(structs):
            clock += reader.struct(shape.references)
        if clock > MAX_CLOCK:
            raise _bad("a clock beyond 32 bits")
        if structs:
            shape.ranges[client] = (start, clock)
    for _ in range(reader.count("delete set client")):
        client = reader.uint()
        for _ in range(reader.count("delete range")):
            if max_deletes is not None and len(shape.deletes) >= max_deletes:
                raise TooManyDeletes(BAD_UPDATE, "too many deletions at once")
            clock, length = reader.uint(), reader.uint()
            if clock + length > MAX_CLOCK:
                raise _bad("a clock beyond 32 bits")
            shape.deletes.append((client, clock, length))
    if reader.pos != len(update):
        raise _bad("trailing bytes after the update")
    return shape


def check_dependencies(shapes: list[UpdateShape], known: Mapping[int, int]) -> list[str | None]:
    """For updates applied in order to a document whose state vector is ``known``: ``None``
    for each update that may be applied, else why not. A refused update adds nothing to
    what later ones may depend on."""
    clocks = dict(known)
    verdicts: list[str | None] = []
    for shape in shapes:
        verdict = _check_one(shape, clocks)
        verdicts.append(verdict)
        if verdict is None:
            for client, (_, end) in shape.ranges.items():
                clocks[client] = max(clocks.get(client, 0), end)
    return verdicts


def _check_one(shape: UpdateShape, clocks: Mapping[int, int]) -> str | None:
    after = dict(clocks)
    for client, (start, end) in shape.ranges.items():
        if start > clocks.get(client, 0):
            return f"{_MISSING}: client {client} starts at clock {start}"
        after[client] = max(after.get(client, 0), end)
    for client, clock in shape.references:
        if clock >= after.get(client, 0):
            return f"{_MISSING}: it refers to clock {clock} of client {client}"
    for client, clock, length in shape.deletes:
        if clock + length > after.get(client, 0):
            return f"it deletes what this document does not have: client {client}, clock {clock}"
    return None


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def uint(self) -> int:
        """A lib0 varUint (as ``collab.read_var_uint``; inlined: this is the hot path)."""
        data, pos = self.data, self.pos
        if pos < len(data) and data[pos] < 0x80:  # most numbers fit one byte
            self.pos = pos + 1
            return data[pos]
        value = shift = 0
        for index in range(pos, min(len(data), pos + MAX_VAR_UINT_BYTES)):
            byte = data[index]
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if value > MAX_VAR_UINT:
                    break
                self.pos = index + 1
                return value
            shift += 7
        raise _bad("a truncated or oversized number")

    def count(self, what: str) -> int:
        """A count of things that take at least one byte each (bounds every loop)."""
        value = self.uint()
        if value > len(self.data) - self.pos:
            raise _bad(f"{what} count exceeds the update")
        return value

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise _bad("the update ends inside a struct")
        self.pos += 1
        return self.data[self.pos - 1]

    def skip(self, size: int) -> None:
        if self.pos + size > len(self.data):
            raise _bad("the update ends inside a value")
        self.pos += size

    def buffer(self) -> bytes:
        size = self.uint()
        start, end = self.pos, self.pos + size
        if end > len(self.data):
            raise _bad("the update ends inside a value")
        self.pos = end
        return self.data[start:end]

    def string(self) -> str:
        try:
            return self.buffer().decode("utf-8")
        except UnicodeDecodeError:
            raise _bad("a string that is not UTF-8") from None

    def identifier(self) -> ID:
        client, clock = self.uint(), self.uint()
        if clock > MAX_CLOCK:
            raise _bad("a clock beyond 32 bits")
        return client, clock

    def struct(self, references: list[ID]) -> int:
        """Read one struct; return its length in clocks."""
        info = self.byte()
        kind = info & 0x1F
        if kind in (_GC, _SKIP):
            if kind == _SKIP:
                raise _bad("the update has a hole (a skip struct)")
            return self._length()
        origin = right = None
        if info & _HAS_ORIGIN:
            origin = self.identifier()
            references.append(origin)
        if info & _HAS_RIGHT_ORIGIN:
            right = self.identifier()
            if right == origin:
                raise _bad("an item whose left and right origins are the same item")
            references.append(right)
        if origin is None and right is None:
            if self.uint() == 1:
                self.string()  # a root type's name
            else:
                references.append(self.identifier())
            if info & _HAS_PARENT_SUB:
                self.string()
        return self._content(kind)

    def _length(self) -> int:
        length = self.uint()
        if length == 0:
            raise _bad("a struct of length 0")
        return length

    def _content(self, kind: int) -> int:
        """Read an item's content; return its length in clocks."""
        read = _CONTENT_READERS.get(kind)
        if read is None:
            raise _bad(f"unknown content type {kind}")
        return read(self)

    def _deleted(self) -> int:
        return self._length()

    def _json(self) -> int:  # JSON values as strings
        items = self._nonempty()
        for _ in range(items):
            self.string()
        return items

    def _binary(self) -> int:
        self.buffer()
        return 1

    def _string(self) -> int:
        text = self.string()
        if not text:
            raise _bad("an empty string item")
        return len(text.encode("utf-16-le")) // 2

    def _embed(self) -> int:  # JSON text
        self.string()
        return 1

    def _format(self) -> int:  # key, JSON value
        self.string()
        self.string()
        return 1

    def _type(self) -> int:
        if self.uint() in (_XML_ELEMENT, _XML_HOOK):
            self.string()
        return 1

    def _any(self) -> int:
        items = self._nonempty()
        for _ in range(items):
            self.any(0)
        return items

    def _doc(self) -> int:  # sub-document: guid, options
        self.string()
        self.any(0)
        return 1

    def _nonempty(self) -> int:
        items = self.count("content")
        if items == 0:
            raise _bad("an empty content")
        return items

    def any(self, depth: int) -> None:
        """Skip one lib0 ``any`` value."""
        if depth > MAX_ANY_DEPTH:
            raise _bad("values nested too deeply")
        tag = self.byte()
        if tag in (127, 126, 121, 120):  # undefined, null, false, true
            return
        if tag == 125:  # varInt: continuation bit 0x80 on every byte but the last
            while self.byte() & 0x80:
                pass
        elif tag in (124, 123, 122):  # float32, float64, bigint64
            self.skip(4 if tag == 124 else 8)
        elif tag in (119, 116):  # string, bytes
            self.buffer()
        elif tag == 118:  # object
            for _ in range(self.count("object entry")):
                self.string()
                self.any(depth + 1)
        elif tag == 117:  # array
            for _ in range(self.count("array entry")):
                self.any(depth + 1)
        else:
            raise _bad(f"unknown value type {tag}")


# Item content types of the v1 encoding (Yjs ``readItemContent``), by ``info & 0x1f``.
_CONTENT_READERS: dict[int, Callable[[_Reader], int]] = {
    1: _Reader._deleted,
    2: _Reader._json,
    3: _Reader._binary,
    4: _Reader._string,
    5: _Reader._embed,
    6: _Reader._format,
    7: _Reader._type,
    8: _Reader._any,
    9: _Reader._doc,
}
