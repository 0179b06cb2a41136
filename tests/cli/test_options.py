"""Every subcommand takes the same model options, from one place, and says what it runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from ballast.cli import build_parser, main
from ballast.model.config import preset
from ballast.cli.options import (
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
                         "help": (a.help or "").replace(f"(default: {preset_name})",
                                                        "(default: ...)")}
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
