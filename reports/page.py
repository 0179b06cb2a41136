"""``ballast report TRACE``: the report files of one trace, written all or nothing.

Every output is rendered in memory first; only when all of them are ready is
each written atomically (temporary file, then rename). A malformed trace raises
:class:`~ballast.errors.InputError` before anything touches the disk.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable, Sequence

from ballast.errors import InputError, UsageError
from ballast.model.trace import Trace, bounded_lines, parse_trace
from ballast.opening import open_to_read
from ballast.reports.atomic import atomic_write_files
from ballast.reports.explain import Explanation, explain
from ballast.reports.render_html import render_html
from ballast.reports.render_md import render_markdown

__all__ = ["FORMATS", "read_trace_lines", "render_report", "write_report"]

FORMATS = {"html": ".html", "md": ".md", "json": ".json"}
"""Report formats and their file suffixes."""


def read_trace_lines(path: str | Path) -> tuple[Trace, list[str]]:
    """Read and parse a trace file, keeping its lines (to quote them in the report)."""
    p = Path(path)
    try:
        with open_to_read(p) as f:
            # Lines end at newlines only: U+2028 and friends are text inside a JSON string.
            lines = [line.rstrip("\r\n") for line in bounded_lines(f, str(p))]
    except OSError as exc:
        raise InputError(str(p), None, f"cannot read trace: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(p), None, "not a UTF-8 text file") from None
    return parse_trace(lines, str(p)), lines


def parse_formats(spec: str | Iterable[str]) -> tuple[str, ...]:
    """``"html,md"`` -> ``("html", "md")``; an unknown format is a usage error.

    >>> parse_formats("md, html")
    ('md', 'html')
    """
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out = tuple(dict.fromkeys(x.strip().lower() for x in items if x.strip()))
    bad = [x for x in out if x not in FORMATS]
    if bad or not out:
        raise UsageError(f"unknown report format {', '.join(bad) or '(none)'}; expected a "
                         f"comma-separated list of {', '.join(FORMATS)}")
    return out


def render_report(e: Explanation, formats: Sequence[str]) -> dict[str, str]:
    """Format name -> the report's text in that format."""
    out: dict[str, str] = {}
    for fmt in formats:
        if fmt == "html":
            out[fmt] = render_html(e)
        elif fmt == "md":
            out[fmt] = render_markdown(e)
        elif fmt == "json":
            out[fmt] = _json_text(e.to_dict())
    return out


def _json_text(data: object) -> str:
    """``json.dumps(data, indent=2, sort_keys=True)`` and a newline, joined a stretch at a
    time: an indented dump is made of one small piece per value, and the report of a long
    trace of a large guest has millions of them (held all at once, they took hundreds of MB).

    >>> data = {"b": [1, 2], "a": None}
    >>> _json_text(data) == json.dumps(data, indent=2, sort_keys=True) + chr(10)
    True
    """
    stretches: list[str] = []
    pieces: list[str] = []
    for piece in json.JSONEncoder(indent=2, sort_keys=True).iterencode(data):
        pieces.append(piece)
        if len(pieces) >= 65_536:
            stretches.append("".join(pieces))
            pieces.clear()
    stretches.append("".join(pieces))
    stretches.append("\n")
    return "".join(stretches)


def write_report(trace_path: str | Path, out_dir: str | Path | None = None,
                 formats: Sequence[str] = ("html", "md"), *,
                 name: str | None = None,
                 read: tuple[Trace, list[str]] | None = None) -> list[Path]:
    """Write the reports of the trace file ``trace_path`` into ``out_dir``.

    Files are named after the trace (``x.jsonl`` -> ``x.html``, ``x.md``, ``x.json``);
    ``out_dir`` defaults to the trace's own folder. ``name`` is how the report refers
    to the trace (default: the path as given). ``read``: the trace and its lines as
    :func:`read_trace_lines` gave them, where the caller has read them already (a pipe
    can be read only once). Returns the paths written.
    """
    p = Path(trace_path)
    fmts = parse_formats(formats)
    if out_dir is None and p.exists() and not p.is_file() and not p.is_dir():
        # A pipe (``<(xz -dc t.jsonl.xz)``, /dev/stdin) has no folder to write beside it.
        raise UsageError(f"{p} is not a file in a folder (a pipe?): give --out FOLDER for "
                         "the reports")
    trace, lines = read if read is not None else read_trace_lines(p)
    texts = render_report(explain(trace, name or str(trace_path), lines), fmts)
    out = Path(out_dir) if out_dir is not None else p.parent
    stem = p.name[:-len(".jsonl")] if p.name.endswith(".jsonl") else p.stem
    files = []
    for fmt in fmts:
        target = out / f"{stem}{FORMATS[fmt]}"
        if target.resolve() == p.resolve():
            raise UsageError(f"the {fmt} report would overwrite the trace {p}")
        files.append((target, texts[fmt]))
    atomic_write_files(files)
    return [target for target, _ in files]
