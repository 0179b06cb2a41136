"""The trace format: schema, round trip, clear errors naming file and line."""

import json
import os
from pathlib import Path
from typing import Callable

import jsonschema
import pytest

from ballast.errors import InputError
from ballast.model.config import preset
from ballast.model.system import BalloonModel
from ballast.model.trace import read_trace, trace_schema, write_trace
from ballast.simulation.randomwalk import random_run


def sample(tmp_path: Path) -> Path:
    run = random_run(BalloonModel(preset("default")), seed=5, steps=30)
    path = tmp_path / "t.jsonl"
    write_trace(path, run.trace)
    return path


def test_schema_is_a_valid_json_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(trace_schema())


def test_every_record_validates_against_the_schema(tmp_path: Path) -> None:
    schema = trace_schema()
    lines = sample(tmp_path).read_text().splitlines()
    header = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/header"})
    step = jsonschema.Draft202012Validator({"$defs": schema["$defs"], "$ref": "#/$defs/step"})
    header.validate(json.loads(lines[0]))
    for line in lines[1:]:
        step.validate(json.loads(line))


def test_round_trip(tmp_path: Path) -> None:
    path = sample(tmp_path)
    trace = read_trace(path)
    again = tmp_path / "again.jsonl"
    write_trace(again, trace)
    assert again.read_bytes() == path.read_bytes()


@pytest.mark.parametrize("line2, message", [
    ("{not json", "not valid JSON"),
    ('{"step": 1, "action": "host_fly", "args": {}}', "unknown action 'host_fly'"),
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "witnesses": ["nope"]}',
     "witnesses names no scenario of the model: 'nope'"),
    ('{"step": 1, "action": "host_set_target", "args": {"vm": 0}}', "takes arguments vm, pages"),
    ('{"step": 2, "action": "balloon_poll", "args": {"vm": 0}}', "expected step 1"),
    ('{"step": 1, "actor": "host", "action": "balloon_poll", "args": {"vm": 0}}',
     "performed by module"),
    ('[1, 2]', "step record"),
    # Observations and recorded states of another form than the configuration's states
    # (the default preset has 2 VMs of 4 PPNs): refused as input, not judged as a mismatch.
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "observe": '
     '{"vms/9/ballooned": []}}', "observed vms/9/ballooned is not part of the model's state"),
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "observe": '
     '{"vms/-1/target": 0}}', "indices are whole numbers from 0"),
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "observe": '
     '{"vms/\u0661/target": 0}}', "indices are whole numbers from 0"),  # Arabic-Indic 1
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "observe": '
     '{"nonsense/path": 2}}', "not part of the model's state"),
    ('{"step": 1, "action": "balloon_poll", "args": {"vm": 0}, "observe": '
     '{"vms/0/guest/frobs": 2}}', "not part of the model's state"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line2: str, message: str) -> None:
    header = sample(tmp_path).read_text().splitlines()[0]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(header + "\n" + line2 + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_trace(bad)
    assert info.value.line == 2 and info.value.file == str(bad)


def test_bad_header(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ballast_trace": 9, "config": {}}\n')
    with pytest.raises(InputError, match="unsupported trace version"):
        read_trace(bad)
    for version in ("1.0", "true", '"1"'):  # equal to 1, or like it, but not version 1
        bad.write_text(f'{{"ballast_trace": {version}, "config": {{}}}}\n')
        with pytest.raises(InputError, match="unsupported trace version"):
            read_trace(bad)
    bad.write_text("")
    with pytest.raises(InputError, match="empty trace"):
        read_trace(bad)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="cannot read trace"):
        read_trace("/nonexistent/trace.jsonl")


def test_a_recorded_map_of_another_size_is_refused(tmp_path: Path) -> None:
    """A recorded guest map with another number of entries than the guest has PPNs is not
    of the model's form (it used to be judged a differing state, exit 1)."""
    lines = sample(tmp_path).read_text().splitlines()
    step = json.loads(lines[1])
    step["state"]["vms"][0]["p2m"] = [0] * 1000
    bad = tmp_path / "bad.jsonl"
    bad.write_text(lines[0] + "\n" + json.dumps(step) + "\n")
    with pytest.raises(InputError,
                       match=r"vms/0/p2m must have one entry per PPN \(4\), got 1000"):
        read_trace(bad)


@pytest.mark.parametrize("unlogged, message", [
    (["bogus_action"], "source.unlogged_actions: unknown action 'bogus_action'"),
    ("guest_read", "source/unlogged_actions: 'guest_read' is not of type 'array'"),
])
def test_unlogged_actions_must_name_actions(tmp_path: Path, unlogged: object,
                                            message: str) -> None:
    """A misspelt unlogged action used to be accepted, and forbade the gap steps it meant
    to allow."""
    lines = sample(tmp_path).read_text().splitlines()
    header = json.loads(lines[0])
    header["source"]["unlogged_actions"] = unlogged
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_trace(bad)
    assert info.value.line == 1


def test_a_pipe_or_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    """``--out /dev/null`` or a named pipe: written into where it is. Renamed over, as files
    are for atomicity, it became a plain file (as root, /dev/null itself was replaced)."""
    import stat
    import threading

    from ballast.model.trace import atomic_write_files, is_special_file

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    atomic_write_files([(fifo, "through the pipe\n"), (tmp_path / "plain.txt", "plain\n")])
    reader.join(timeout=30)
    assert got == [b"through the pipe\n"]
    assert stat.S_ISFIFO(fifo.stat().st_mode) and is_special_file(fifo)
    assert (tmp_path / "plain.txt").read_text() == "plain\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "plain.txt"]
    if os.geteuid() == 0:  # a device node of one's own (only root may make one)
        null = tmp_path / "null"
        os.mknod(null, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        run = random_run(BalloonModel(preset("core")), seed=1, steps=3)
        write_trace(null, run.trace)
        assert stat.S_ISCHR(null.stat().st_mode)


def test_files_that_cannot_all_be_written_leave_no_folder_made_for_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ballast.model.trace as trace_module
    from ballast.errors import OutputError

    (tmp_path / "kept").mkdir()
    real = trace_module._write_temporary
    calls = []

    def disk_full_at_the_second(p: Path, text: str) -> str:
        calls.append(p)
        if len(calls) == 2:
            raise OutputError(str(p), "cannot write: No space left on device")
        return real(p, text)

    monkeypatch.setattr(trace_module, "_write_temporary", disk_full_at_the_second)
    with pytest.raises(OutputError, match="No space left"):
        trace_module.atomic_write_files([(tmp_path / "reports" / "a" / "x.md", "x"),
                                         (tmp_path / "reports" / "b" / "y.md", "y"),
                                         (tmp_path / "kept" / "z.md", "z")])
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["kept"]


def _renames_cut_at_the_second(monkeypatch: pytest.MonkeyPatch,
                               cut: Callable[[], None]) -> None:
    """``os.replace`` of a temporary file into place calls ``cut`` at the second rename."""
    import ballast.model.trace as trace_module

    real = os.replace
    calls: list[str] = []

    def replace(src: str, dst: str | Path) -> None:
        if str(src).endswith(".tmp"):
            calls.append(str(dst))
            if len(calls) == 2:
                cut()
        real(src, dst)

    monkeypatch.setattr(trace_module.os, "replace", replace)


def _three_files(tmp_path: Path) -> list[tuple[Path, str]]:
    """Two files that exist (old texts) and one that does not, with their new texts."""
    (tmp_path / "a.md").write_text("old a")
    (tmp_path / "c.md").write_text("old c")
    return [(tmp_path / "a.md", "new a"), (tmp_path / "b.md", "new b"),
            (tmp_path / "c.md", "new c")]


def _texts(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(tmp_path.iterdir())}


@pytest.mark.parametrize("cut", ["rename fails", "interrupt"])
def test_files_renamed_before_a_failed_rename_are_put_back(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cut: str) -> None:
    """All or nothing to the end: a rename that fails (or an interrupt that nothing defers,
    under Python's own Ctrl-C handler) after the first file was renamed into place puts the
    first file's old text back, and leaves no new or temporary file."""
    from ballast.errors import OutputError
    from ballast.model.trace import atomic_write_files

    def fail() -> None:
        if cut == "interrupt":
            raise KeyboardInterrupt
        raise OSError(28, "No space left on device")

    files = _three_files(tmp_path)
    _renames_cut_at_the_second(monkeypatch, fail)
    with pytest.raises(KeyboardInterrupt if cut == "interrupt" else OutputError):
        atomic_write_files(files)
    assert _texts(tmp_path) == {"a.md": "old a", "c.md": "old c"}


def test_an_interrupt_during_the_renames_lands_after_the_last(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Under the command line's handlers, Ctrl-C that arrives between two renames waits
    until every file is in place, then interrupts the command."""
    import signal
    import time

    from ballast.model.trace import atomic_write_files
    from ballast.termination import sigterm_as_interrupt

    files = _three_files(tmp_path)
    _renames_cut_at_the_second(monkeypatch, lambda: os.kill(os.getpid(), signal.SIGINT))
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    written = False
    try:
        with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
            atomic_write_files(files)
            written = True
            time.sleep(5)
    finally:
        signal.signal(signal.SIGINT, old)
    assert written
    assert _texts(tmp_path) == {"a.md": "new a", "b.md": "new b", "c.md": "new c"}


@pytest.mark.parametrize(("fault", "seed"), [(None, 5), ("reclaim_keeps_mapping", 1)])
def test_steps_spooled_as_they_come_give_the_same_file_byte_for_byte(
        tmp_path: Path, fault: str | None, seed: int) -> None:
    """`ballast run` writes its steps through a spool (a long run does not fit in memory):
    the file is the one the whole trace in memory gives, violation and all."""
    from ballast.model.trace import StepSpool

    model = BalloonModel(preset("default"), () if fault is None else (fault,))
    whole = random_run(model, seed=seed, steps=300)
    write_trace(tmp_path / "whole.jsonl", whole.trace)
    with StepSpool(tmp_path / "spooled.jsonl") as spool:
        streamed = random_run(model, seed=seed, steps=300, sink=spool.add)
        spool.write(streamed.trace.header)
    assert streamed.trace.steps == () and spool.count == streamed.taken
    assert streamed.taken == len(whole.trace.steps) == whole.taken
    assert (streamed.violation is None) == (fault is None)
    assert (tmp_path / "spooled.jsonl").read_bytes() == (tmp_path / "whole.jsonl").read_bytes()


def test_run_holds_the_same_memory_however_many_steps_it_takes(tmp_path: Path) -> None:
    """`ballast run --steps N` held every step, with its state, until the end."""
    import tracemalloc

    from ballast.cli import main

    def peak(steps: int) -> int:
        tracemalloc.start()
        try:
            assert main(["run", "--preset", "core", "--steps", str(steps), "--out",
                         str(tmp_path / f"{steps}.jsonl")]) == 0
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    short, long = peak(100), peak(1500)
    assert len(read_trace(tmp_path / "1500.jsonl").steps) == 1500
    # Holding the steps cost about 4 KB a step here; the model's caches, filled as more
    # states are seen, far less.
    assert long - short < 1_000 * 1_400, (short, long)


def test_a_header_that_names_a_fault_twice_is_refused(tmp_path: Path) -> None:
    """A seeded fault named twice may stand for another one mistyped: line 1 says so."""
    model = BalloonModel(preset("core"), ["reclaim_keeps_mapping"])
    path = tmp_path / "t.jsonl"
    write_trace(path, random_run(model, seed=1, steps=3).trace)
    lines = path.read_text().splitlines(keepends=True)
    header = json.loads(lines[0])
    header["faults"] = ["reclaim_keeps_mapping", "reclaim_keeps_mapping"]
    path.write_text(json.dumps(header) + "\n" + "".join(lines[1:]))
    with pytest.raises(InputError, match=r":1: faults names 'reclaim_keeps_mapping' twice"):
        read_trace(path)


def test_a_header_observation_of_the_initial_state_round_trips(tmp_path: Path) -> None:
    """The header may carry what an implementation observed before any step (it was
    refused as an unknown header field)."""
    lines = sample(tmp_path).read_text().splitlines()
    header = json.loads(lines[0])
    header["observe"] = {"host/free_count": 7, "vms/0/ballooned": []}
    path = tmp_path / "observed.jsonl"
    path.write_text("\n".join([json.dumps(header, separators=(",", ":"))] + lines[1:]) + "\n")
    trace = read_trace(path)
    assert trace.header.observe == {"host/free_count": 7, "vms/0/ballooned": []}
    assert trace.header.to_dict()["observe"] == trace.header.observe
    again = tmp_path / "again.jsonl"
    write_trace(again, trace)
    assert read_trace(again).header.observe == trace.header.observe
    jsonschema.validate(trace.header.to_dict(), trace_schema()["$defs"]["header"])


@pytest.mark.parametrize("observe, message", [
    ({"vms/9/ballooned": []}, "header field observe: observed vms/9/ballooned is not part of "
                              "the model's state"),
    ({"vms/-1/target": 0}, "indices are whole numbers from 0"),
    ({"host/frob_count": 1}, "observed host/frob_count is not part of the model's state"),
    ({"host/free_count": 1.5}, "observed host/free_count must be an integer"),
    ({"host/free_count": True}, "observed host/free_count must be an integer"),
    ({"vms/0/ballooned": [1, "x"]}, "observed vms/0/ballooned must hold integers"),
    ([1, 2], "header record field observe: .* is not of type 'object'"),
])
def test_a_header_observation_of_another_form_is_bad_input_on_line_1(
        tmp_path: Path, observe: object, message: str) -> None:
    lines = sample(tmp_path).read_text().splitlines()
    header = json.loads(lines[0])
    header["observe"] = observe
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    with pytest.raises(InputError, match=message) as info:
        read_trace(bad)
    assert info.value.line == 1 and info.value.file == str(bad)
