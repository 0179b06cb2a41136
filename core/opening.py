"""Opening a file to read without waiting for a writer.

``open()`` of a named pipe waits until some program opens it to write: for ever when none
does, so a FIFO given where a file is expected hung the command. Here the open does not
wait: a pipe no program writes to reads as empty (and is refused as an empty file by
whoever reads it), and one a program writes to (``<(xz -dc trace.jsonl.xz)``) is read as it
comes.

>>> with open_to_read("/dev/null") as f:
...     f.read()
''
>>> with open_to_read("/dev/null", binary=True) as f:
...     f.read()
b''
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO, Literal, overload

__all__ = ["open_to_read"]


@overload
def open_to_read(path: str | Path, *, binary: Literal[False] = ...) -> IO[str]: ...


@overload
def open_to_read(path: str | Path, *, binary: Literal[True]) -> IO[bytes]: ...


def open_to_read(path: str | Path, *, binary: bool = False) -> IO[str] | IO[bytes]:
    """``path`` opened to read (UTF-8 text, or bytes with ``binary``) without waiting for a
    writer; OSError as :func:`open` raises it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        os.set_blocking(fd, True)  # reads wait for a writer that is there, as usual
        return open(fd, "rb") if binary else open(fd, encoding="utf-8")
    except BaseException:
        os.close(fd)
        raise
