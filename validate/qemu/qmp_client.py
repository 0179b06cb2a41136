"""QMP to a running QEMU through QEMU's own ``qemu.qmp`` library, every message logged.

:class:`QmpLink` sends commands with ids of its own (``ballast-1``, ``ballast-2``, ...)
and writes every message it sends or receives, one JSON object a line
``{"t": HOST_EPOCH, "dir": "send"|"recv", "msg": {...}}``: the QMP log that
:func:`ballast.validate.qemu.qmp_reader.read_qmp` reads.  Asynchronous events are logged
as they are collected, after each command and on :meth:`QmpLink.drain_events`; QEMU's own
``timestamp`` in each event says when it happened.  Every failure -- no socket, a timeout,
an error answer, QEMU gone -- raises :class:`QmpLinkError`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from ballast.errors import BallastError

if TYPE_CHECKING:
    from qemu.qmp.legacy import QEMUMonitorProtocol

__all__ = ["QmpLink", "QmpLinkError"]

_RETRY_S: Final = 0.02

# The library logs a warning when QEMU closes the socket first (after ``quit``).
logging.getLogger("qemu.qmp").setLevel(logging.CRITICAL)


class QmpLinkError(BallastError):
    """QMP failed: no connection, no answer in time, an error answer, or QEMU went away."""


class QmpLink:
    """A logged QMP session with one QEMU (see the module's documentation)."""

    def __init__(self, log_path: Path) -> None:
        self._log = open(log_path, "w", encoding="utf-8")
        self._lock = threading.Lock()
        self._qmp: QEMUMonitorProtocol | None = None
        self._next_id = 1
        self.greeting: dict[str, Any] = {}

    def _write(self, direction: str, msg: dict[str, Any]) -> None:
        with self._lock:
            if not self._log.closed:
                self._log.write(json.dumps({"t": time.time(), "dir": direction, "msg": msg}) + "\n")
                self._log.flush()

    def connect(self, socket_path: str, deadline: float, alive: Any = None) -> None:
        """Connect and negotiate, retrying until QEMU opened ``socket_path`` or ``deadline``.

        ``alive`` (optional) is called between tries and raises when QEMU is gone.
        """
        from qemu.qmp import QMPError
        from qemu.qmp.legacy import QEMUMonitorProtocol

        while True:
            qmp = QEMUMonitorProtocol(socket_path)
            try:
                greeting = qmp.connect(negotiate=True)
            except (QMPError, OSError) as exc:
                qmp.close()
                if time.monotonic() > deadline:
                    raise QmpLinkError(f"QMP socket {socket_path} did not open in time "
                                       f"({exc})") from None
                if alive is not None:
                    alive()
                time.sleep(_RETRY_S)
                continue
            self._qmp = qmp
            self.greeting = dict(greeting or {})
            self._write("recv", self.greeting)
            return

    @property
    def version(self) -> str:
        """QEMU's version from the greeting (``major.minor.micro``), or ``""``."""
        info = self.greeting.get("QMP")
        if isinstance(info, dict) and isinstance(info.get("version"), dict):
            qemu_v = info["version"].get("qemu", {})
            if isinstance(qemu_v, dict):
                return f"{qemu_v.get('major')}.{qemu_v.get('minor')}.{qemu_v.get('micro')}"
        return ""

    def command(self, name: str, deadline: float,
                arguments: dict[str, object] | None = None) -> object:
        """Run ``name`` before ``deadline`` (``time.monotonic``) and return its ``return`` value."""
        from qemu.qmp import QMPError

        if self._qmp is None:
            raise QmpLinkError(f"QMP {name}: not connected")
        ident = f"ballast-{self._next_id}"
        self._next_id += 1
        msg: dict[str, Any] = {"execute": name, "id": ident}
        if arguments is not None:
            msg["arguments"] = arguments
        self._write("send", msg)
        self._qmp.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            reply = self._qmp.cmd_obj(msg)
        except asyncio.TimeoutError:
            raise QmpLinkError(f"QMP {name}: no answer from QEMU in time") from None
        except (QMPError, OSError, EOFError) as exc:
            raise QmpLinkError(f"QMP {name}: QEMU closed the connection "
                               f"({type(exc).__name__})") from None
        finally:
            self.drain_events()
        self._write("recv", reply)
        if "error" in reply:
            error = reply["error"]
            desc = error.get("desc", error) if isinstance(error, dict) else error
            raise QmpLinkError(f"QMP {name} failed: {desc}")
        return reply.get("return")

    def drain_events(self) -> None:
        """Log the events that arrived since the last call."""
        from qemu.qmp import QMPError

        if self._qmp is None:
            return
        try:
            events = self._qmp.get_events(wait=False)
        except (QMPError, OSError, EOFError, asyncio.TimeoutError):
            return
        for event in events:
            self._write("recv", event)

    def close(self) -> None:
        """Disconnect (QEMU may already be gone) and close the log."""
        from qemu.qmp import QMPError

        if self._qmp is not None:
            try:
                self._qmp.close()
            except (QMPError, OSError, EOFError, asyncio.TimeoutError, RuntimeError):
                pass
            self._qmp = None
        with self._lock:
            self._log.close()
