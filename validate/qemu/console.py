"""The guest's serial console: copied to ``console.log``, with the guest's markers noted.

The guest's ``/init`` (``validate/_initramfs/init``) prints marker lines (``BALLOON_READY``,
``MEM ...``, ``MARK ...``, ``PRESSURE ...``, ``COMPACTED ...``) and reads commands typed on
the console.  :class:`GuestConsole` copies every line to the log with the host epoch time
in front, and lets the host wait for the next marker.
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from pathlib import Path
from typing import IO, Final

__all__ = ["MARKERS", "GuestConsole", "clean_line"]

MARKERS: Final = (
    "BALLOON_READY", "BALLOON_MISSING", "MARK ", "MEM ", "PRESSURE ", "COMPACTED", "REBOUND",
    "UNKNOWN ", "Kernel panic",
)
"""The console lines the host waits for (see the guest's ``/init``)."""

_POLL_S: Final = 0.1
_ANSI = re.compile(r"\x1b(?:\[[0-9;?]*[ -/]*[@-~]|[()][0-9A-Za-z]|[@-Z\\-_])")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean_line(raw: bytes) -> str:
    """A console line as text, without terminal escapes and control characters.

    >>> clean_line(b"\\x1b[0mMEM up=1.0\\r\\n")
    'MEM up=1.0'
    """
    text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
    return _CONTROL.sub("", _ANSI.sub("", text))


class GuestConsole:
    """Copies QEMU's serial output to ``path`` with host epoch prefixes; notes markers."""

    def __init__(self, stream: IO[bytes], commands: IO[bytes], path: Path) -> None:
        self._stream = stream
        self._commands = commands
        self._file = open(path, "w", encoding="utf-8")
        self._cond = threading.Condition()
        self._markers: deque[tuple[int, float, str]] = deque(maxlen=4096)
        self._count = 0
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ballast-qemu-console", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for raw in iter(self._stream.readline, b""):
                now = time.time()
                text = clean_line(raw)
                self._file.write(f"{now:.6f} {text}\n")
                marker = next((m for m in MARKERS if m in text), None)
                if marker is not None:
                    self._file.flush()
                    with self._cond:
                        self._count += 1
                        self._markers.append((self._count, now, text[text.index(marker) :]))
                        self._cond.notify_all()
        except (OSError, ValueError):
            pass
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()

    def say(self, line: str) -> None:
        """Type a command on the guest console (its ``/init`` reads them)."""
        try:
            self._commands.write(line.encode() + b"\n")
            self._commands.flush()
        except (OSError, ValueError):
            pass

    @property
    def position(self) -> int:
        """The number of markers seen so far (to wait only for later ones)."""
        with self._cond:
            return self._count

    def wait_for(self, prefixes: tuple[str, ...], after: int,
                 deadline: float) -> tuple[float, str] | None:
        """The first marker line after ``after`` that starts with one of ``prefixes``.

        Returns None at ``deadline`` (``time.monotonic``) or when QEMU closed its output.
        """
        with self._cond:
            while True:
                for count, when, text in self._markers:
                    if count > after and text.startswith(prefixes):
                        return when, text
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    return None
                self._cond.wait(min(left, _POLL_S))

    def ask(self, command: str, answer: tuple[str, ...],
            timeout_s: float) -> tuple[float, str] | None:
        """Type ``command`` and wait up to ``timeout_s`` for a marker starting with ``answer``."""
        position = self.position
        self.say(command)
        return self.wait_for(answer, position, time.monotonic() + timeout_s)

    def close(self, timeout: float) -> None:
        """Stop copying (once QEMU closed its output, or after ``timeout`` seconds)."""
        try:
            self._commands.close()
        except OSError:
            pass
        self._thread.join(timeout)
        self._file.flush()
        self._file.close()
