"""Hostile trace files: ``replay``, ``validate`` and ``report`` refuse them with one line, exit 2.

Each class of malformed trace is generated many ways (Hypothesis); every case runs the
three commands that read traces, bounded in time and memory, and checks the refusal:
exit 2, one line on stderr naming the file and line, no traceback, no report written.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballast.model.config import MAX_MODEL_SIZE, PRESETS
from ballast.model.faults import FAULTS
from ballast.model.state import initial_state
from ballast.model.trace import MAX_DEPTH, MAX_LINE_CHARS, TraceHeader

from ..hostile_cli import Outcome, assert_refused, fresh, run_cli

CFG = PRESETS["core"]
HEADER: dict[str, Any] = TraceHeader(CFG, source={"checker": "test"}).to_dict()
STEP: dict[str, Any] = {"step": 1, "actor": "host", "action": "host_set_target",
                        "args": {"vm": 0, "pages": 1}}
INFLATE: dict[str, Any] = {"step": 2, "actor": "module", "action": "balloon_inflate",
                           "args": {"vm": 0, "ppns": [0]}}

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _dump(record: Any) -> str:
    return json.dumps(record, separators=(",", ":"))


def _readers(tmp: Path, text: str | bytes) -> list[tuple[str, Outcome]]:
    """Run replay, validate and report on a trace file holding ``text``."""
    trace = tmp / "hostile.jsonl"
    if isinstance(text, bytes):
        trace.write_bytes(text)
    else:
        trace.write_text(text, encoding="utf-8", errors="surrogatepass")
    out_dir = tmp / "report-out"
    results = [("replay", run_cli(["replay", str(trace)])),
               ("validate", run_cli(["validate", "--no-progress", str(trace)])),
               ("report", run_cli(["report", str(trace), "--out", str(out_dir)]))]
    return results


def _all_refused(tmp: Path, text: str | bytes, line: int | None, words: str | None = None,
                 ) -> None:
    trace = str(tmp / "hostile.jsonl")
    for command, outcome in _readers(tmp, text):
        assert_refused(outcome, file=trace, line=line, words=words)
    out_dir = tmp / "report-out"
    assert not out_dir.exists() or not any(out_dir.iterdir()), "report left files behind"


def _lines(*records: Any) -> str:
    return "".join((r if isinstance(r, str) else _dump(r)) + "\n" for r in records)


# ---------------------------------------------------------------------- strategies

def _nest(depth: int, kind: str, inner: str = "0") -> str:
    if kind == "list":
        return "[" * depth + inner + "]" * depth
    return '{"a":' * depth + inner + "}" * depth


deep_values = st.builds(_nest, st.integers(MAX_DEPTH + 1, 20_000),
                        st.sampled_from(["list", "dict"]))
big_digits = st.integers(21, 6_000).map(lambda n: "9" * n)
bad_numbers = st.sampled_from(["NaN", "Infinity", "-Infinity", "1e400", "-1e999"])
surrogates = st.integers(0xD800, 0xDFFF).map(lambda c: f'"x\\u{c:04x}y"')
size_keys = st.sampled_from(["vms", "guest_pages", "machine_pages", "guest_data_pages",
                             "guest_disk_slots", "host_swap_slots", "tokens", "batch", "pcpus"])
not_an_int = st.one_of(st.text(max_size=5), st.none(), st.booleans(),
                       st.floats(allow_nan=False, allow_infinity=False),
                       st.lists(st.integers(0, 3), max_size=3),
                       st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))


# ---------------------------------------------------------------------- classes

@FUZZ
@given(value=deep_values, where=st.sampled_from(["line", "arg", "header"]))
def test_deep_nesting_is_refused(tmp_path: Path, value: str, where: str) -> None:
    tmp_path = fresh(tmp_path)
    if where == "line":
        text, line = _lines(HEADER, value), 2
    elif where == "arg":
        text, line = _lines(HEADER, _dump(STEP).replace('"pages":1', f'"pages":{value}')), 2
    else:
        text, line = _lines(_dump(HEADER)[:-1] + f',"comment":{value}}}'), 1
    _all_refused(tmp_path, text, line)


@FUZZ
@given(digits=big_digits, where=st.sampled_from(["arg", "step", "config", "hostile"]))
def test_integers_beyond_64_bits_are_refused(tmp_path: Path, digits: str, where: str) -> None:
    tmp_path = fresh(tmp_path)
    if where == "arg":
        text, line = _lines(HEADER, _dump(STEP).replace('"pages":1', f'"pages":{digits}')), 2
    elif where == "step":
        text, line = _lines(HEADER, _dump(STEP).replace('"step":1', f'"step":{digits}')), 2
    elif where == "config":
        text, line = _lines(_dump(HEADER).replace('"vms":1', f'"vms":{digits}'), STEP), 1
    else:
        text, line = _lines(_dump(HEADER).replace('"hostile_vms":[]',
                                                  f'"hostile_vms":[{digits}]'), STEP), 1
    _all_refused(tmp_path, text, line)


@FUZZ
@given(number=bad_numbers, where=st.sampled_from(["arg", "t", "config", "hostile"]))
def test_nan_and_infinities_are_refused(tmp_path: Path, number: str, where: str) -> None:
    tmp_path = fresh(tmp_path)
    if where == "arg":
        text, line = _lines(HEADER, _dump(STEP).replace('"pages":1', f'"pages":{number}')), 2
    elif where == "t":
        text, line = _lines(HEADER, _dump(STEP)[:-1] + f',"t":{number}}}'), 2
    elif where == "config":
        text, line = _lines(_dump(HEADER).replace('"batch":1', f'"batch":{number}'), STEP), 1
    else:
        text, line = _lines(_dump(HEADER).replace('"hostile_vms":[]',
                                                  f'"hostile_vms":[{number}]'), STEP), 1
    _all_refused(tmp_path, text, line)


@FUZZ
@given(key=size_keys, value=st.integers(MAX_MODEL_SIZE + 1, 10**19 - 1))
def test_a_configuration_too_large_to_hold_is_refused_with_the_limit(
        tmp_path: Path, key: str, value: int) -> None:
    tmp_path = fresh(tmp_path)
    header = {**HEADER, "config": {**HEADER["config"], key: value}}
    _all_refused(tmp_path, _lines(header, STEP), 1, words=f"{MAX_MODEL_SIZE:,}")


@FUZZ
@given(vms=st.integers(2, 2000), pages=st.integers(2100, 4_000_000))
def test_sizes_that_multiply_past_the_limit_are_refused(tmp_path: Path, vms: int,
                                                        pages: int) -> None:
    tmp_path = fresh(tmp_path)
    if vms * pages <= MAX_MODEL_SIZE:
        pages = MAX_MODEL_SIZE // vms + 1
    header = {**HEADER, "config": {**HEADER["config"], "vms": vms, "guest_pages": pages,
                                   "machine_pages": pages}}
    _all_refused(tmp_path, _lines(header, STEP), 1, words="too large")


@FUZZ
@given(text=surrogates, where=st.sampled_from(["comment", "key", "action"]))
def test_lone_surrogates_are_refused(tmp_path: Path, text: str, where: str) -> None:
    tmp_path = fresh(tmp_path)
    if where == "comment":
        lines, line = _lines(_dump(HEADER)[:-1] + f',"comment":{text}}}', STEP), 1
    elif where == "key":
        lines, line = _lines(HEADER, _dump(STEP)[:-1] + f',{text}:1}}'), 2
    else:
        lines, line = _lines(HEADER, _dump(STEP).replace('"host_set_target"', text)), 2
    _all_refused(tmp_path, lines, line)


@FUZZ
@given(separator=st.sampled_from(["\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1e"]),
       text=st.text(alphabet="ab c", max_size=5))
def test_unicode_line_separators_inside_strings_are_text(tmp_path: Path, separator: str,
                                                         text: str) -> None:
    """A valid JSON Lines file: every reader takes it (lines end at newlines only)."""
    tmp_path = fresh(tmp_path)
    header = {**HEADER, "comment": f"{text}{separator}{text}"}
    raw = json.dumps(header, ensure_ascii=False, separators=(",", ":"))
    for command, outcome in _readers(tmp_path, raw + "\n" + _dump(STEP) + "\n"):
        assert outcome.code == 0, (command, outcome)


@FUZZ
@given(ppns=st.one_of(
    st.lists(st.lists(st.integers(0, 3), max_size=2), min_size=1, max_size=3),
    st.lists(st.one_of(st.text(max_size=2), st.none(), st.booleans(), st.floats(0, 3)),
             min_size=1, max_size=3),
    st.integers(0, 3), st.text(max_size=3)))
def test_page_lists_must_be_lists_of_integers(tmp_path: Path, ppns: Any) -> None:
    tmp_path = fresh(tmp_path)
    step = {**INFLATE, "step": 1, "args": {"vm": 0, "ppns": ppns}}
    _all_refused(tmp_path, _lines(HEADER, step), 2, words="ppns")


@FUZZ
@given(vm=not_an_int)
def test_scalar_arguments_must_be_integers(tmp_path: Path, vm: Any) -> None:
    tmp_path = fresh(tmp_path)
    step = {**STEP, "args": {"vm": vm, "pages": 1}}
    _all_refused(tmp_path, _lines(HEADER, step), 2)


def _state_paths(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _state_paths(v, path + (k,))]
    if isinstance(value, list):
        return [path + (0,)] if value else [path]
    return [path]


STATE = initial_state(CFG).to_dict()
STATE_PATHS = _state_paths(STATE)


def _mutated(path: tuple[Any, ...], junk: Any) -> dict[str, Any]:
    state = json.loads(json.dumps(STATE))
    target = state
    for key in path[:-1]:
        target = target[key]
    last = path[-1]
    if isinstance(target, list) and not target:
        target.append(junk)
    else:
        target[last] = junk
    return state  # type: ignore[no-any-return]


mixed_junk = st.one_of(st.text(max_size=3), st.none(), st.booleans(),
                       st.floats(allow_nan=False, allow_infinity=False),
                       st.lists(st.one_of(st.integers(0, 2), st.text(max_size=1), st.none()),
                                min_size=2, max_size=4).filter(
                           lambda xs: len({type(x) for x in xs}) > 1),
                       st.dictionaries(st.text(max_size=2), st.integers(), max_size=2))


@FUZZ
@given(path=st.sampled_from(STATE_PATHS), junk=mixed_junk)
def test_recorded_states_of_the_wrong_form_are_refused(tmp_path: Path, path: tuple[Any, ...],
                                                       junk: Any) -> None:
    tmp_path = fresh(tmp_path)
    step = {**STEP, "state": _mutated(path, junk)}
    _all_refused(tmp_path, _lines(HEADER, step), 2, words="state")


@FUZZ
@given(path=st.sampled_from(STATE_PATHS), junk=mixed_junk)
def test_an_initial_state_of_the_wrong_form_is_refused(tmp_path: Path, path: tuple[Any, ...],
                                                       junk: Any) -> None:
    tmp_path = fresh(tmp_path)
    header = {**HEADER, "initial": _mutated(path, junk)}
    _all_refused(tmp_path, _lines(header, STEP), 1, words="initial")


@FUZZ
@given(extra=st.dictionaries(st.sampled_from(["host", "vms", "x"]),
                             st.one_of(st.integers(), st.lists(st.integers(), max_size=2)),
                             max_size=3))
def test_an_initial_state_missing_its_parts_is_refused(tmp_path: Path,
                                                       extra: dict[str, Any]) -> None:
    tmp_path = fresh(tmp_path)
    _all_refused(tmp_path, _lines({**HEADER, "initial": extra}, STEP), 1, words="initial")


def test_an_initial_state_with_out_of_range_pages_is_refused(tmp_path: Path) -> None:
    state = json.loads(json.dumps(STATE))
    state["vms"][0]["p2m"][0] = 10**6  # an MPN the host does not have
    state["host"]["free"] = []
    o = _readers(tmp_path, _lines({**HEADER, "initial": state}, STEP))
    for command, outcome in o:
        # Either refused as not a state of the configuration, or replayed and found to
        # break memory conservation: never a crash, never a pass. (A report explains any
        # trace it can read, a violation included.)
        assert outcome.code in ((0, 2) if command == "report" else (1, 2)), (command, outcome)
        assert "Traceback" not in outcome.err


@FUZZ
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=20).filter(
    lambda n: n not in FAULTS))
def test_unknown_faults_are_named_with_the_valid_ones(tmp_path: Path, name: str) -> None:
    tmp_path = fresh(tmp_path)
    _all_refused(tmp_path, _lines({**HEADER, "faults": [name]}, STEP), 1,
                 words=sorted(FAULTS)[0])


@pytest.mark.parametrize("tail", ["", "\n"])
def test_a_line_without_end_is_refused_without_reading_it_all(tmp_path: Path, tail: str) -> None:
    text = _lines(HEADER) + '{"step":1,"comment":"' + "x" * (MAX_LINE_CHARS + 10) + tail
    _all_refused(tmp_path, text, 2, words="longer than")


@pytest.mark.parametrize("data", [b"\xff\xfe{}\n", _lines(HEADER).encode() + b'{"a":"\xc3"}\n'])
def test_invalid_utf8_is_refused(tmp_path: Path, data: bytes) -> None:
    _all_refused(tmp_path, data, None, words="UTF-8")


@pytest.mark.parametrize("number", ["1.0", "1e0", "true"])
def test_a_step_number_that_is_not_a_whole_number_is_refused(tmp_path: Path,
                                                             number: str) -> None:
    # 1.0 equals 1: it was taken, and the report then indexed its steps with it (exit 4).
    step = _dump(STEP).replace('"step":1', f'"step":{number}')
    _all_refused(tmp_path, _lines(HEADER, step), 2, words="step")


def test_a_named_pipe_no_program_writes_to_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a named pipe waits for a writer: the readers waited for ever."""
    import os

    fifo = tmp_path / "hostile.jsonl"
    os.mkfifo(fifo)
    out_dir = tmp_path / "report-out"
    for argv in (["replay", str(fifo)], ["validate", "--no-progress", str(fifo)],
                 ["report", str(fifo), "--out", str(out_dir)]):
        assert_refused(run_cli(argv, seconds=10), file=str(fifo), line=1, words="empty trace")
    assert not out_dir.exists()


def test_a_trace_handed_over_through_a_pipe_is_read_once_by_every_reader(
        tmp_path: Path) -> None:
    """``ballast report <(xz -dc t.jsonl.xz)``: a pipe can be read only once, and report
    read its trace twice (the second read found it empty)."""
    import os

    good = tmp_path / "good.jsonl"
    assert run_cli(["run", "--preset", "core", "--steps", "4", "--out", str(good)]).code == 0
    text = good.read_bytes()
    out_dir = tmp_path / "report-out"
    for argv in (["replay"], ["validate", "--no-progress"], ["report", "--out", str(out_dir)]):
        read_end, write_end = os.pipe()
        try:
            assert len(text) < 60_000  # within a pipe's buffer: written before it is read
            os.write(write_end, text)
            os.close(write_end)
            o = run_cli([argv[0], f"/dev/fd/{read_end}", *argv[1:]], seconds=30)
            assert o.code == 0, (argv[0], o.err)
        finally:
            os.close(read_end)
    assert sorted(p.suffix for p in out_dir.iterdir()) == [".html", ".md"]
    # Without --out the reports have no folder beside a pipe (/dev/fd): it is asked for.
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, text)
        os.close(write_end)
        o = run_cli(["report", f"/dev/fd/{read_end}"], seconds=30)
        assert o.code == 2 and "give --out FOLDER" in o.err and "Traceback" not in o.err, o.err
    finally:
        os.close(read_end)
