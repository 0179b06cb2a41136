"""Tiny implementations under test, written as Python scripts, for the adapter tests.

Each script speaks just enough of the adapter protocol to misbehave in one way.
They import nothing from Ballast: they stand for someone else's program.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["EXAMPLES", "script"]

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"

_PRELUDE = '''
import json, os, sys, time
def send(obj):
    sys.stdout.write(json.dumps(obj) + "\\n"); sys.stdout.flush()
ACTIONS = {actions!r}
OBSERVE = {observe!r}
for line in sys.stdin:
    msg = json.loads(line)
    i = msg["id"]
    if "hello" in msg:
        send({{"id": 0, "hello": {{"protocol": {protocol}, "implementation": "{name}",
              "config": {config!r}, "actions": ACTIONS, "observe": OBSERVE}}}})
        continue
    if "bye" in msg:
        break
{body}
'''


def script(tmp: Path, name: str, body: str, *, actions: list[str] | None = None,
           observe: list[str] | None = None, config: dict[str, object] | None = None,
           protocol: int = 1) -> list[str]:
    """Write a script whose request loop runs ``body`` (indented 4) after the hello."""
    text = _PRELUDE.format(actions=actions or ["host_set_target"], observe=observe or [],
                           name=name, config=config or {}, body=body, protocol=protocol)
    path = tmp / f"{name}.py"
    path.write_text(text)
    return [sys.executable, str(path)]
