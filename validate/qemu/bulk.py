"""Fast reading of a trace file: runs of page lines parsed in bulk, not line by line.

A Linux guest's balloon writes one ``virtio_balloon_handle_output`` line a page, so page
lines are nearly all of a capture.  :func:`bulk_items` gives the lines of a file with each
run of page lines of one thread collapsed into a :class:`PageRun`, found and parsed by
C-level searches over blocks; anything not plainly such a run is given line by line, so the
line reader (:mod:`ballast.validate.qemu.trace_reader`) decides and reports errors.
"""

from __future__ import annotations

import lzma
import re
from collections.abc import Iterator
from itertools import repeat
from typing import Final

from ballast.validate.qemu.source import MAX_LINE_BYTES, QemuLogError, is_xz

__all__ = ["PageRun", "bulk_items"]


class PageRun:
    """Pages of consecutive ``virtio_balloon_handle_output`` lines of one thread, parsed in bulk."""

    __slots__ = ("key", "pfns")

    def __init__(self, key: str, pfns: list[int]) -> None:
        self.key = key
        self.pfns = pfns


_BULK_CHUNK: Final = 1 << 17
_BULK_EVENTS: Final = (b" vdev ", b" actual: ", b"_to_target ", b"balloon_event ", b"_bad_addr ",
                       b"ram_block_discard_range ")
"""Words that find every line of a known event other than a page, in few passes: `` vdev ``
(queue notify, notify, set status), `` actual: `` (get and set config), and the rest by
name.  A line they find
by chance goes to the line reader as it is, which is always right; a line they miss only
makes its stretch fall back to line-by-line reading."""
_BULK_PAGE: Final = b"virtio_balloon_handle_output section name: "
_BULK_GPA: Final = re.compile(rb" gpa: 0x([0-9a-fA-F]+)000\n")
_BULK_PFN_LIMIT: Final = 1 << 52
"""PFNs of 64-bit addresses are below this; a run with a larger one goes line by line."""


def bulk_items(path: str, file: str | None = None) -> Iterator[str | PageRun]:
    """The lines of a trace file for :func:`_trace_events`, with runs of page lines of one
    thread collapsed into :class:`PageRun` items (the first page line of each run stays a
    line, so that it opens or continues its buffer exactly as a line would).

    The page lines are found and parsed by C-level searches over 128 KiB blocks rather than
    line by line.  A stretch that is not plainly "page lines of one thread, page-aligned"
    is handed over line by line, so the line reader decides (and reports errors) as before.
    """
    opener = lzma.open if is_xz(path) else open
    with opener(path, "rb") as raw:
        rest = b""
        lines = 0
        while True:
            block = raw.read(_BULK_CHUNK)
            if not block:
                if rest:
                    yield from _bulk_lines(rest)
                return
            data = rest + block
            cut = data.rfind(b"\n") + 1
            if cut == 0:
                if len(data) > MAX_LINE_BYTES:  # else each block re-copies the line: quadratic
                    raise QemuLogError(file or path, lines + 1,
                                        f"line longer than {MAX_LINE_BYTES:,} bytes")
                rest = data
                continue
            rest = data[cut:]
            lines += data.count(b"\n", 0, cut)
            if data.isascii():
                yield from _bulk_block(data[:cut])
            else:  # rare: other scripts' digits must reach the line reader, which refuses them
                yield from _bulk_lines(data[:cut])


def _bulk_lines(data: bytes) -> Iterator[str]:
    for line in data.splitlines(keepends=True):
        yield line.decode("utf-8", "surrogateescape")


def _bulk_block(data: bytes) -> Iterator[str | PageRun]:
    """Items of a block of whole lines."""
    starts: set[int] = set()
    for word in _BULK_EVENTS:
        i = data.find(word)
        while i >= 0:
            starts.add(data.rfind(b"\n", 0, i) + 1)
            i = data.find(word, data.find(b"\n", i))
    pos = 0
    for start in sorted(starts):
        if start > pos:
            yield from _bulk_gap(data, pos, start)
        end = data.find(b"\n", start) + 1
        yield data[start:end].decode("utf-8", "surrogateescape")
        pos = end
    if pos < len(data):
        yield from _bulk_gap(data, pos, len(data))


def _bulk_gap(data: bytes, pos: int, end: int) -> Iterator[str | PageRun]:
    """The lines ``data[pos:end]`` between two known events: normally the pages of one
    buffer, collapsed into one run when every line is plainly a page of one thread."""
    lines = data.count(b"\n", pos, end)
    first_end = data.find(b"\n", pos) + 1
    at = data.find(b"@", pos, first_end)
    key = data[pos:at] if at > pos and data[pos:at].isdigit() else b""
    head = b"\n" + key + b"@" if key else b"\n" + _BULK_PAGE
    if (lines > 1 and data.count(_BULK_PAGE, pos, end) == lines
            and data.count(head, first_end - 1, end) == lines - 1):
        hexes = _BULK_GPA.findall(data, first_end, end)
        if len(hexes) == lines - 1:
            pfns = list(map(int, hexes, repeat(16)))
            if max(pfns) < _BULK_PFN_LIMIT:
                yield data[pos:first_end].decode("utf-8", "surrogateescape")
                yield PageRun(key.decode(), pfns)
                return
    yield from _bulk_lines(data[pos:end])

