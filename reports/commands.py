"""The command lines a report tells its reader to run, quoted for a POSIX shell.

A report's path may hold a space or a shell's special characters (a report folder named
``my reports``, a trace named by whoever wrote it): the command is pasted into a shell, so
each path is quoted, and nothing in it runs.

>>> replay_command("reports/out/x.jsonl")
'ballast replay reports/out/x.jsonl'
>>> replay_command("my reports/a b;echo hi.jsonl")
"ballast replay 'my reports/a b;echo hi.jsonl'"
"""

from __future__ import annotations

import shlex
from pathlib import PurePath

__all__ = ["replay_command"]


def replay_command(trace: str | PurePath) -> str:
    """``ballast replay TRACE``, the path quoted as a shell reads it."""
    text = trace.as_posix() if isinstance(trace, PurePath) else trace
    return f"ballast replay {shlex.quote(text)}"
