"""Atomic report files: a reader sees the old file or the whole new one, never a part.

The one implementation lives with the trace format
(:func:`ballast.model.trace.atomic_write_text`: temporary file in the same
folder, flushed to disk, renamed over the target, permissions 0666 less the
umask so that reports can be read by others); reports use it from here.
A set of files that belong together (a trace and its explanation, the CI
summaries) is written with :func:`atomic_write_files`: all of them or none.
Failing to write (no space, a folder in the way) is an
:class:`~ballast.errors.OutputError` and leaves no temporary file behind.

>>> import tempfile, pathlib
>>> d = pathlib.Path(tempfile.mkdtemp())
>>> atomic_write_text(d / "r.md", "# ok\\n")
>>> (d / "r.md").read_text(), sorted(p.name for p in d.iterdir())
('# ok\\n', ['r.md'])
"""

from __future__ import annotations

from ballast.model.trace import atomic_write_files, atomic_write_text

__all__ = ["atomic_write_files", "atomic_write_text"]
