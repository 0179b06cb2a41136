"""The trace format: versioned JSON Lines with a JSON Schema (``trace_schema.json``).

One format for model runs, counterexamples from every checker, and traces of
other implementations. Line 1 is a header (format version, configuration,
faults, who produced it, and for a counterexample what it breaks); each further
line is one step: step number, actor, action name, arguments with every
nondeterministic choice, and optionally the state after it.

>>> import io
>>> from ballast.model.config import Config
>>> from ballast.model.actions import Action
>>> t = Trace(TraceHeader(Config(vms=1, guest_pages=2, machine_pages=2)),
...           (TraceStep(1, Action.of("host_set_target", vm=0, pages=1)),))
>>> buf = io.StringIO(); write_trace_to(buf, t)
>>> print(buf.getvalue().splitlines()[1])
{"step":1,"actor":"host","action":"host_set_target","args":{"vm":0,"pages":1}}
>>> parse_trace(buf.getvalue().splitlines(), "mem").steps[0].action.name
'host_set_target'
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator

from ballast import tally
from ballast.errors import InputError, OutputError
from ballast.model.actions import ACTIONS, Action, ActionSpec
from ballast.model.config import Config
from ballast.model.derived import derived_observation
from ballast.model.faults import FAULTS
from ballast.model.invariants import INVARIANTS
from ballast.opening import open_to_read
from ballast.termination import interrupts_deferred
from ballast.model.schema import SCHEMA, Kind
from ballast.model.sometimes import SOMETIMES
from ballast.model.state import State, initial_state, plain_value, state_from_dict

if TYPE_CHECKING:
    import jsonschema

__all__ = [
    "MAX_DEPTH",
    "MAX_LINE_CHARS",
    "TRACE_VERSION",
    "StepSpool",
    "Trace",
    "TraceHeader",
    "TraceStep",
    "arguments_problem",
    "atomic_write_files",
    "atomic_write_text",
    "atomic_write_with",
    "bounded_lines",
    "check_destinations",
    "is_special_file",
    "iter_trace",
    "loads_record",
    "nearest_folder",
    "observation_problem",
    "observe_matches",
    "observed_problem",
    "parse_trace",
    "read_trace",
    "state_problem",
    "trace_schema",
    "trace_text",
    "write_trace",
    "write_trace_to",
]

TRACE_VERSION = 1

MAX_LINE_CHARS = 1 << 24
"""Longest line a trace may have (16 Mi characters); a longer one is refused, not buffered."""

MAX_DEPTH = 16
"""Deepest nesting of arrays and objects in a record (a state needs 5)."""

_MAX_INT_DIGITS = 20
"""Integers in a trace fit in 64 bits (20 digits); longer digit strings are refused before
conversion."""

_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True)
class TraceHeader:
    """Line 1 of a trace."""

    config: Config
    faults: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    initial: dict[str, Any] | None = None
    comment: str | None = None
    observe: dict[str, Any] | None = None
    """What the implementation observed in the initial state, before step 1 (the same keys
    and values as a step's ``observe``): a divergence there has no step to carry it."""

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ballast_trace": TRACE_VERSION, "config": self.config.to_dict()}
        if self.faults:
            out["faults"] = list(self.faults)
        if self.source:
            out["source"] = self.source
        if self.expect is not None:
            out["expect"] = self.expect
        if self.initial is not None:
            out["initial"] = self.initial
        if self.observe is not None:
            out["observe"] = self.observe
        if self.comment is not None:
            out["comment"] = self.comment
        return out


@dataclass(frozen=True)
class TraceStep:
    """One step of a trace."""

    step: int
    action: Action
    state: dict[str, Any] | None = None
    observe: dict[str, Any] | None = None
    witnesses: tuple[str, ...] = ()
    line: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    """Other schema fields kept as they were (timestamps, source lines)."""

    def to_dict(self) -> dict[str, Any]:
        spec = ACTIONS.get(self.action.name)
        out: dict[str, Any] = {"step": self.step}
        if spec is not None:
            out["actor"] = spec.actor.value
        out["action"] = self.action.name
        out["args"] = self.action.to_dict()
        if self.state is not None:
            out["state"] = self.state
        if self.observe is not None:
            out["observe"] = self.observe
        if self.witnesses:
            out["witnesses"] = list(self.witnesses)
        out.update(self.extra)
        return out


@dataclass(frozen=True)
class Trace:
    """A whole trace: header and steps."""

    header: TraceHeader
    steps: tuple[TraceStep, ...]


@lru_cache(maxsize=1)
def trace_schema() -> dict[str, Any]:
    """The JSON Schema of the trace format (both record kinds under ``$defs``)."""
    text = resources.files("ballast.model").joinpath("trace_schema.json").read_text("utf-8")
    return json.loads(text)  # type: ignore[no-any-return]


@lru_cache(maxsize=2)
def _validator(kind: str) -> "jsonschema.Draft202012Validator":
    import jsonschema  # loaded on first use: a tenth of a second that --help need not pay

    schema = trace_schema()
    sub = {"$defs": schema["$defs"], "$ref": f"#/$defs/{kind}"}
    return jsonschema.Draft202012Validator(sub)


def _dumps(record: dict[str, Any]) -> str:
    return json.dumps(record, separators=(",", ":"), sort_keys=False)


def write_trace_to(out: IO[str], trace: Trace) -> None:
    """Write ``trace`` as JSON Lines to an open text stream."""
    out.write(_dumps(trace.header.to_dict()) + "\n")
    for st in trace.steps:
        out.write(_dumps(st.to_dict()) + "\n")


def is_special_file(p: str | Path) -> bool:
    """Whether ``p`` exists and is neither a plain file nor a folder (a device such as
    /dev/null, a pipe, a terminal, a socket): written into, never replaced.

    >>> is_special_file("/dev/null"), is_special_file("/"), is_special_file("/no/such/file")
    (True, False, False)
    """
    try:
        mode = os.stat(p).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


def nearest_folder(dest: str | Path) -> Path:
    """The folder a file ``dest`` goes in, else the nearest one above it that exists: where
    a temporary file for it lies on its disk before its own folders are made.

    >>> nearest_folder("/no/such/folder/t.jsonl")
    PosixPath('/')
    """
    folder = Path(dest).resolve().parent
    while not folder.is_dir() and folder != folder.parent:
        folder = folder.parent
    return folder


def _parent_folder(p: Path) -> list[Path]:
    """Make the folder ``p`` goes in; the folders this made, the deepest first."""
    made: list[Path] = []
    folder = p.parent
    while not folder.exists() and folder != folder.parent:
        made.append(folder)
        folder = folder.parent
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(str(p), "cannot write: a file is in the way of its folder") from None
    except OSError as exc:
        raise OutputError(str(p.parent), f"cannot create the folder: {exc.strerror}") from None
    if p.is_dir():
        raise OutputError(str(p), "is a folder; expected the path of a file to write")
    return made


def _remove_empty_folders(folders: Iterable[Path]) -> None:
    """Remove those of ``folders`` (the deepest first) that nothing was left in."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            pass


Content = str | Callable[[IO[str]], None]
"""What a file to write holds: its text, or what writes it to the stream it is given (a
file too large to hold as one string)."""


def _write_content(f: IO[str], content: Content) -> None:
    if isinstance(content, str):
        f.write(content)
    else:
        content(f)


def _write_temporary(p: Path, text: Content) -> str:
    """Write ``text`` to a new temporary file beside ``p``; its name. Nothing left on
    error."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    except OSError as exc:
        raise OutputError(str(p), f"cannot write: {exc.strerror}") from None
    try:
        # mkstemp makes the file private (0600); a report is for others to read too, as a
        # new file is under the umask. A file written over keeps its own permissions (a
        # user who made a trace private keeps it private).
        try:
            mode = os.stat(p).st_mode & 0o7777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            _write_content(f, text)
            f.flush()
            os.fsync(f.fileno())
    except BaseException as exc:
        _unlink_quietly(tmp)
        if isinstance(exc, OSError):
            raise OutputError(str(p), f"cannot write: {exc.strerror or exc}") from None
        raise
    return tmp


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file so that readers see either the old file or the whole new one.

    Any failure (no space, no right, a folder in the way, an interrupt) leaves no
    temporary file; a failure to write is an :class:`~ballast.errors.OutputError`.
    """
    atomic_write_files([(Path(path), text)])


def atomic_write_with(path: str | Path, write: Callable[[IO[str]], None]) -> None:
    """:func:`atomic_write_text` for a file too large to hold as one string: ``write``
    writes it to the stream it is given (a device or a pipe is written into directly).

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_with(d / "n.txt", lambda f: f.writelines(f"{i}\\n" for i in range(3)))
    >>> (d / "n.txt").read_text().split()
    ['0', '1', '2']
    """
    atomic_write_files([(Path(path), write)])


def check_destinations(files: Iterable[str | Path | None] = (),
                       folders: Iterable[str | Path | None] = (),
                       inputs: Iterable[str | Path | None] = ()) -> None:
    """Refuse, before any work, a file or a folder of files to write that could not be
    written at the end: a folder stands where a file goes (or a file where a folder goes),
    or nothing can be written where it would be made (None: none asked for); or a file
    that two outputs name, or that is one of the command's ``inputs`` (a configuration
    file), which writing would silently replace. A command that writes its results last
    calls this first, so that a bad output path costs no run and leaves no verdict that
    its exit code contradicts. Nothing is created.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> check_destinations([d / "new" / "a.xml", None], folders=[d / "reports"])
    >>> sorted(d.iterdir())
    []
    >>> check_destinations([d])
    Traceback (most recent call last):
    ...
    ballast.errors.OutputError: ...: is a folder; expected the path of a file to write
    >>> check_destinations([d / "a.xml", d / "b" / ".." / "a.xml"])
    Traceback (most recent call last):
    ...
    ballast.errors.OutputError: ...: is named for two outputs; give each its own file
    """
    files = list(files)
    _refuse_shared_files(files, inputs)
    probes: list[tuple[Path, Path]] = []
    for p in files:
        if p is None:
            continue
        if Path(p).is_dir():
            raise OutputError(str(p), "is a folder; expected the path of a file to write")
        if is_special_file(p):  # written into where it is (a device, a pipe)
            if not os.access(p, os.W_OK):
                raise OutputError(str(p), "cannot write: permission denied")
            continue
        probes.append((Path(p), Path(p).parent))
    for p in folders:
        if p is not None:
            probes.append((Path(p), Path(p)))
    for path, folder in probes:
        # The nearest folder that exists is where the first thing would be made.
        while not folder.exists() and folder != folder.parent:
            folder = folder.parent
        if not folder.is_dir():
            raise OutputError(str(path), f"cannot write: {folder} is a file, not a folder")
        # Whether a file can be made there is known only by making one (permissions,
        # read-only mounts, pseudo file systems): a temporary one, removed at once.
        try:
            fd, tmp = tempfile.mkstemp(prefix=".ballast.", suffix=".tmp", dir=folder)
        except OSError as exc:
            # /proc answers "No such file or directory" for a folder that is there.
            raise OutputError(str(path), f"cannot write: no file can be made in {folder} "
                              f"({exc.strerror})") from None
        os.close(fd)
        _unlink_quietly(tmp)


def _refuse_shared_files(files: list[str | Path | None],
                         inputs: Iterable[str | Path | None]) -> None:
    """Refuse a file to write that another output or an input names too (a device or a
    pipe, written into, may be named by several)."""
    taken = {os.path.realpath(p): "is an input of this command; give another file to write"
             for p in inputs if p is not None}
    for p in files:
        if p is None or is_special_file(p):
            continue
        where = os.path.realpath(p)
        if where in taken:
            raise OutputError(str(p), taken[where])
        taken[where] = "is named for two outputs; give each its own file"


def atomic_write_files(files: Iterable[tuple[str | Path, Content]]) -> None:
    """Write several files all or nothing: every one is written in full before any is
    renamed into place; if one cannot be, the files already renamed are put back as they
    were, and Ctrl-C or SIGTERM (within :func:`~ballast.termination.sigterm_as_interrupt`,
    as the command line runs) waits until the last rename. A crash of the machine between
    two renames can still leave some files new and some old.

    >>> import tempfile, pathlib
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> atomic_write_files([(d / "a.md", "a"), (d / "b.md", "b")])
    >>> sorted(p.name for p in d.iterdir())
    ['a.md', 'b.md']
    >>> atomic_write_files([(d / "c.md", "c"), (d, "a folder")])
    Traceback (most recent call last):
    ...
    ballast.errors.OutputError: ...: is a folder; expected the path of a file to write
    >>> sorted(p.name for p in d.iterdir())
    ['a.md', 'b.md']
    >>> atomic_write_files([(d / "new" / "e.md", "e"), (d / "a.md" / "f.md", "f")])
    Traceback (most recent call last):
    ...
    ballast.errors.OutputError: ...: cannot write: a file is in the way of its folder
    >>> sorted(p.name for p in d.iterdir())  # the folder it made for them is gone
    ['a.md', 'b.md']
    """
    items = [(Path(p), text) for p, text in files]
    # A device, a pipe or a terminal (``--out /dev/null``, ``/dev/stdout``) is written into:
    # renamed over, it would be replaced by a plain file (as root, /dev/null itself).
    special = [(p, text) for p, text in items if is_special_file(p)]
    items = [(p, text) for p, text in items if not is_special_file(p)]
    made: list[Path] = []
    written: list[tuple[str, Path]] = []
    done = False
    try:
        for p, _ in items:
            made = _parent_folder(p) + made
        for p, text in special:
            try:
                with open(p, "w", encoding="utf-8") as f:
                    _write_content(f, text)
            except OSError as exc:
                raise OutputError(str(p), f"cannot write: {exc.strerror or exc}") from None
        for p, text in items:
            written.append((_write_temporary(p, text), p))
        with interrupts_deferred():  # Ctrl-C or SIGTERM lands after the last rename
            _rename_all_or_none(written)
        done = True
    finally:
        for tmp, _ in written:
            if os.path.exists(tmp):
                _unlink_quietly(tmp)
        if not done:  # a full disk or a bad path leaves no empty folder behind
            _remove_empty_folders(made)


def _rename_all_or_none(written: list[tuple[str, Path]]) -> None:
    """Rename each temporary file over its destination; if one cannot be (or an interrupt
    that could not be deferred lands between two), put back what the others replaced."""
    replaced: list[tuple[Path, str | None]] = []  # destination, the name of its old file
    try:
        for tmp, p in written:
            old = _keep_old(p)
            try:
                os.replace(tmp, p)
            except BaseException:
                if old is not None:
                    _unlink_quietly(old)
                raise
            replaced.append((p, old))
    except BaseException as exc:
        for i in reversed(range(len(replaced))):
            p, old = replaced[i]
            try:
                if old is None:
                    os.unlink(p)
                else:
                    os.replace(old, p)
            except OSError:
                replaced[i] = (p, None)  # the old file stays under its second name
        if isinstance(exc, OSError):
            raise OutputError(str(written[len(replaced)][1]),
                              f"cannot write: {exc.strerror or exc}") from None
        raise
    finally:
        for _, old in replaced:
            if old is not None and os.path.exists(old):
                _unlink_quietly(old)


def _keep_old(p: Path) -> str | None:
    """A second name for the file at ``p`` (None: there is none), by which it can be put
    back once replaced: a hard link, or a copy where the file system has none."""
    if not os.path.lexists(p):
        return None
    keep = f"{p.parent}/.{p.name}.{os.getpid()}.old"
    _unlink_quietly(keep)
    try:
        os.link(p, keep, follow_symlinks=False)
    except OSError:
        try:
            shutil.copy2(p, keep, follow_symlinks=False)
        except OSError as exc:
            raise OutputError(str(p), f"cannot write: cannot keep the old file to put back "
                              f"if another cannot be written ({exc.strerror or exc})") from None
    return keep


def trace_text(trace: Trace) -> str:
    """``trace`` as the text of a trace file."""
    import io

    buf = io.StringIO()
    write_trace_to(buf, trace)
    return buf.getvalue()


def write_trace(path: str | Path, trace: Trace) -> None:
    """Write ``trace`` to ``path`` atomically."""
    atomic_write_text(path, trace_text(trace))


class StepSpool:
    """The steps of a trace held in a temporary file as they are taken, then written after
    their header (known only once the run ends: it names the violation) into the trace
    file, atomically. A long run's steps, each with its state, need not fit in memory.

    >>> import pathlib, tempfile
    >>> from ballast.model.actions import Action
    >>> from ballast.model.config import preset
    >>> d = pathlib.Path(tempfile.mkdtemp())
    >>> with StepSpool(d / "t.jsonl") as spool:
    ...     spool.add(TraceStep(1, Action.of("host_set_target", vm=0, pages=1)))
    ...     spool.write(TraceHeader(preset("core")))
    >>> spool.count, len(read_trace(d / "t.jsonl").steps)
    (1, 1)
    """

    def __init__(self, dest: str | Path) -> None:
        self.dest = Path(dest)
        """The trace file the steps are for (named in an error)."""
        self.count = 0
        """Steps added."""
        # On the trace's own disk (its folder, or the nearest one above it that exists, as
        # the folders are made only when it is written): a system's temporary folder may be
        # held in memory, or be smaller.
        folder = None if is_special_file(self.dest) else nearest_folder(self.dest)
        try:
            self._file: IO[str] = tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder)
        except OSError as exc:
            raise OutputError(str(self.dest), "cannot hold its steps in a temporary file: "
                              f"{exc.strerror or exc}") from None

    def __enter__(self) -> "StepSpool":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._file.close()
        except OSError:  # flushing what a full disk refused: the error is already raised
            pass

    def add(self, st: TraceStep) -> None:
        """Keep one more step (the next by number)."""
        try:
            self._file.write(_dumps(st.to_dict()) + "\n")
        except OSError as exc:
            raise OutputError(str(self.dest), "cannot hold its steps in a temporary file: "
                              f"{exc.strerror or exc}") from None
        self.count += 1

    def write(self, header: TraceHeader) -> None:
        """Write the trace file: ``header``, then every step added, atomically."""
        try:
            self._file.flush()
            self._file.seek(0)
        except OSError as exc:
            raise OutputError(str(self.dest), "cannot hold its steps in a temporary file: "
                              f"{exc.strerror or exc}") from None

        def body(out: IO[str]) -> None:
            out.write(_dumps(header.to_dict()) + "\n")
            shutil.copyfileobj(self._file, out)

        atomic_write_with(self.dest, body)


def _check(kind: str, record: Any, source: str, line: int) -> None:
    errors = sorted(_validator(kind).iter_errors(record), key=lambda e: list(e.path))
    if errors:
        err = errors[0]
        where = "/".join(str(x) for x in err.absolute_path)
        raise InputError(source, line, f"{kind} record{' field ' + where if where else ''}: "
                         f"{err.message}")


def _parse_header(record: Any, source: str) -> TraceHeader:
    if not isinstance(record, dict) or "ballast_trace" not in record:
        raise InputError(source, 1, "expected a header record with \"ballast_trace\": "
                         f"{TRACE_VERSION} on line 1")
    if not _is_int(record["ballast_trace"]) or record["ballast_trace"] != TRACE_VERSION:
        raise InputError(source, 1, f"unsupported trace version {record.get('ballast_trace')!r};"
                         f" this Ballast reads version {TRACE_VERSION}")
    _check("header", record, source, 1)
    cfg = Config.from_dict(record["config"], source=f"{source}:1")
    faults = tuple(record.get("faults", ()))
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        raise InputError(source, 1, f"unknown fault {unknown[0]!r}; expected some of "
                         f"{', '.join(sorted(FAULTS))}")
    twice = [f for i, f in enumerate(faults) if f in faults[:i]]
    if twice:
        raise InputError(source, 1, f"faults names {twice[0]!r} twice; each fault once")
    unlogged = (record.get("source") or {}).get("unlogged_actions") \
        if isinstance(record.get("source"), dict) else None
    if unlogged is not None:
        if not isinstance(unlogged, list) or not all(isinstance(n, str) for n in unlogged):
            raise InputError(source, 1, "source.unlogged_actions must be an array of action "
                             "names")
        unknown = [n for n in unlogged if n not in ACTIONS]
        if unknown:
            # A misspelt name would silently forbid the unlogged steps it meant to allow.
            raise InputError(source, 1, f"source.unlogged_actions: unknown action "
                             f"{unknown[0]!r}; expected some of {', '.join(ACTIONS)}")
    initial = record.get("initial")
    if initial is not None:
        problem = state_problem(initial, cfg)
        if problem is not None:
            raise InputError(source, 1, f"header field initial: {problem}")
    observed = record.get("observe")
    if observed is not None:
        problem = observation_problem(observed, cfg)
        if problem is not None:
            raise InputError(source, 1, f"header field observe: {problem}")
    return TraceHeader(config=cfg, faults=faults,
                       source=dict(record.get("source", {})), expect=record.get("expect"),
                       initial=initial, comment=record.get("comment"), observe=observed)


def _same_shape(data: Any, template: Any, path: str) -> str | None:
    """Where ``data`` differs in form from a state dict like ``template``, or None."""
    if isinstance(template, dict):
        if not isinstance(data, dict):
            return f"{path or 'the state'} must be an object"
        if set(data) != set(template):
            missing = sorted(set(template) - set(data))
            extra = sorted(set(data) - set(template))
            return (f"{path or 'the state'} " + (f"lacks {', '.join(missing)}" if missing
                                                 else f"has unknown field {extra[0]}"))
        for key, sub in template.items():
            problem = _same_shape(data[key], sub, f"{path}/{key}" if path else key)
            if problem is not None:
                return problem
        return None
    if isinstance(template, list):
        if not isinstance(data, list):
            return f"{path} must be an array"
        if path == "vms" and len(data) != len(template):
            return f"{path} must have one entry per VM ({len(template)})"
        if path == "vms":
            for n, vm in enumerate(data):
                problem = _same_shape(vm, template[0], f"vms/{n}")
                if problem is not None:
                    return problem
            return None
        if _MAP_PATH.sub("vms/*/", path) in _MAP_PATHS and len(data) != len(template):
            return f"{path} must have one entry per {_MAP_INDEX[_MAP_PATH.sub('vms/*/', path)]} " \
                   f"({len(template)}), got {len(data)}"
        for item in data:
            ok = _is_int(item) or (isinstance(item, list) and all(_is_int(x) for x in item))
            if not ok:
                return f"{path} must hold integers"
        return None
    if not _is_int(data):
        return f"{path} must be an integer"
    return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def state_problem(data: Any, cfg: Config) -> str | None:
    """Why ``data`` is not a state of configuration ``cfg`` (as State.to_dict gives), or None.

    The form must match and the model's invariants must be computable on it; whether
    they hold is for the checker to say.

    >>> from ballast.model.config import Config
    >>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
    >>> state_problem(initial_state(cfg).to_dict(), cfg) is None
    True
    >>> state_problem({"host": {}, "vms": []}, cfg)
    'host lacks content, cow, free, idle_pcpus, in_use, reclaimed, swap'
    """
    problem = _same_shape(data, _state_template(cfg), "")
    if problem is not None:
        return problem
    try:
        state = state_from_dict(data)
        for prop in INVARIANTS.values():
            prop.check_state(cfg, state)
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        return f"not a state of this configuration ({type(exc).__name__}: {exc})"
    return None


@functools.lru_cache(maxsize=4)
def _state_template(cfg: Config) -> dict[str, Any]:
    """The initial state of ``cfg`` as a recorded state (read only: shared by every step of
    a trace, whose steps all have the header's configuration; a large guest's costs much)."""
    return initial_state(cfg).to_dict()


@functools.lru_cache(maxsize=4)
def _observation_template(cfg: Config) -> State:
    """The initial state of ``cfg``, which observation paths are checked against."""
    return initial_state(cfg)


_MAP_PATH = re.compile(r"^vms/\d+/")
_MAP_INDEX = {f.path: f.elements[0].name for f in SCHEMA if f.kind is Kind.MAP}
"""The fields with one value per element of a domain (a guest's map has one entry per PPN),
by their path with ``*`` for the VM number, and what indexes them."""
_MAP_PATHS = frozenset(_MAP_INDEX)


def _observed_path_problem(path: str, template: State) -> str | None:
    """Why ``path`` names no part of a state of the trace's configuration (``template``:
    its initial state), or None. VM numbers and indices are decimal, from 0."""
    if any(part.startswith(("-", "+")) or (part[:1].isdigit() and not part.isdigit())
           or (part.isdigit() and not part.isascii())  # other scripts' digits: not 0-9
           for part in path.strip("/").split("/")):
        return "is not a path into the state: indices are whole numbers from 0"
    try:
        if derived_observation(template, path) is None:
            _state_field(template, path)
    except (KeyError, IndexError, ValueError, AttributeError, TypeError):
        return (f"is not part of the model's state (a VM number from 0 to "
                f"{len(template.vms) - 1}, then a field as the recorded state names it)")
    return None


_KNOWN = {"step", "actor", "action", "args", "state", "observe", "witnesses"}


def arguments_problem(spec: ActionSpec, args: dict[str, Any]) -> str | None:
    """Why ``args`` (decoded JSON, one value for each of ``spec``'s parameters) are not
    values of the parameters' types, or None. JSON's ``true`` and ``1.0`` are no PPN 1.

    >>> from ballast.model.actions import ACTIONS
    >>> arguments_problem(ACTIONS["balloon_inflate"], {"vm": 0, "ppns": [1, True]})
    'argument ppns must be an array of integers'
    >>> arguments_problem(ACTIONS["balloon_inflate"], {"vm": 0, "ppns": [2, 1]}) is None
    True
    """
    hints = getattr(spec.effect, "__annotations__", {})
    for key in spec.params:
        problem = _arg_problem(args[key], hints.get(key))
        if problem is not None:
            return f"argument {key} {problem}"
    return None


def _arg_problem(value: Any, annotation: Any) -> str | None:
    """Why ``value`` cannot be an argument of that annotation (int, str, tuple of ints)."""
    kind = str(annotation)
    if kind == "int":
        return None if _is_int(value) else "must be an integer"
    if kind == "str":
        return None if isinstance(value, str) else "must be a string"
    if kind.startswith("tuple"):
        ok = isinstance(value, list) and all(_is_int(x) for x in value)
        return None if ok else "must be an array of integers"
    ok = _is_int(value) or isinstance(value, str) or (
        isinstance(value, list) and all(_is_int(x) for x in value))
    return None if ok else "must be an integer, a string or an array of integers"


def observed_problem(value: Any) -> str | None:
    """Why ``value`` cannot be an observed value, or None: observed values are parts of a
    state, integers, arrays of them (or of arrays of them), objects of those.

    >>> observed_problem([1, 2]), observed_problem(1.0)
    (None, 'must be an integer, an array of integers or an object of those')
    """
    if _is_int(value):
        return None
    if isinstance(value, list):
        ok = all(_is_int(x) or (isinstance(x, list) and all(_is_int(y) for y in x))
                 for x in value)
        return None if ok else "must hold integers, as the state does"
    if isinstance(value, dict):
        for sub in value.values():
            problem = observed_problem(sub)
            if problem is not None:
                return problem
        return None
    return "must be an integer, an array of integers or an object of those"


def observation_problem(observe: dict[str, Any], cfg: Config | None) -> str | None:
    """Why ``observe`` (a step's or the header's) is no observation of a state of ``cfg``
    (None: its paths are not checked), or None: each value as :func:`observed_problem`
    says, each path a part of the state or a derived key (:mod:`ballast.model.derived`).

    >>> from ballast.model.config import Config
    >>> cfg = Config(vms=1, guest_pages=2, machine_pages=2)
    >>> observation_problem({"host/free_count": 2}, cfg) is None
    True
    >>> observation_problem({"vms/1/target": 0}, cfg)
    "observed vms/1/target is not part of the model's state (a VM number from 0 to 0, \
then a field as the recorded state names it)"
    """
    template = _observation_template(cfg) if cfg is not None and observe else None
    for path, value in observe.items():
        problem = observed_problem(value)
        if problem is None and template is not None:
            problem = _observed_path_problem(path, template)
        if problem is not None:
            return f"observed {path} {problem}"
    return None


def _parse_step(record: Any, source: str, line: int, expected_step: int,
                cfg: Config | None = None) -> TraceStep:
    _check("step", record, source, line)
    name = record["action"]
    spec = ACTIONS.get(name)
    if spec is None:
        raise InputError(source, line, f"unknown action {name!r}; expected one of "
                         f"{', '.join(ACTIONS)}")
    if "actor" in record and record["actor"] != spec.actor.value:
        raise InputError(source, line, f"action {name} is performed by {spec.actor.value}, "
                         f"not {record['actor']}")
    args = record["args"]
    if set(args) != set(spec.params):
        raise InputError(source, line, f"action {name} takes arguments "
                         f"{', '.join(spec.params) or '(none)'}, got {', '.join(args) or '(none)'}")
    problem = arguments_problem(spec, args)
    if problem is not None:
        raise InputError(source, line, f"action {name}: {problem}")
    # 1.0 equals 1 but is no step number: a report would index its steps with it.
    if not _is_int(record["step"]) or record["step"] != expected_step:
        raise InputError(source, line, f"expected step {expected_step}, got {record['step']}")
    if cfg is not None and "state" in record:
        problem = _same_shape(record["state"], _state_template(cfg), "")
        if problem is not None:
            raise InputError(source, line, f"step field state: {problem}")
    problem = observation_problem(record.get("observe") or {}, cfg)
    if problem is not None:
        raise InputError(source, line, problem)
    unknown = [w for w in record.get("witnesses", ()) if w not in SOMETIMES]
    if unknown:
        raise InputError(source, line, f"witnesses names no scenario of the model: "
                         f"{unknown[0]!r:.60}; expected scenario names (ballast list "
                         f"scenarios)")
    act = Action.of(name, **{k: args[k] for k in spec.params})
    return TraceStep(step=record["step"], action=act, state=record.get("state"),
                     observe=record.get("observe"),
                     witnesses=tuple(record.get("witnesses", ())), line=line,
                     extra={k: v for k, v in record.items() if k not in _KNOWN})


def bounded_lines(f: IO[str], source: str, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of ``f``, each read with a bound: a line longer than ``limit`` is an error.

    >>> import io
    >>> list(bounded_lines(io.StringIO("a\\nbb\\n"), "t", limit=2))
    ['a\\n', 'bb\\n']
    >>> list(bounded_lines(io.StringIO("abc"), "t", limit=2))
    Traceback (most recent call last):
    ...
    ballast.errors.InputError: t:1: line longer than 2 characters (no end of line within the limit)
    """
    read = [0]
    tally.note(f"lines of {source}", lambda: f"{read[0]:,} lines of {source} read")
    n = 0
    while True:
        line = f.readline(limit + 1)
        if not line:
            return
        n += 1
        read[0] = n
        if len(line) > limit and not (len(line) == limit + 1 and line.endswith("\n")):
            raise InputError(source, n, f"line longer than {limit:,} characters "
                             "(no end of line within the limit)")
        yield line


class _Refused(ValueError):
    """A JSON value the trace format does not allow (NaN, infinities, huge integers)."""


def _parse_constant(name: str) -> Any:
    raise _Refused(f"{name} is not a number a trace may contain")


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise _Refused(f"integer with {len(text.lstrip('-')):,} digits; at most "
                       f"{_MAX_INT_DIGITS} are allowed")
    return int(text)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"number {text[:40]} is out of range")
    return value


def _check_plain(value: Any) -> str | None:
    """What makes a decoded record unusable (too deep, lone surrogates), or None."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            for k, v in item.items():
                if not k.isascii() and _SURROGATE.search(k):
                    return "a key contains a lone surrogate (not Unicode text)"
                stack.append((v, depth + 1))
        elif isinstance(item, list):
            if depth > MAX_DEPTH:
                return f"nested more than {MAX_DEPTH} levels deep"
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, str) and not item.isascii() and _SURROGATE.search(item):
            return "a string contains a lone surrogate (not Unicode text)"
    return None


def loads_record(text: str, source: str, line: int) -> Any:
    """Decode one JSON line of a trace, refusing what Ballast cannot handle safely.

    Refused, as :class:`InputError` naming file and line: invalid JSON, ``NaN`` and
    infinities, integers beyond 64 bits, nesting deeper than :data:`MAX_DEPTH`, and
    lone surrogates.

    >>> loads_record('{"step": 1}', "t", 2)
    {'step': 1}
    >>> loads_record('{"t": NaN}', "t", 2)
    Traceback (most recent call last):
    ...
    ballast.errors.InputError: t:2: NaN is not a number a trace may contain
    """
    try:
        value = json.loads(text, parse_constant=_parse_constant, parse_int=_parse_int,
                           parse_float=_parse_float)
    except json.JSONDecodeError as exc:
        raise InputError(source, line, f"not valid JSON ({exc.msg} at column {exc.colno})") \
            from None
    except _Refused as exc:
        raise InputError(source, line, str(exc)) from None
    except RecursionError:
        raise InputError(source, line, f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:  # a decoder limit, e.g. on digits
        raise InputError(source, line, f"not usable JSON: {str(exc).split(';')[0]}") from None
    problem = _check_plain(value)
    if problem is not None:
        raise InputError(source, line, problem)
    return value


def _records(lines: Iterable[str], source: str) -> Iterator[tuple[int, Any]]:
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        yield n, loads_record(text, source, n)


def iter_trace(lines: Iterable[str], source: str,
               configure: Callable[[TraceHeader], TraceHeader] | None = None
               ) -> tuple[TraceHeader, Iterator[TraceStep]]:
    """Parse a trace lazily: the header now, the steps as they are consumed.

    ``configure`` turns the header into the one the trace is judged under (options that
    override its configuration); the recorded states and observations of the steps, and
    the header's initial state, must then fit that configuration: a trace of 4 PPNs per
    VM judged as one of 3 is bad input, not a trace the model fails to explain.
    """
    records = _records(lines, source)
    first = next(records, None)
    if first is None:
        raise InputError(source, 1, "empty trace: expected a header record")
    header = _parse_header(first[1], source)
    if configure is not None:
        header = configure(header)
        if header.initial is not None:
            problem = state_problem(header.initial, header.config)
            if problem is not None:
                raise InputError(source, 1, f"header field initial, under the configuration "
                                 f"asked for: {problem}")
        if header.observe is not None:
            problem = observation_problem(header.observe, header.config)
            if problem is not None:
                raise InputError(source, 1, f"header field observe, under the configuration "
                                 f"asked for: {problem}")

    def steps() -> Iterator[TraceStep]:
        expected = 1
        for n, record in records:
            yield _parse_step(record, source, n, expected, header.config)
            expected += 1

    return header, steps()


def parse_trace(lines: Iterable[str], source: str,
                configure: Callable[[TraceHeader], TraceHeader] | None = None) -> Trace:
    """Parse a whole trace from lines of text (``configure``: as :func:`iter_trace`)."""
    header, steps = iter_trace(lines, source, configure)
    return Trace(header, tuple(steps))


def read_trace(path: str | Path,
               configure: Callable[[TraceHeader], TraceHeader] | None = None) -> Trace:
    """Read a trace file; malformed input raises InputError naming file and line
    (``configure``: as :func:`iter_trace`)."""
    p = Path(path)
    try:
        with open_to_read(p) as f:
            return parse_trace(bounded_lines(f, str(p)), str(p), configure)
    except OSError as exc:
        raise InputError(str(p), None, f"cannot read trace: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(p), None, "not a UTF-8 text file") from None


def observe_matches(state: State, observe: dict[str, Any]) -> str | None:
    """None if ``state`` agrees with a partial observation, else what differs.

    >>> from ballast.model.config import Config
    >>> from ballast.model.state import initial_state
    >>> s = initial_state(Config(vms=1, guest_pages=2, machine_pages=2))
    >>> observe_matches(s, {"vms/0/module/actual": 0}) is None
    True
    >>> observe_matches(s, {"vms/0/module/actual": 3})
    'vms/0/module/actual is 0, observed 3'
    """
    for path, want in observe.items():
        try:
            # Counts and contents (model.derived) are derived from the state, not a path
            # into it.
            have = derived_observation(state, path)
            if have is None:
                # Only the observed field is converted, not the whole state: a real
                # guest's state is large and most steps observe one number.
                have = plain_value(_state_field(state, path))
        except (KeyError, IndexError, ValueError, AttributeError, TypeError):
            return f"{path} is not part of the model's state"
        if have != want:
            return f"{path} is {have}, observed {want}"
    return None


def _state_field(state: Any, path: str) -> Any:
    """The value at a slash path of :meth:`State.to_dict`, read from the state itself."""
    value = state
    for part in path.strip("/").split("/"):
        if isinstance(value, tuple):
            value = value[int(part)]
        elif part in getattr(value, "__dataclass_fields__", {}):
            value = getattr(value, part)
        else:
            raise KeyError(part)
    return value


