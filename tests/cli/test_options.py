"""Every subcommand takes the same model options, from one place, and says what it runs."""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from ballast.cli import build_parser, main
from ballast.model.config import PRESETS, preset
from ballast.model.faults import FAULTS
from ballast.cli.options import (
    DEFAULT_PRESETS,
    MODEL_OPTIONS,
    add_model_options,
    add_pytest_options,
    config_from_args,
)
from ballast.statespace.configs import small_config

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "balloon_adapter.py"

COMMANDS = ("check", "run", "replay", "explore", "prove", "fuzz", "validate", "diff")
"""Every subcommand that runs the model."""


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _model_actions(p: argparse.ArgumentParser) -> dict[str, dict[str, Any]]:
    """The model options of one subcommand as data, the default preset's name blanked."""
    preset_name = p.get_default("default_preset")
    out = {}
    for a in p._actions:
        flag = next((s for s in a.option_strings if s.startswith("--")), None)
        if flag in {o.flag for o in MODEL_OPTIONS}:
            out[flag] = {"dest": a.dest, "default": a.default, "metavar": a.metavar,
                         "append": isinstance(a, argparse._AppendAction),
                         "help": re.sub(rf"\(default: {preset_name}[^)]*\)", "(default: ...)",
                                        a.help or "")}
    return out


def test_every_subcommand_takes_the_same_model_options() -> None:
    subs = _subparsers(build_parser())
    reference = _model_actions(subs["check"])
    assert set(reference) == {"--preset", "--config", "--set", "--fault"}
    for name in COMMANDS:
        got = _model_actions(subs[name])
        for flag, want in reference.items():
            if flag == "--preset" and name in ("replay", "validate"):
                # A trace brings its own configuration: the help says so instead.
                assert "the trace's own" in got[flag]["help"], name
                got[flag] = {**got[flag], "help": want["help"]}
            assert got.get(flag) == want, (name, flag)


def test_the_pytest_plugin_declares_the_same_options() -> None:
    declared: dict[str, dict[str, Any]] = {}

    class Group:
        def addoption(self, flag: str, **kw: Any) -> None:
            declared[flag] = kw

    add_pytest_options(Group(), default_preset="virtio")
    parser = argparse.ArgumentParser()
    add_model_options(parser, default_preset="virtio")
    for opt in MODEL_OPTIONS:
        kw = declared[f"--ballast-{opt.flag[2:]}"]
        action = next(a for a in parser._actions if opt.flag in a.option_strings)
        assert (kw["help"], kw["default"], kw["metavar"]) == \
            (action.help, action.default, action.metavar), opt.flag


def test_each_command_names_its_default_preset_and_why() -> None:
    subs = _subparsers(build_parser())
    for command, (name, why) in DEFAULT_PRESETS.items():
        assert name in PRESETS, command
        p = subs[command]
        assert p.get_default("default_preset") == name, command
        [action] = [a for a in p._actions if "--preset" in a.option_strings]
        assert f"(default: {name}: {why})" in (action.help or ""), command


def test_list_presets_says_which_command_starts_from_which(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "presets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for command, (name, _) in DEFAULT_PRESETS.items():
        assert command in lines[name].partition("(default of ")[2], (command, name)
    assert "default of" not in lines["vmware"]


def _needs_met(cfg: Any, fault: str) -> bool:
    # A fault that needs a hostile guest is served by any hostile VM the configuration has.
    return all(getattr(cfg, k) >= v if type(v) is int else
               bool(cfg.hostile_vms) if k == "hostile_vms" else getattr(cfg, k) == v
               for k, v in FAULTS[fault].config.items())


@pytest.mark.parametrize("command", sorted(DEFAULT_PRESETS))
def test_every_fault_runs_on_each_commands_default_preset(command: str) -> None:
    from ballast.cli.fuzz import config_for

    parser = build_parser()
    for fault in FAULTS:
        args = parser.parse_args([command, "--fault", fault]
                                 + (["--out", "x.jsonl"] if command == "run" else [])
                                 + (["--adapter", "true"] if command == "diff" else []))
        cfg = config_for(args) if command == "fuzz" else config_from_args(args)
        assert _needs_met(cfg, fault), (command, fault, cfg)
        base = preset(DEFAULT_PRESETS[command][0])
        assert cfg.vms >= base.vms, (command, fault)
        assert cfg.hostile_vms == base.hostile_vms or not base.hostile_vms, (command, fault)


def test_fuzz_with_a_fault_that_needs_two_vms_keeps_the_large_presets_hostile_vm(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["fuzz", "--fault", "free_without_scrub", "--seeds", "0", "--steps", "3",
                 "--report-dir", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert code in (0, 1, 3), err  # 3: three batches leave actions unexercised
    [line] = _config_lines(out)
    assert line.startswith("configuration: preset large: 8 VMs x 64 PPNs") and "hostile [7]" in line


def _args(*argv: str, default_preset: str = "core") -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_model_options(p, default_preset=default_preset)
    return p.parse_args(list(argv))


def test_small_shrinks_what_the_user_did_not_set() -> None:
    assert config_from_args(_args(), shrink=small_config) == small_config(preset("core"))
    cfg = config_from_args(_args("--set", "guest_pages=3", "--set", "guest_disk_slots=0"),
                           shrink=small_config)
    assert (cfg.guest_pages, cfg.guest_disk_slots) == (3, 0)
    assert cfg.machine_pages == small_config(preset("core")).machine_pages


def test_what_a_seeded_fault_needs_wins_over_set_with_and_without_small() -> None:
    args = _args("--set", "sharing=false", "--fault", "share_without_cow")
    assert config_from_args(args).sharing
    assert config_from_args(args, shrink=small_config).sharing


def _config_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("configuration: ")]


def test_explore_small_and_set_agree(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    main(["explore", "--preset", "core", "--small", "--set", "guest_pages=3",
          "--max-states", "20", "--report-dir", str(tmp_path)])
    [line] = _config_lines(capsys.readouterr().out)
    assert line.startswith("configuration: preset core, --small, --set guest_pages=3: ")
    assert " x 3 PPNs" in line


def test_each_command_prints_the_configuration_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.jsonl"
    out = ["--report-dir", str(tmp_path / "out")]
    runs = {
        "run": ["run", "--preset", "core", "--steps", "5", "--out", str(trace)],
        "check": ["check", "--preset", "core", "--checkers", "random", "--random-runs", "1",
                  "--random-steps", "5", *out],
        "replay": ["replay", str(trace), "--set", "guest_pages=3"],
        "validate": ["validate", str(trace), "--no-progress"],
        "prove": ["prove", "--preset", "core", "--query", "init => wf_ranges", "--jobs", "1",
                  *out],
        "explore": ["explore", "--preset", "core", "--max-states", "20", *out],
        "fuzz": ["fuzz", "--preset", "core", "--seeds", "0", "--steps", "2", "--no-progress",
                 *out],
        "diff": ["diff", "--adapter", f"{sys.executable} {EXAMPLE}", "--examples", "1",
                 "--steps", "5", *out],
    }
    for name, argv in runs.items():
        code = main(argv)
        text = capsys.readouterr().out
        assert code in (0, 1, 3), (name, text)
        lines = _config_lines(text)
        assert len(lines) == 1, (name, text)
        assert "faults: none" in lines[0], name
    data = json.loads(trace.read_text().splitlines()[0])
    assert data["config"]["guest_pages"] == preset("core").guest_pages


@pytest.mark.parametrize("command", ["check", "run", "explore", "prove"])
def test_an_empty_preset_name_is_refused(command: str, capsys: pytest.CaptureFixture[str],
                                          tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                          ) -> None:
    """``--preset ""`` used to run the command's default preset as if none were given."""
    monkeypatch.chdir(tmp_path)
    assert main([command, "--preset", ""] + (["--out", "t.jsonl"] if command == "run" else [])
                ) == 2
    assert "--preset needs a name, got an empty one" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("command", ["validate", "replay"])
@pytest.mark.parametrize("setting, says", [
    ("guest_pages=3", "vms/0/p2m must have one entry per PPN (3), got 4"),
    ("machine_pages=7", "host/content must have one entry per MPN (7), got 6"),
])
def test_a_trace_whose_states_do_not_fit_the_configuration_set_is_bad_input(
        command: str, setting: str, says: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    trace = tmp_path / "t.jsonl"
    assert main(["run", "--preset", "core", "--set", "guest_pages=4", "--set", "machine_pages=6",
                 "--steps", "5", "--out", str(trace)]) == 0
    capsys.readouterr()
    # Judged as a trace of another configuration its recorded states were not a mismatch of
    # the model's (exit 1): the trace does not fit what it is said to be.
    assert main([command, str(trace), "--set", setting]) == 2
    err = capsys.readouterr().err
    assert f"{trace}:2: step field state: {says}" in err
    assert main([command, str(trace), "--set", "sharing=false"]) in (0, 1)


def test_a_configuration_that_is_a_named_pipe_is_refused_at_once(tmp_path: Path) -> None:
    """Opening a named pipe waits for a program to write to it: with none, for ever."""
    import os

    from ..hostile_cli import assert_refused, run_cli

    fifo = tmp_path / "c.toml"
    os.mkfifo(fifo)
    o = run_cli(["run", "--config", str(fifo), "--steps", "2", "--out",
                 str(tmp_path / "t.jsonl")], seconds=10)
    assert_refused(o, file=str(fifo), words="is a pipe no program writes to")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.toml"]


def test_a_configuration_a_program_writes_into_a_pipe_is_read() -> None:
    """``--config <(generate-config)``: the shell hands over a pipe with its writer."""
    import os

    from ballast.model.config import load_config

    read_end, write_end = os.pipe()
    try:
        os.write(write_end, b'preset = "core"\nmachine_pages = 5\n')
        os.close(write_end)
        assert load_config(f"/dev/fd/{read_end}").machine_pages == 5
    finally:
        os.close(read_end)
