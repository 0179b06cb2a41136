"""Fast reading of a trace file: runs of page lines parsed in bulk, not line by line.

A Linux guest's balloon writes one ``virtio_balloon_handle_output`` line a page, so page
lines are nearly all of a capture.  :func:`bulk_items` gives the lines of a file with each
run of page lines of one thread collapsed into a :class:`PageRun`.

Each block of whole lines is looked at with NumPy, all its lines at once.  Page lines of
one thread look alike: the same prefix length and the ``gpa: 0x`` at the same offset from
the line's start (a :class:`_Shape`; one shape covers a whole capture of one thread).  The
lines of a shape are checked by comparing 8-byte words at those offsets, and their page
numbers are read from the hex digits before the line's closing ``000``.  The checks are
exact: a line passes only where the line reader would take it as a page of that thread
with that page number.  Anything else (other events, lines of another shape, odd or
malformed lines) reaches the line reader (:mod:`ballast.validate.qemu.trace_reader`) as it
is, which decides and reports errors.
"""

from __future__ import annotations

import lzma
from collections.abc import Iterator
from typing import Final

import numpy as np
import numpy.typing as npt

from ballast.validate.qemu.source import MAX_LINE_BYTES, QemuLogError, is_xz

__all__ = ["PageRun", "bulk_items"]

Ints = npt.NDArray[np.int64]
Words = npt.NDArray[np.uint64]
Mask = npt.NDArray[np.bool_]


class PageRun:
    """Pages of consecutive ``virtio_balloon_handle_output`` lines of one thread, parsed in bulk."""

    __slots__ = ("key", "pfns")

    def __init__(self, key: str, pfns: list[int]) -> None:
        self.key = key
        self.pfns = pfns


_BULK_CHUNK: Final = 1 << 17
"""Bytes read at a time.  NumPy's cost per call is paid per block, and the memory held grows
with a block (its bytes and the arrays of its lines)."""
_PAGE_EVENT: Final = b"virtio_balloon_handle_output section name: "
_GPA_MARK: Final = b" gpa: 0x"
_MAX_HEX_DIGITS: Final = 13
"""Hex digits of a page number (a gpa less its closing ``000``) of a 64-bit gpa; a line with
more goes to the line reader."""
_MAX_KEY_DIGITS: Final = 7
"""Digits of a thread id, checked with its ``@`` in one word (Linux thread ids have at most 7)."""
_MAX_MARK: Final = 4096
"""Furthest offset of the ``" gpa: 0x"`` in a line of a shape (QEMU's lines are under 200
bytes); a line with it further goes to the line reader."""
_MAX_SHAPES: Final = 16
"""Shapes tried per block, at most: bounds the work on a block of odd lines (what no shape
covers goes to the line reader, which is always right)."""
_FRONT: Final = 32
_BACK: Final = _MAX_MARK + 64
"""Room before and after a block's lines in its buffer, so that every word a check reads
lies in the buffer (a line too short for a field fails on its length, whatever it reads)."""
_HELD: Final = 1 << 12
"""Room in the buffer for the start of a line that the block before left (a longer one
grows the buffer)."""

_ONES: Final = 0x0101010101010101
_HIGHS: Final = 0x8080808080808080
_COLONS: Final = ord(":") * _ONES
_LINE_END: Final = int.from_bytes(b"000\n", "little")


def _hex_values() -> Words:
    """The value of each byte as a hex digit, 255 for a byte that is none."""
    table = np.full(256, 255, np.uint64)
    for value, digit in enumerate(b"0123456789abcdef"):
        table[digit] = value
    for value, digit in enumerate(b"ABCDEF", 10):
        table[digit] = value
    return table


_HEX_VALUES: Final = _hex_values()


def _cover(length: int) -> list[int]:
    """Offsets of 8-byte words that together cover ``length`` bytes (the last overlapping
    the one before where the length is no multiple of 8; one word past a shorter length)."""
    return sorted({*range(0, length - 7, 8), max(length - 8, 0)})


def _mask(size: int) -> np.uint64 | None:
    """The mask of the first ``size`` bytes of a word; None for the whole word."""
    return np.uint64((1 << 8 * size) - 1) if size < 8 else None


class _Shape:
    """Where a page line's fields lie, as offsets from its start, and what they must hold.

    ``key`` is the thread id of the ``TID@SECONDS.MICROS:`` prefix ("" without a prefix),
    ``colon`` the offset of the prefix's colon (-1 without one), ``mark`` that of the
    ``" gpa: 0x"`` before the address.  A line of this shape has, in its word at each
    ``(offset, mask, value)`` of ``fields``, the value where the mask (None: all of it) is
    set (the mark; the key and its ``@``; the prefix's colon and the event name after it),
    and no colon in its words at the offsets ``free`` (from the ``@`` to the prefix's colon;
    ``outside`` marks the bytes of a word past that).
    """

    def __init__(self, key: str, colon: int, mark: int) -> None:
        self.key = key
        self.colon = colon
        self.mark = mark
        fields = [(mark, _GPA_MARK)]
        if key:
            head = b":" + _PAGE_EVENT
            fields.append((0, key.encode("ascii") + b"@"))
        else:
            head = _PAGE_EVENT
        fields += [(max(colon, 0) + o, head[o:o + 8]) for o in _cover(len(head))]
        self.fields = [(o, _mask(len(t)), np.uint64(int.from_bytes(t, "little")))
                       for o, t in fields]
        start = len(key) + 1
        free = colon - start if key else 0
        self.free = [start + o for o in _cover(free)] if free > 0 else []
        self.outside = np.uint64(~((1 << 8 * free) - 1) & _ONES if 0 < free < 8 else 0)


def _shape_of(line: bytes) -> _Shape | None:
    """The shape of ``line`` where it looks like a page line, else None.

    Only a guess: :func:`_match` checks it on every line, this one included.
    """
    mark = line.rfind(_GPA_MARK)
    if line.startswith(_PAGE_EVENT):
        colon = -1
        key = b""
    else:
        colon = line.find(b":")
        at = line.find(b"@", 0, colon)
        key = line[:at]
        if not (colon > 0 and 0 < at <= _MAX_KEY_DIGITS and key.isdigit()
                and line.startswith(_PAGE_EVENT, colon + 1)):
            return None
    # The address ends the line, so a mark before the event name's end (they may share a
    # space) fits no line: not worth a try.
    if not colon + len(_PAGE_EVENT) <= mark <= _MAX_MARK:
        return None
    return _Shape(key.decode("ascii"), colon, mark)


class _Block:
    """A block of whole lines as NumPy arrays: the buffer holding them from offset
    :data:`_FRONT` on, with at least :data:`_BACK` bytes after them, its bytes and the
    little-endian 8-byte word at every offset, and where each line starts and ends (its
    newline), as offsets in the buffer.

    The bytes around the lines may be anything: a check that passes reads only its own line.
    """

    def __init__(self, buffer: bytearray, size: int) -> None:
        """The block of the ``size`` bytes of lines from :data:`_FRONT` on in ``buffer``."""
        self.buffer = buffer
        self.bytes = np.frombuffer(buffer, np.uint8)
        self.words: Words = np.ndarray((len(buffer) - 7,), "<u8", buffer, 0, (1,))
        self.ends: Ints = np.flatnonzero(self.bytes[_FRONT:_FRONT + size] == ord("\n")) + _FRONT
        self.starts: Ints = np.concatenate(([_FRONT], self.ends[:-1] + 1))

    def text(self, first: int, last: int) -> bytes:
        """Lines ``first`` to ``last`` (included), with their newlines."""
        return bytes(memoryview(self.buffer)[int(self.starts[first]):int(self.ends[last]) + 1])


def _match(block: _Block, first: int, shape: _Shape, tail: Mask) -> tuple[Mask, Words]:
    """Which lines from line ``first`` on are pages of ``shape`` (each checked as the line
    reader takes a page of that thread), and their page numbers; ``tail`` tells the lines
    that end ``000\\n``.

    The line reader takes a line as a page of thread ``TID`` where its first colon is
    followed by the event name, the text before the first ``@`` before that colon is
    ``TID``, and the text after its last ``" gpa: 0x"`` is a page-aligned address.  The
    last ``" gpa: 0x"`` of a line is the one before its closing hex digits and ``000``.
    """
    words = block.words
    starts, ends = block.starts[first:], block.ends[first:]
    digits = ends - starts - (shape.mark + len(_GPA_MARK) + 3)  # before the "000\n"
    ok = tail[first:] & (digits >= 1) & (digits <= _MAX_HEX_DIGITS)
    for offset, mask, value in shape.fields:
        word = words[starts + offset]
        ok &= (word if mask is None else word & mask) == value
    if shape.free:
        # A colon becomes a zero byte, found by the borrow into its high bit; the bytes
        # past the region (of a short one) are made nonzero.
        borrows = np.zeros(len(starts), np.uint64)
        for offset in shape.free:
            v = words[starts + offset] ^ np.uint64(_COLONS) | shape.outside
            borrows |= (v - np.uint64(_ONES)) & ~v
        ok &= borrows & np.uint64(_HIGHS) == 0
    zero = starts + shape.mark + len(_GPA_MARK) - 2  # the "0" of the "0x"
    numbers = _hex_numbers(block.bytes, ends - 4, zero, digits, ok)
    return ok, numbers


def _hex_numbers(data: npt.NDArray[np.uint8], last: Ints, zero: Ints, digits: Ints,
                 ok: Mask) -> Words:
    """The numbers whose ``digits`` hex digits end at each of ``last``, with a ``0`` at each
    of ``zero`` before them; clears in ``ok`` the lines with a byte that is no hex digit."""
    numbers = np.zeros(len(last), np.uint64)
    seen = np.zeros(len(last), np.uint64)  # every digit's value or'ed: 16 or more if no digit
    width = int(np.where(ok, digits, 1).max())  # what ok lines have: 1 to _MAX_HEX_DIGITS
    for place in range(width):  # the least significant digit first
        values = _HEX_VALUES[data[np.maximum(last - place, zero)]]  # the 0 past the first
        seen |= values
        numbers |= values << np.uint64(4 * place)
    ok &= seen < 16
    return numbers


def _page_lines(block: _Block) -> tuple[Ints, Words, list[str]]:
    """For each line, the index in the returned keys of the thread whose plain page it is
    (-1 for any other line), and its page number."""
    thread: Ints = np.full(len(block.ends), -1, np.int64)
    numbers: Words = np.zeros(len(block.ends), np.uint64)
    keys: list[str] = []
    tail: Mask = block.words[block.ends - 7] >> np.uint64(32) == _LINE_END
    candidates = np.flatnonzero(tail)  # no other line can be a plain page
    shapes = 0
    k = 0
    while k < len(candidates) and shapes < _MAX_SHAPES:
        line = int(candidates[k])
        k += 1
        shape = _shape_of(block.text(line, line))
        if shape is None:
            continue
        ok, found = _match(block, line, shape, tail)
        if shape.key not in keys:
            keys.append(shape.key)
        np.copyto(thread[line:], keys.index(shape.key), where=ok)
        np.copyto(numbers[line:], found, where=ok)
        shapes += 1
        tail[line:] &= ~ok  # covered: no longer a candidate
        candidates = np.flatnonzero(tail[line + 1:]) + line + 1
        k = 0
    return thread, numbers, keys


def bulk_items(path: str, file: str | None = None) -> Iterator[str | PageRun]:
    """The lines of a trace file for :func:`_trace_events`, with runs of page lines of one
    thread collapsed into :class:`PageRun` items (the first page line of each run stays a
    line, so that it opens or continues its buffer exactly as a line would).

    The page lines are found and parsed a block at a time with NumPy rather than line by
    line.  A line that is not plainly a page of the thread of its run is handed over as a
    line, so the line reader decides (and reports errors) as before.
    """
    opener = lzma.open if is_xz(path) else open
    # One buffer read into for every block (a fresh one each time costs the system's page
    # faults); it grows only for a line longer than _HELD.
    buffer = bytearray(_FRONT + _HELD + _BULK_CHUNK + _BACK)
    held = 0  # bytes of a line whose end is not read yet, at the buffer's _FRONT
    lines = 0
    with opener(path, "rb") as raw:
        while True:
            if len(buffer) < _FRONT + held + _BULK_CHUNK + _BACK:
                buffer = _grown(buffer, _FRONT + held + _BULK_CHUNK + _BACK)
            with memoryview(buffer) as view:
                got = raw.readinto(view[_FRONT + held:_FRONT + held + _BULK_CHUNK])
            if not got:
                if held:
                    yield from _bulk_lines(bytes(buffer[_FRONT:_FRONT + held]))
                return
            end = _FRONT + held + got
            cut = buffer.rfind(b"\n", _FRONT + held, end) + 1
            if cut == 0:
                held += got
                if held > MAX_LINE_BYTES:  # else the buffer grows without end
                    raise QemuLogError(file or path, lines + 1,
                                        f"line longer than {MAX_LINE_BYTES:,} bytes")
                continue
            if _plain_ascii(buffer, cut):
                block = _Block(buffer, cut - _FRONT)
                lines += len(block.ends)
                yield from _block_items(block)
                del block  # its arrays go before the next block's come (memory)
            else:
                text = bytes(buffer[_FRONT:cut])
                lines += text.count(b"\n")
                yield from _bulk_lines(text)
            held = end - cut
            buffer[_FRONT:_FRONT + held] = buffer[cut:end]


def _grown(buffer: bytearray, size: int) -> bytearray:
    """A buffer of ``size`` bytes holding ``buffer``'s bytes."""
    grown = bytearray(size)
    grown[:len(buffer)] = buffer
    return grown


def _plain_ascii(buffer: bytearray, end: int) -> bool:
    """The lines from :data:`_FRONT` to ``end`` are ASCII with no carriage return.

    Other scripts' digits must reach the line reader, which refuses them; and a carriage
    return ends a line there too (bytes.splitlines), not only here.
    """
    if buffer.find(b"\r", _FRONT, end) >= 0:
        return False
    with memoryview(buffer) as view:
        return bool(np.frombuffer(view[_FRONT:end], np.uint8).max() < 0x80)


def _bulk_lines(data: bytes) -> Iterator[str]:
    """The lines of ``data``, each decoded as the line reader's files are (undecodable
    bytes kept as surrogates)."""
    for line in data.splitlines(keepends=True):
        yield line.decode("utf-8", "surrogateescape")


def _block_items(block: _Block) -> Iterator[str | PageRun]:
    """Items of a block: its lines, with each run of plain page lines of one thread past the
    run's first line given as a :class:`PageRun`."""
    thread, numbers, keys = _page_lines(block)
    cuts = np.flatnonzero(thread[1:] != thread[:-1]) + 1
    bounds = [0, *cuts.tolist(), len(thread)]
    for first, end in zip(bounds, bounds[1:]):
        key = int(thread[first])
        if key < 0 or end - first == 1:
            yield from _bulk_lines(block.text(first, end - 1))
            continue
        yield block.text(first, first).decode("ascii")
        yield PageRun(keys[key], numbers[first + 1:end].tolist())
