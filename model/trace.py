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

import json
import os
import tempfile
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import IO, Any, Iterable, Iterator

import jsonschema

from ballast.errors import InputError
from ballast.model.actions import ACTIONS, Action
from ballast.model.config import Config
from ballast.model.state import State

__all__ = [
    "TRACE_VERSION",
    "Trace",
    "TraceHeader",
    "TraceStep",
    "atomic_write_text",
    "iter_trace",
    "observe_matches",
    "parse_trace",
    "read_trace",
    "trace_schema",
    "write_trace",
    "write_trace_to",
]

TRACE_VERSION = 1


@dataclass(frozen=True)
class TraceHeader:
    """Line 1 of a trace."""

    config: Config
    faults: tuple[str, ...] = ()
    source: dict[str, Any] = field(default_factory=dict)
    expect: dict[str, Any] | None = None
    initial: dict[str, Any] | None = None
    comment: str | None = None

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
def _validator(kind: str) -> jsonschema.Draft202012Validator:
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


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write a file so that readers see either the old file or the whole new one."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        # mkstemp makes the file private (0600); a report is for others to read too.
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_trace(path: str | Path, trace: Trace) -> None:
    """Write ``trace`` to ``path`` atomically."""
    import io

    buf = io.StringIO()
    write_trace_to(buf, trace)
    atomic_write_text(path, buf.getvalue())


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
    if record.get("ballast_trace") != TRACE_VERSION:
        raise InputError(source, 1, f"unsupported trace version {record.get('ballast_trace')!r};"
                         f" this Ballast reads version {TRACE_VERSION}")
    _check("header", record, source, 1)
    cfg = Config.from_dict(record["config"], source=f"{source}:1")
    return TraceHeader(config=cfg, faults=tuple(record.get("faults", ())),
                       source=dict(record.get("source", {})), expect=record.get("expect"),
                       initial=record.get("initial"), comment=record.get("comment"))


_KNOWN = {"step", "actor", "action", "args", "state", "observe", "witnesses"}


def _parse_step(record: Any, source: str, line: int, expected_step: int) -> TraceStep:
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
    if record["step"] != expected_step:
        raise InputError(source, line, f"expected step {expected_step}, got {record['step']}")
    act = Action.of(name, **{k: args[k] for k in spec.params})
    return TraceStep(step=record["step"], action=act, state=record.get("state"),
                     observe=record.get("observe"),
                     witnesses=tuple(record.get("witnesses", ())), line=line,
                     extra={k: v for k, v in record.items() if k not in _KNOWN})


def _records(lines: Iterable[str], source: str) -> Iterator[tuple[int, Any]]:
    for n, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            yield n, json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(source, n, f"not valid JSON ({exc.msg} at column {exc.colno})") from None


def iter_trace(lines: Iterable[str], source: str) -> tuple[TraceHeader, Iterator[TraceStep]]:
    """Parse a trace lazily: the header now, the steps as they are consumed."""
    records = _records(lines, source)
    first = next(records, None)
    if first is None:
        raise InputError(source, 1, "empty trace: expected a header record")
    header = _parse_header(first[1], source)

    def steps() -> Iterator[TraceStep]:
        expected = 1
        for n, record in records:
            yield _parse_step(record, source, n, expected)
            expected += 1

    return header, steps()


def parse_trace(lines: Iterable[str], source: str) -> Trace:
    """Parse a whole trace from lines of text."""
    header, steps = iter_trace(lines, source)
    return Trace(header, tuple(steps))


def read_trace(path: str | Path) -> Trace:
    """Read a trace file; malformed input raises InputError naming file and line."""
    p = Path(path)
    try:
        with open(p, encoding="utf-8") as f:
            return parse_trace(f, str(p))
    except OSError as exc:
        raise InputError(str(p), None, f"cannot read trace: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(p), None, "not a UTF-8 text file") from None


def _lookup(data: Any, path: str) -> Any:
    for part in path.strip("/").split("/"):
        if isinstance(data, list):
            data = data[int(part)]
        else:
            data = data[part]
    return data


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
            # Only the observed field is converted, not the whole state: a real guest's
            # state is large and most steps observe one number.
            have = _plain_field(_state_field(state, path))
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


def _plain_field(value: Any) -> Any:
    """The ``State.to_dict`` form of one field."""
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, tuple):
        return [_plain_field(v) for v in value]
    fields = getattr(value, "__dataclass_fields__", None)
    if fields is not None:
        return {name: _plain_field(getattr(value, name)) for name in fields}
    return value
