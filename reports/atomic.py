"""Atomic report files: a reader sees the old file or the whole new one, never a part.

The one implementation lives with the trace format
(:func:`ballast.model.trace.atomic_write_text`: temporary file in the same
folder, flushed to disk, renamed over the target, permissions 0666 less the
umask so that reports can be read by others); reports use it from here.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "r.md", "# ok\\n")
>>> (d / "r.md").read_text(), sorted(p.name for p in d.iterdir())
('# ok\\n', ['r.md'])
"""

from __future__ import annotations

from ballast.model.trace import atomic_write_text

__all__ = ["atomic_write_text"]
