"""``main()`` turns every failure into a documented exit code with one line on stderr."""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest

import ballast.cli as cli
from ballast import __version__
from ballast.cli import PLUGIN_COMMANDS, PLUGINS, build_parser, main
from ballast.errors import GuardError, InputError
from ballast.reports.counterexample import CounterexampleNotReproduced
from ballast.validate.adapters.report import DivergenceNotReproduced
from ballast.verdict import (
    EXIT_INCONCLUSIVE,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OUTPUT_CLOSED,
    EXIT_TERMINATED,
    EXIT_USAGE,
)


def _list_raising(monkeypatch: pytest.MonkeyPatch, exc: BaseException) -> None:
    def boom(args: argparse.Namespace) -> int:
        raise exc

    monkeypatch.setattr(cli, "_cmd_list", boom)


@pytest.mark.parametrize("exc, code, words", [
    (ZeroDivisionError("division by zero"), EXIT_INTERNAL, "internal error: ZeroDivisionError"),
    (RecursionError("maximum recursion depth exceeded"), EXIT_INTERNAL, "internal error"),
    (KeyError("vms"), EXIT_INTERNAL, "internal error: KeyError"),
    (InputError("t.jsonl", 3, "expected an object"), EXIT_USAGE, "t.jsonl:3: expected an object"),
    (OSError(errno.ENOSPC, "No space left on device", "out/r.md"), EXIT_USAGE,
     "out/r.md: No space left on device"),
    (MemoryError(), EXIT_INCONCLUSIVE, "ran out of memory"),
    # Ballast contradicting itself is a bug, never bad input (2) nor a verdict.
    (CounterexampleNotReproduced("the trace does not replay"), EXIT_INTERNAL,
     "internal error: CounterexampleNotReproduced: the trace does not replay"),
    (DivergenceNotReproduced("the steps before the failure do not replay"), EXIT_INTERNAL,
     "internal error: DivergenceNotReproduced"),
    (GuardError("vmm_release", "the guest has reported no page for deflation"), EXIT_INTERNAL,
     "internal error: GuardError: vmm_release: not allowed here"),
    (KeyboardInterrupt(), EXIT_INTERRUPTED, "interrupted after"),
])
def test_every_failure_has_its_exit_code_and_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        exc: BaseException, code: int, words: str) -> None:
    _list_raising(monkeypatch, exc)
    assert main(["list"]) == code
    err = capsys.readouterr().err
    assert words in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


def test_an_internal_error_says_where_and_whom_to_tell(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    _list_raising(monkeypatch, ValueError("bad\nmultiline\nmessage"))
    assert main(["list"]) == EXIT_INTERNAL
    err = capsys.readouterr().err.strip()
    assert " at cli/__init__.py:" in err  # the innermost frame of Ballast itself
    assert "bug in Ballast" in err and "issue tracker" in err
    assert "bad multiline message" in err


def test_internal_error_codes_are_never_verdicts() -> None:
    assert EXIT_INTERNAL not in (0, 1, 2, 3)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"ballast {__version__}"


def test_the_lazy_command_index_says_what_the_plugins_register() -> None:
    """--help lists plugin commands without importing them; the list must be right."""
    seen: dict[str, tuple[str, str]] = {}
    for module in PLUGINS:
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        importlib.import_module(module).register(sub)
        for action in sub._choices_actions:
            seen[action.dest] = (module, str(action.help))
    assert seen == PLUGIN_COMMANDS


def test_help_lists_every_command_in_the_same_order_lazily_or_not() -> None:
    lazy, full = build_parser(()).format_help(), build_parser().format_help()
    assert lazy == full


def test_help_and_list_do_not_load_the_heavy_libraries() -> None:
    code = ("import sys; from ballast.cli import main; main(['list']); main(['--help']) "
            "if False else None; heavy = [m for m in ('z3', 'numpy', 'networkx', 'hypothesis',"
            " 'jsonschema', 'matplotlib') if m in sys.modules]; print(heavy)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_validate_loads_no_library_it_does_not_use() -> None:
    # Judging a trace needs NumPy (reading QEMU logs) but not Hypothesis, which the live
    # tester registered beside it uses: importing it cost about a sixth of a validation.
    code = ("import sys; from ballast.cli import main\n"
            "try:\n    main(['validate', '--help'])\nexcept SystemExit:\n    pass\n"
            "print([m for m in ('z3', 'networkx', 'hypothesis', 'jsonschema', 'matplotlib')"
            " if m in sys.modules])")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_a_plugin_command_still_loads_its_plugin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--help"]) == 0
    assert "--max-gap" in capsys.readouterr().out


def _default_sigint() -> None:
    """In the child: take SIGINT's default action back. A test run started in the
    background of a shell that has no job control ignores SIGINT, its children inherit
    that, and Python then never raises KeyboardInterrupt."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _after_first_progress(proc: subprocess.Popen[str], limit_s: float = 120.0) -> str:
    """Wait until the command has written its first progress line (so it has counted work;
    the commands run with ``BALLAST_PROGRESS_SECONDS`` small), however slow the machine is;
    what it wrote on stderr so far. Past ``limit_s`` the test fails, and the command and
    its workers (its process group, where it leads one) are killed."""
    import select
    import time

    assert proc.stderr is not None
    said: list[str] = []
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stderr], [], [], 1.0)
        if ready:
            line = proc.stderr.readline()
            if not line:
                break  # it ended first
            said.append(line)
            if line.startswith("progress "):
                return "".join(said)
    if os.getpgid(proc.pid) == proc.pid:
        os.killpg(proc.pid, 9)
    else:
        proc.kill()
    proc.wait()
    pytest.fail(f"no progress line within {limit_s:g} s: {''.join(said)}")


_PROGRESS_OFTEN = {**os.environ, "BALLAST_PROGRESS_SECONDS": "0.2"}


@pytest.mark.parametrize("args, counted", [
    (["check", "--checkers", "random", "--random-runs", "100000", "--budget", "inf"],
     "random steps run"),
    (["explore", "--preset", "default", "--small"], "states explored"),
])
def test_ctrl_c_says_what_was_done_then_exits_130(tmp_path: Path, args: list[str],
                                                  counted: str) -> None:
    import signal

    proc = subprocess.Popen([sys.executable, "-m", "ballast", *args, "--report-dir",
                             str(tmp_path / "r")] if args[0] == "check" else
                            [sys.executable, "-m", "ballast", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            cwd=tmp_path, preexec_fn=_default_sigint, env=_PROGRESS_OFTEN)
    before = _after_first_progress(proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    err = before + err
    assert proc.returncode == EXIT_INTERRUPTED, err
    line = err.strip().splitlines()[-1]
    assert "interrupted after" in line and counted in line, err
    assert "Traceback" not in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("args", [
    ["explore", "--preset", "core", "--memory-budget", "1"],  # states spilled to a folder
    ["fuzz", "--preset", "core", "--seeds", "0..99", "--steps", "3000", "--workers", "2"],
    ["run", "--preset", "core", "--steps", "100000000", "--out", "t.jsonl"],  # a spool
])
def test_sigterm_cleans_up_as_ctrl_c_then_exits_143(tmp_path: Path, args: list[str]) -> None:
    """``timeout`` or ``kill``: the spill folder is removed, the pool's workers end, no
    partial trace is left, and the command says what it had done, as Ctrl-C does (by
    default SIGTERM left the folder and the workers behind)."""
    import signal
    import time

    scratch = tmp_path / "tmp"
    scratch.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "ballast", *args], cwd=tmp_path,
                            env={**_PROGRESS_OFTEN, "TMPDIR": str(scratch)}, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    before = _after_first_progress(proc)
    if "--memory-budget" in args:
        assert list(scratch.iterdir())  # the states were spilling when it was stopped
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    err = before + err
    assert proc.returncode == EXIT_TERMINATED, err
    assert "terminated (SIGTERM) after" in err.strip().splitlines()[-1], err
    if args[0] == "run":
        assert "random steps run" in err.strip().splitlines()[-1], err
    assert "Traceback" not in err
    assert not list(scratch.iterdir())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]  # no trace, no spool
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # its workers have gone with it
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.2)
    else:
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("a process of the command outlived it")


@pytest.mark.parametrize("args", [["list", "faults"], ["list", "actions"],
                                  ["explore", "--preset", "core", "--small"]])
def test_a_reader_that_goes_away_is_no_verdict(tmp_path: Path, args: list[str]) -> None:
    """``ballast ... | head -1``: the command stops when its reader has gone, with the code
    a shell gives a program SIGPIPE stopped (141), neither a verdict nor a crash, and
    nothing on stderr (rich's own handling exited 1, the code of a violation)."""
    proc = subprocess.Popen([sys.executable, "-m", "ballast", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader goes away before the first line (as head's may)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == EXIT_OUTPUT_CLOSED, err
    assert err == ""


HUGE = str(10**30)


@pytest.mark.parametrize("args, words", [
    (["fuzz", "--preset", "core", "--seeds", "0..0", "--steps", HUGE], "argument --steps"),
    (["fuzz", "--preset", "core", "--seeds", "0..0", "--max-seconds", "nan"],
     "argument --max-seconds"),
    (["fuzz", "--preset", "core", "--seeds", "0..0", "--report-dir", ""],
     "argument --report-dir: expected a path"),
    (["diff", "--adapter", "x", "--examples", HUGE], "argument --examples"),
    (["diff", "--adapter", "x", "--report-dir", ""], "argument --report-dir"),
    (["explore", "--preset", "core", "--max-states", HUGE], "argument --max-states"),
    (["explore", "--preset", "core", "--report-dir", ""], "argument --report-dir"),
    (["check", "--preset", "core", "--random-runs", HUGE], "argument --random-runs"),
    (["check", "--preset", "core", "--hypothesis-db", ""], "argument --hypothesis-db"),
    # Z3 counts rlimit in 32 bits: 2**32 + 5 would be 5 units, 2**33 no limit at all.
    (["check", "--preset", "core", "--rlimit", str(2**33)], "at most 4294967295"),
    (["prove", "--preset", "core", "--bmc-rlimit", str(2**32 + 5)], "at most 4294967295"),
    (["prove", "--preset", "core", "--bmc-depth", HUGE], "argument --bmc-depth"),
    (["prove", "--preset", "core", "--reach-states", HUGE], "argument --reach-states"),
    (["capture", "qemu", "--out", ""], "argument --out: expected a folder"),
    (["report", "t.jsonl", "--out", ""], "argument --out: expected a path"),
    (["validate", "t.jsonl", "--emit-trace", ""], "--emit-trace: expected a path"),
    (["validate", "--format", "qemu", "t.log", "--emit-trace", ""],
     "--emit-trace: expected a path"),
    (["validate", "--format", "qemu", "t.log", "--qmp", ""], "--qmp: expected a path"),
    (["prove", "--preset", "core", "--jobs", "100000"], "--jobs 100000: at most"),
    # A fault given twice, or a VM listed twice, may stand for another one mistyped.
    *[([cmd, "--preset", "default", "--fault", "vmm_accepts_flood", "--fault",
        "vmm_accepts_flood", *more], "--fault vmm_accepts_flood is given twice")
      for cmd, more in (("fuzz", ["--seeds", "0..0"]), ("explore", []), ("prove", []),
                        ("check", []), ("run", ["--out", "t.jsonl"]))],
    (["run", "--preset", "default", "--set", "hostile_vms=[1, 1]", "--out", "t.jsonl"],
     "'hostile_vms': names 1 more than once"),
])
def test_absurd_or_empty_flags_are_refused_before_any_work(tmp_path: Path, args: list[str],
                                                           words: str) -> None:
    from ..hostile_cli import assert_refused, run_cli

    o = run_cli(args, cwd=tmp_path, seconds=10)
    assert_refused(o, words=words)
    assert not list(tmp_path.iterdir())


def test_a_reader_that_goes_away_midway_through_a_large_output_is_no_verdict(
        tmp_path: Path) -> None:
    """``ballast replay T --python | head -1``: a pipe whose reader goes away in the middle
    of one large write takes part of it without an error; the command ended 0 as if it had
    said everything."""
    trace = tmp_path / "t.jsonl"
    assert subprocess.run([sys.executable, "-m", "ballast", "run", "--preset", "core",
                           "--steps", "3000", "--no-states", "--no-progress", "--out",
                           str(trace)], capture_output=True).returncode == 0
    whole = subprocess.run([sys.executable, "-m", "ballast", "replay", str(trace), "--python"],
                           capture_output=True)
    assert whole.returncode == 0 and len(whole.stdout) > 2 * 65536  # more than a pipe holds
    proc = subprocess.Popen([sys.executable, "-m", "ballast", "replay", str(trace), "--python"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.readline().startswith(b'"""')
    proc.stdout.close()  # as head -1 does, once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == EXIT_OUTPUT_CLOSED, err
    assert err == ""


def _subparsers(parser: argparse.ArgumentParser, name: str = "ballast"
                ) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every parser of the command line, subcommands of subcommands included."""
    yield name, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command, sub in action.choices.items():
                yield from _subparsers(sub, f"{name} {command}")


ARABIC_INDIC = str.maketrans("0123456789.", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666"
                                            "\u0667\u0668\u0669\u066b")
FULLWIDTH = str.maketrans("0123456789.", "\uff10\uff11\uff12\uff13\uff14\uff15\uff16\uff17"
                                         "\uff18\uff19\uff0e")


def _number_flags(types: Iterator[tuple[str, Any]]) -> dict[str, tuple[Any, str]]:
    """The flags whose type turns some plain number into an int or a float, with it."""
    found: dict[str, tuple[Any, str]] = {}
    for flag, kind in types:
        if not callable(kind) or kind in (str, Path):
            continue
        for probe in ("1", "512", "0.5"):
            try:
                value = kind(probe)
            except (argparse.ArgumentTypeError, ValueError, TypeError):
                continue
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[flag] = (kind, probe)
                break
    return found


def _refuses_other_digits(flags: dict[str, tuple[Any, str]]) -> list[str]:
    taken = []
    for flag, (kind, probe) in flags.items():
        for text in (probe.translate(ARABIC_INDIC), probe.translate(FULLWIDTH), f"+{probe}",
                     f" {probe}", probe[0] + "_" + probe[1:] if len(probe) > 1 else probe + "_"):
            try:
                kind(text)
            except (argparse.ArgumentTypeError, ValueError, TypeError):
                continue
            taken.append(f"{flag} {text!r}")
    return taken


def test_every_number_flag_takes_the_digits_0_to_9_alone() -> None:
    """int('١٢') and int('１２') are 12: a flag with ``type=int`` took them (and '+12',
    ' 12', '1_2'); every number flag goes through :mod:`ballast.argtypes`."""
    flags = _number_flags(
        (f"{name} {action.option_strings[-1] if action.option_strings else action.dest}",
         action.type)
        for name, parser in _subparsers(build_parser()) for action in parser._actions)
    for must in ("ballast fuzz --workers", "ballast fuzz --vms", "ballast check --vms",
                 "ballast validate --max-gap", "ballast capture qemu --pressure-mib",
                 "ballast capture qemu --guest-mib", "ballast fuzz --frac"):
        assert must in flags, sorted(flags)
    assert _refuses_other_digits(flags) == []


def test_every_number_option_of_the_pytest_plugin_takes_the_digits_0_to_9_alone() -> None:
    from ballast.cli.pytest_plugin import pytest_addoption

    declared: dict[str, Any] = {}

    class Group:
        def addoption(self, flag: str, **kw: Any) -> None:
            declared[flag] = kw.get("type")

    class Parser:
        def getgroup(self, *args: Any) -> Group:
            return Group()

    pytest_addoption(Parser())  # type: ignore[arg-type]
    flags = _number_flags(iter(declared.items()))
    assert {"--ballast-examples", "--ballast-steps", "--ballast-seed",
            "--ballast-timeout"} <= set(flags)
    assert _refuses_other_digits(flags) == []


@pytest.mark.parametrize("argv, says", [
    (["fuzz", "--seeds", "-1..2"], "--seeds -1..2: a seed is a whole number from 0 to "),
    (["fuzz", "--seeds=-1..2"], "--seeds -1..2: a seed is a whole number from 0 to "),
    (["fuzz", "--seeds", "-1"], "--seeds -1: a seed is a whole number from 0 to "),
    (["check", "--max-seconds", "-1e3"],
     "argument --max-seconds: expected a number of seconds greater than 0"),
    (["fuzz", "--frac", "-1.5e-1"], "argument --frac: expected a fraction in (0, 1]"),
    (["run", "--out", "t.jsonl", "--seed", "-1_000"],
     "argument --seed: expected a whole number from 0 to 9223372036854775807"),
])
def test_a_value_that_starts_with_a_minus_and_a_digit_reaches_its_flag(
        argv: list[str], says: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """argparse reads '-1..2' as an option ('expected one argument'): it is a value, refused
    by the flag's own type with what the flag expects, as '--seeds=-1..2' is."""
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--report-dir", str(tmp_path / "out")] if argv[0] != "run"
                else argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert says in err and "expected one argument" not in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())
