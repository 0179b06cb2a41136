"""Where a QEMU log comes from: a plain or xz file, or lines given directly.

Files are read as UTF-8 with undecodable bytes kept as surrogates and with a bound on
the length of a line (:data:`MAX_LINE_BYTES`); the xz magic bytes decide whether a file is
compressed, not its name.  Malformed input raises :class:`QemuLogError` naming the file
and the line.

>>> with open_lines(["a", "b"], "<lines>") as lines:
...     list(lines)
['a', 'b']
"""

from __future__ import annotations

import lzma
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import IO, Final

from ballast.errors import InputError
from ballast.model.trace import bounded_lines

__all__ = ["MAX_LINE_BYTES", "QemuLogError", "Source", "damaged_xz", "is_xz", "open_lines",
           "source_name"]

MAX_LINE_BYTES: Final = 1 << 20
"""Longest line of a trace or QMP log (1 MiB; QEMU's are under 200 bytes): a longer one
is refused where it starts, so that a file without newlines is read in linear time."""

Source = str | os.PathLike[str] | Iterable[str]
"""A file name (plain or xz), or the lines themselves (any iterable of ``str`` but ``str``)."""


class QemuLogError(InputError):
    """A QEMU trace or QMP log is malformed: names the file, the line and what was wrong.

    >>> str(QemuLogError("trace.log", 7, "bad gpa"))
    'trace.log:7: bad gpa'
    """

    def __reduce__(self) -> tuple[type[QemuLogError], tuple[str, int | None, str]]:
        return (type(self), (self.file, self.line, self.message))



def is_xz(path: str) -> bool:
    """True when the file at ``path`` starts with the xz magic bytes."""
    with open(path, "rb") as probe:
        return probe.read(6) == b"\xfd7zXZ\x00"


def source_name(source: Source, name: str | None) -> str:
    """``name``, else the path of ``source``, else ``<lines>``."""
    if name is not None:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    return "<lines>"


@contextmanager
def open_lines(source: Source, file: str) -> Iterator[Iterable[str]]:
    """The lines of ``source`` (a path, plain or xz, or an iterable of lines), newline kept.

    Files are read as UTF-8 with undecodable bytes kept as surrogates, so that a stray byte
    in an unrelated line costs nothing and one in a known event fails to parse there.
    """
    if not isinstance(source, (str, os.PathLike)):
        yield _checked(source, file)
        return
    path = os.fspath(source)
    if is_xz(path):
        with lzma.open(path, "rt", encoding="utf-8", errors="surrogateescape") as stream:
            yield _bounded(stream, file)
    else:
        with open(path, encoding="utf-8", errors="surrogateescape") as plain:
            yield _bounded(plain, file)


def _bounded(stream: IO[str], file: str) -> Iterator[str]:
    try:
        yield from bounded_lines(stream, file, MAX_LINE_BYTES)
    except InputError as exc:
        raise QemuLogError(file, exc.line, exc.message) from None


def _checked(lines: Iterable[str], file: str) -> Iterator[str]:
    for number, text in enumerate(lines, 1):
        if not isinstance(text, str):
            raise QemuLogError(file, number, f"expected a line of text, got {type(text).__name__}")
        if len(text) > MAX_LINE_BYTES:
            raise QemuLogError(file, number, f"line longer than {MAX_LINE_BYTES:,} characters")
        yield text


def damaged_xz(file: str, number: int, exc: Exception) -> QemuLogError:
    """The error for xz data that ended or broke after line ``number``."""
    return QemuLogError(file, number + 1, f"corrupt or truncated xz data: {exc}")

