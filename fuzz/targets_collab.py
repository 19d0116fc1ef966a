"""Fuzz targets of the collaborative editor: its line stream (both directions), y-protocols
frame bodies, and the document core fed arbitrary bytes as Yjs updates. Each returns, or
raises ``ProtocolError``; anything else (another exception, a pycrdt panic escaping, a
broken invariant) is a bug.

* ``collab_line``: the bytes a server reads (``parse_collab_command``) and a client reads
  (``parse_server_line``), through ``FrameBuffer`` as ``LineConnection`` decodes them, fed
  whole and byte by byte (same outcome required). A ``YMSG`` body is always consumed and
  decoded, never read as lines; only an untrusted frame size is fatal.
* ``collab_frame``: ``decode_frame`` on an arbitrary body; what decodes re-encodes to a
  canonical form that is a fixpoint and no longer than the input (updates: byte for byte
  what pycrdt's own encoder writes); the message limit is exact; the server's awareness
  table relays only strict JSON objects stamped with the admitted member name.
* ``collab_update``: ``DocumentCore.apply`` on arbitrary updates (see its docstring).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from pycrdt import Doc, Text, create_update_message, get_state

from syncrox.errors import ProtocolError
from syncrox.protocol import collab as proto
from syncrox.protocol.collab_awareness import MEMBER_FIELD, REMOVED, AwarenessTable
from syncrox.protocol.collab_doc import (
    TEXT_NAME,
    Applied,
    CrdtFault,
    DocumentCore,
    is_crdt_panic,
)
from syncrox.protocol.framing import FrameBuffer, parse_error

MAX_LINE_BYTES = 128
MAX_FRAME_BYTES = 256  # a YMSG size above this is refused (fatal)
MAX_MESSAGES = 8  # per frame, as the server's config bounds it
WIDE_MESSAGES = 1 << 20  # the client's bound: effectively none for these inputs
MAX_AWARENESS_STATE_BYTES = 128
MAX_AWARENESS_CLIENTS = 3
MEMBER = "alice"

Outcome = tuple[str, object]


# ---------------------------------------------------------------------------------------
# collab_line


def _server_command(line: str) -> proto.CollabCommand:
    return proto.parse_collab_command(line, max_frame_bytes=MAX_FRAME_BYTES)


def _client_line(line: str) -> object:
    error = parse_error(line)  # the client checks for ERR first, like CollabClient._reader
    if error is not None:
        return error
    return proto.parse_server_line(line, max_frame_bytes=MAX_FRAME_BYTES)


class _StreamReader:
    """A connection's reading side minus the sockets: lines are parsed; a ``YMSG`` body is
    read in full and decoded as a frame; a fatal error ends the connection."""

    def __init__(self, parse: Callable[[str], object]) -> None:
        self.frames = FrameBuffer(MAX_LINE_BYTES)
        self.parse = parse
        self.pending: int | None = None  # size of the announced body still to read
        self.closed = False

    def drain(self) -> list[Outcome]:
        outcomes: list[Outcome] = []
        while not self.closed:
            outcome = self._next()
            if outcome is None:
                break
            outcomes.append(outcome)
        return outcomes

    def _next(self) -> Outcome | None:
        if self.pending is not None:
            body = self.frames.next_body(self.pending)
            if body is None:
                return None
            assert len(body) == self.pending
            self.pending = None
            try:
                messages = proto.decode_frame(body, max_messages=MAX_MESSAGES)
            except ProtocolError as exc:
                fatal, outcome = exc.fatal, ("bad_frame", exc.code)
            else:
                return ("frame", tuple(messages))
            assert not fatal  # the body was read: the stream is still in step
            return outcome
        line: str | None = None
        try:
            line = self.frames.next_line()
            if line is None:
                return None
            parsed = self.parse(line)
        except ProtocolError as exc:
            self.closed, code = exc.fatal, exc.code
        else:
            return self._parsed(parsed)
        if self.closed:
            # Only a frame header whose body cannot be delimited may end the connection.
            words = (line or "").split()
            assert words, line
            assert words[0].upper() == "YMSG", line
        return ("error", code)

    def _parsed(self, parsed: object) -> Outcome:
        if isinstance(parsed, proto.FrameHeader):
            assert 0 <= parsed.size <= MAX_FRAME_BYTES
            self.pending = parsed.size
        return ("line", parsed)


def _read_stream(parse: Callable[[str], object], data: bytes, chunk: int) -> list[Outcome]:
    reader = _StreamReader(parse)
    outcomes: list[Outcome] = []
    for start in range(0, len(data), chunk):
        if reader.closed:
            break
        reader.frames.feed(data[start : start + chunk])
        outcomes += reader.drain()
        # Bounded: an unfinished line or one announced body, plus the last chunk.
        assert reader.frames.buffered_bytes <= MAX_LINE_BYTES + 2 + MAX_FRAME_BYTES + chunk
    return outcomes


def collab_line(data: bytes) -> None:
    for parse in (_server_command, _client_line):
        whole = _read_stream(parse, data, max(1, len(data)))
        bytewise = _read_stream(parse, data, 1)
        assert whole == bytewise, (whole, bytewise)


# ---------------------------------------------------------------------------------------
# collab_frame


def _strict_json(text: str) -> object:
    def refuse(name: str) -> object:
        raise AssertionError(f"relayed awareness state holds {name}, which is not JSON")

    return json.loads(text, parse_constant=refuse)


def _check_awareness(messages: Sequence[proto.YMessage]) -> None:
    """What the server's table makes of the awareness entries: every relayed state is a
    strict JSON object carrying the admitted name (or a removal), and the relay encodes."""
    table = AwarenessTable(
        timeout_s=30.0,
        max_state_bytes=MAX_AWARENESS_STATE_BYTES,
        max_clients_per_owner=MAX_AWARENESS_CLIENTS,
    )
    for now, message in enumerate(messages):
        if not isinstance(message, proto.AwarenessUpdate):
            continue
        accepted, problems = table.update("owner", MEMBER, message.entries, float(now))
        assert len(accepted) + len(problems) <= len(message.entries)
        for entry in accepted:
            if entry.state != REMOVED:
                state = _strict_json(entry.state)
                assert isinstance(state, dict), entry
                assert state[MEMBER_FIELD] == MEMBER, entry
        relay = proto.encode_awareness(accepted)
        assert proto.decode_awareness(relay) == tuple(accepted)
        assert len(table) <= MAX_AWARENESS_CLIENTS
        assert set(table.members().values()) <= {MEMBER}


def collab_frame(data: bytes) -> None:
    try:
        messages = proto.decode_frame(data, max_messages=WIDE_MESSAGES)
    except ProtocolError as exc:
        fatal = exc.fatal
    else:
        _check_frame(data, messages)
        return
    assert not fatal
    try:
        proto.decode_frame(data, max_messages=MAX_MESSAGES)
    except ProtocolError:
        return
    raise AssertionError("a tighter message limit accepted what a wider one refused")


def _check_frame(data: bytes, messages: list[proto.YMessage]) -> None:
    assert messages
    # The limit refuses exactly the frames with more messages, and changes nothing else.
    try:
        limited = proto.decode_frame(data, max_messages=MAX_MESSAGES)
    except ProtocolError as exc:
        code = exc.code
        assert len(messages) > MAX_MESSAGES
        assert code == proto.BAD_MESSAGE
    else:
        assert limited == messages
        assert len(messages) <= MAX_MESSAGES
    # Canonical re-encoding: decodes to the same messages, is a fixpoint, and never longer
    # (the only freedom a sender has is padded varints).
    encoded = [proto.encode_message(message) for message in messages]
    canonical = b"".join(encoded)
    assert len(canonical) <= len(data)
    again = proto.decode_frame(canonical, max_messages=len(messages))
    assert again == messages, (again, messages)
    assert b"".join(proto.encode_message(message) for message in again) == canonical
    frame = proto.encode_frame(encoded)
    assert frame == f"YMSG {len(canonical)}\n".encode() + canonical
    for message, wire in zip(messages, encoded, strict=True):
        match message:
            case proto.SyncUpdate(payload):
                assert wire == create_update_message(payload)  # pycrdt's encoder agrees
                assert proto.encode_update(payload) == wire
            case proto.QueryAwareness():
                assert wire == bytes((proto.MESSAGE_QUERY_AWARENESS,))
            case _:
                pass
    _check_awareness(messages)


# ---------------------------------------------------------------------------------------
# collab_update
#
# Input: updates separated by ``SEPARATOR``. Each is applied alone (a group of one), then
# all together as one group, then the undecodable ones are mixed with a valid update as a
# group, then a last valid update must apply. This runs twice: with limits far above what
# the input can add (the direct path) and with tight limits (the copy-and-check path).
#
# Invariants after every group:
# * ``apply`` returns ``Applied`` whose refusals have distinct, sorted, in-range indices;
# * an update pycrdt cannot even decode (garbage) is refused; in a mixed group nothing of
#   the garbage reaches the text: it is the text of a twin core that went through the same
#   groups and then got the valid update alone;
# * when nothing was integrated (``update is None``), the text is unchanged;
# * ``DOC_TOO_LARGE`` refuses the whole group, and the text never grows past the limit;
# * the log of what ``apply`` emitted (what the service stores and relays), replayed into
#   a fresh core, gives the live document: same text, same state vector. (An update that
#   depends on changes the document lacks is refused, but the part of it that did
#   integrate stays and is in the emitted update: "refused" means "not all applied", and
#   what is kept is exactly what is stored and relayed.) This also catches a live document
#   that changes without emitting anything, e.g. when the core rebuilds it from its own
#   encoded state and that does not reproduce it.
#
# Decision on ``CrdtFault`` (pycrdt panicked inside the transaction): an accepted outcome.
# A panic is pycrdt's bug, not ours, and it is a handled, documented outcome for the
# service: it refuses the update and reloads the document from its store. So the target
# does the same: it discards the core, restores one from the log (the store) and requires
# the restored text to be the text before the group; fuzzing then goes on with the
# restored core, which must still accept valid updates. What is *not* accepted: a panic
# escaping ``apply`` or ``restore`` (the service would crash), or a stored log that no
# longer restores (``ValueError``: the document would be lost).

SEPARATOR = b"\n--\n"
MAX_PIECES = 8
LOOSE_LIMITS = {"max_text_bytes": 1 << 16, "max_state_bytes": 1 << 18}
TIGHT_LIMITS = {"max_text_bytes": 40, "max_state_bytes": 160}
BASE_CLIENT = 1
FRESH_CLIENT = 1_000_003


def _writer_update(client_id: int, text: str) -> bytes:
    doc: Doc[Text] = Doc(client_id=client_id)
    doc.get(TEXT_NAME, type=Text).insert(0, text)
    return doc.get_update()


BASE_UPDATE = _writer_update(BASE_CLIENT, "hello world\n")


def _undecodable(update: bytes) -> bool:
    """pycrdt's decoder refuses it (state-independent: ``apply_update`` decodes first)."""
    try:
        get_state(update)
    except ValueError:
        return True
    except BaseException as exc:
        if is_crdt_panic(exc):
            return False  # not known to be garbage; apply must still cope
        raise
    return False


def _state_vector(core: DocumentCore) -> dict[int, int]:
    """The state vector as a dict; a client at clock 0 is the same as an absent one."""
    clocks = proto.decode_state_vector(core.state_vector())
    return {client: clock for client, clock in clocks.items() if clock}


def _valid_edit(core: DocumentCore) -> bytes:
    """A one-character insert at the start, by a client the document has not seen."""
    known = _state_vector(core)
    client = FRESH_CLIENT
    while client in known:
        client += 1
    doc: Doc[Text] = Doc(client_id=client)
    doc.apply_update(core.diff(b"\x00"))  # the whole document, without side effects
    before = doc.get_state()
    doc.get(TEXT_NAME, type=Text).insert(0, "#")
    return doc.get_update(before)


class _Run:
    """One core under one set of limits, with the log the service would have stored."""

    def __init__(self, limits: dict[str, int], *, checked: bool = True) -> None:
        self.limits = limits
        self.checked = checked
        self.core = DocumentCore(**limits)
        self.log: list[bytes] = []
        self.history: list[list[bytes]] = []  # every group applied, in order
        applied = self.apply([BASE_UPDATE])
        assert applied is not None
        assert not applied.refusals

    def twin(self) -> _Run:
        """An unchecked run that went through the same groups: the same document."""
        twin = _Run(self.limits, checked=False)
        for group in self.history[1:]:
            twin.apply(group)
        return twin

    def apply(self, group: Sequence[bytes]) -> Applied | None:
        """Apply ``group`` and check every invariant; ``None`` after a ``CrdtFault``."""
        self.history.append(list(group))
        core = self.core
        before_text, before_bytes = core.text, core.text_bytes
        try:
            applied = core.apply(group)
        except CrdtFault as fault:
            index = fault.index
        else:
            if applied.update is not None:
                self.log.append(applied.update)  # what the service stores
            if self.checked:
                self._check(group, applied, before_text, before_bytes)
            return applied
        assert 0 <= index < len(group)
        self.core = DocumentCore.restore(self.log, **self.limits)  # the service reloads
        assert self.core.text == before_text
        return None

    def _check(
        self, group: Sequence[bytes], applied: Applied, before_text: str, before_bytes: int
    ) -> None:
        core = self.core
        assert isinstance(applied, Applied)
        indices = [refusal.index for refusal in applied.refusals]
        assert indices == sorted(set(indices))
        assert all(0 <= i < len(group) for i in indices)
        for index, update in enumerate(group):
            if _undecodable(update):
                assert index in indices, (index, update)
        codes = {refusal.code for refusal in applied.refusals}
        if proto.DOC_TOO_LARGE in codes:
            # The whole group is refused: what could be applied is too large, the rest
            # could not be applied at all.
            assert codes <= {proto.DOC_TOO_LARGE, proto.BAD_UPDATE}
            assert len(indices) == len(group)
            assert applied.update is None
        if applied.update is None:
            assert core.text == before_text
        assert core.text_bytes <= max(self.limits["max_text_bytes"], before_bytes)
        self._check_log()

    def _check_log(self) -> None:
        replayed = DocumentCore.restore(self.log, **self.limits)
        assert replayed.text == self.core.text, (replayed.text, self.core.text)
        assert _state_vector(replayed) == _state_vector(self.core)

    def apply_valid(self, garbage: Sequence[bytes], at: int) -> None:
        """``garbage`` with a valid update inserted at ``at``: only the valid one lands, so
        the text is the one a twin gets from the valid update alone."""
        update = _valid_edit(self.core)
        twin = self.twin()
        twin.apply([update])
        expected, before = twin.core.text, self.core.text
        group = [*garbage[:at], update, *garbage[at:]]
        applied = self.apply(group)
        if applied is None:
            return
        refused = {refusal.index: refusal.code for refusal in applied.refusals}
        if refused.get(at) == proto.DOC_TOO_LARGE:
            assert self.core.text == before
            return
        assert at not in refused, applied.refusals
        assert len(refused) == len(garbage)
        assert self.core.text == expected, (self.core.text, expected)


def _exercise(pieces: list[bytes], limits: dict[str, int]) -> None:
    run = _Run(limits)
    for piece in pieces:
        run.apply([piece])
    run.apply(pieces)
    garbage = [piece for piece in pieces if _undecodable(piece)]
    run.apply_valid(garbage, len(garbage) // 2)
    run.apply_valid([], 0)  # the core is still usable


def collab_update(data: bytes) -> None:
    pieces = data.split(SEPARATOR)[:MAX_PIECES]
    for limits in (LOOSE_LIMITS, TIGHT_LIMITS):
        _exercise(pieces, limits)
