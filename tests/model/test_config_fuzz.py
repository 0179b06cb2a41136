"""Hostile configurations and flags: exit 2 (or 3 where a budget is the cause), one line.

TOML files that are not UTF-8, nested too deeply, infinite (``/dev/zero``) or declare
sizes that cannot fit; ``--set`` values of every wrong kind; NaN, infinite and negative
durations; counts of zero and empty checker lists that would "pass" having checked
nothing; unknown presets and faults; output paths that are folders or lie under a file.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ballast.errors import InputError
from ballast.model.config import MAX_MODEL_SIZE, PRESETS, load_config
from ballast.model.faults import FAULTS

from ..hostile_cli import assert_refused, fresh, run_cli

FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])

CHECK = ["check", "--checkers", "random", "--random-runs", "1"]
"""The cheapest check: each case that is wrongly accepted still ends fast."""


def _check_config(tmp: Path, data: bytes) -> None:
    cfg = tmp / "c.toml"
    cfg.write_bytes(data)
    reports = tmp / "reports"
    o = run_cli([*CHECK, "--config", str(cfg), "--report-dir", str(reports)])
    assert_refused(o, file=str(cfg))
    assert not reports.exists()


@FUZZ
@given(prefix=st.binary(max_size=20), bad=st.sampled_from([b"\xff", b"\xc3(", b"\xed\xa0\x80",
                                                          b"\xf8\x88\x80\x80\x80", b"\x80"]))
def test_toml_that_is_not_utf8_is_refused(tmp_path: Path, prefix: bytes, bad: bytes) -> None:
    tmp_path = fresh(tmp_path)
    _check_config(tmp_path, b"vms = 1\n" + prefix.replace(b"\xff", b"") + bad + b"\n")


@FUZZ
@given(depth=st.integers(500, 20_000), kind=st.sampled_from(["array", "table"]))
def test_deeply_nested_toml_is_refused(tmp_path: Path, depth: int, kind: str) -> None:
    tmp_path = fresh(tmp_path)
    value = "[" * depth + "]" * depth if kind == "array" else "{a=" * depth + "1" + "}" * depth
    _check_config(tmp_path, f"vms = {value}\n".encode())


@FUZZ
@given(key=st.sampled_from(["vms", "guest_pages", "machine_pages", "tokens", "batch",
                            "pin_limit", "kernel_reserve", "pcpus", "host_swap_slots"]),
       value=st.one_of(st.integers(MAX_MODEL_SIZE + 1, 2**63 - 1),
                       st.integers(10**30, 10**300)))
def test_sizes_that_cannot_fit_are_refused_with_the_limit(tmp_path: Path, key: str,
                                                          value: int) -> None:
    tmp_path = fresh(tmp_path)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"{key} = {value}\n")
    o = run_cli([*CHECK, "--config", str(cfg), "--report-dir", str(tmp_path / "r")])
    assert_refused(o, file=str(cfg), words=f"{MAX_MODEL_SIZE:,}")


@FUZZ
@given(key=st.sampled_from(["vms", "guest_pages", "hostile_vms", "module", "sharing",
                            "guest_policy", "preset"]),
       value=st.sampled_from(["nan", "inf", "-inf", "1e400", "[1e400]", "[nan]", "[1.5]",
                              "[[1]]", "[true]", "{a = 1}", "1979-05-27", "'x'", "true",
                              "-1", "0", "[]", "[-1]", "[99]"]))
def test_toml_values_of_the_wrong_kind_are_refused(tmp_path: Path, key: str, value: str) -> None:
    tmp_path = fresh(tmp_path)
    probe = tmp_path / "probe.toml"
    probe.write_text(f"{key} = {value}\n")
    try:
        load_config(probe)  # some pairs are fine (sharing = true): those are not this test's
    except InputError:
        pass
    else:
        assume(False)
    _check_config(tmp_path, f"{key} = {value}\n".encode())


@pytest.mark.parametrize("path", ["/dev/zero", "/dev/urandom"])
def test_an_endless_configuration_file_is_refused(tmp_path: Path, path: str) -> None:
    o = run_cli([*CHECK, "--config", path, "--report-dir", str(tmp_path / "r")])
    assert_refused(o, file=path, words="larger than")


def test_a_folder_as_configuration_is_refused(tmp_path: Path) -> None:
    o = run_cli([*CHECK, "--config", str(tmp_path), "--report-dir", str(tmp_path / "r")])
    assert_refused(o, file=str(tmp_path))


@FUZZ
@given(key=st.sampled_from(["vms", "guest_pages", "machine_pages", "batch"]),
       raw=st.one_of(st.sampled_from(["1e9", "1e400", "nan", "inf", "[", "[[[[[[", "'x'",
                                      "[1,[2]]", "1_000_000_000", "0x7fffffffffffffff"]),
                     st.integers(MAX_MODEL_SIZE + 1, 10**40).map(str),
                     st.integers(500, 5000).map(lambda n: "[" * n)))
def test_set_values_of_the_wrong_kind_or_size_are_refused(tmp_path: Path, key: str,
                                                          raw: str) -> None:
    tmp_path = fresh(tmp_path)
    o = run_cli([*CHECK, "--set", f"{key}={raw}", "--report-dir", str(tmp_path / "r")])
    assert_refused(o, file="command line")


@FUZZ
@given(flag=st.sampled_from([("check", "--budget"), ("prove", "--timeout"),
                             ("prove", "--bmc-timeout"), ("explore", "--max-seconds"),
                             ("capture qemu", "--timeout-s"), ("capture qemu", "--settle-s"),
                             ("diff", "--timeout")]),
       value=st.one_of(st.sampled_from(["nan", "NaN", "-nan", "-1", "-inf", "abc", ""]),
                       st.floats(max_value=-1e-9, allow_nan=False).map(repr)))
def test_nan_and_negative_durations_are_usage_errors(tmp_path: Path, flag: tuple[str, str],
                                                     value: str) -> None:
    tmp_path = fresh(tmp_path)
    command, name = flag
    extra = {"capture qemu": ["--out", str(tmp_path / "c")], "diff": ["--adapter", "x"]}
    o = run_cli([*command.split(), *extra.get(command, []), f"{name}={value}"])
    assert_refused(o, words=name)
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("args", [
    ["--checkers", ""], ["--checkers", ","], ["--checkers", " , ,"],
    ["--checkers", "hypothesis", "--examples", "0"],
    ["--checkers", "random", "--random-runs", "0"],
    ["--checkers", "random", "--random-runs", "-3"],
])
def test_checking_nothing_never_passes(tmp_path: Path, args: list[str]) -> None:
    o = run_cli(["check", *args, "--report-dir", str(tmp_path / "r")])
    assert o.code in (2, 3), o
    if o.code == 2:
        assert_refused(o)
    assert not (tmp_path / "r").exists()


def test_a_checker_named_twice_is_refused(tmp_path: Path) -> None:
    """It ran twice, and the verdict counted it twice."""
    o = run_cli(["check", "--checkers", "random, explore,random", "--report-dir",
                 str(tmp_path / "r")])
    assert_refused(o, words="--checkers names random more than once")
    assert not (tmp_path / "r").exists()


def test_an_infinite_budget_is_no_limit(tmp_path: Path) -> None:
    o = run_cli([*CHECK, "--budget", "inf", "--report-dir", str(tmp_path / "r")])
    assert o.code in (0, 3) and not math.isnan(o.seconds)  # ran; 3: one run is vacuous


@FUZZ
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz-_", min_size=1, max_size=12).filter(
    lambda n: n not in PRESETS))
def test_unknown_presets_are_named_with_the_valid_ones(name: str) -> None:
    o = run_cli([*CHECK, "--preset", name])
    assert_refused(o, words=", ".join(sorted(PRESETS)))


@FUZZ
@given(name=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=12).filter(
    lambda n: n not in FAULTS),
       command=st.sampled_from(["check", "run", "fuzz"]))
def test_unknown_faults_are_named_with_the_valid_ones(tmp_path: Path, name: str,
                                                      command: str) -> None:
    tmp_path = fresh(tmp_path)
    extra = {"run": ["--out", str(tmp_path / "t.jsonl")]}.get(command, [])
    o = run_cli([command, "--fault", name, *extra])
    assert_refused(o, words=sorted(FAULTS)[0])


def test_an_unknown_preset_in_a_file_names_the_file(tmp_path: Path) -> None:
    _check_config(tmp_path, b'preset = "nope"\n')


@pytest.mark.parametrize("flag", ["--json", "--junit", "--sarif", "--summary-md"])
@pytest.mark.parametrize("where", ["folder", "under a file"])
def test_output_paths_that_cannot_be_files_are_refused(tmp_path: Path, flag: str,
                                                       where: str) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    target = tmp_path if where == "folder" else blocker / "out.json"
    o = run_cli([*CHECK, flag, str(target), "--report-dir", str(tmp_path / "r")])
    assert_refused(o, file=str(target))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"], "partial output left"


def test_run_to_a_folder_is_refused(tmp_path: Path) -> None:
    o = run_cli(["run", "--steps", "2", "--out", str(tmp_path)])
    assert_refused(o, file=str(tmp_path), words="folder")
    assert list(tmp_path.iterdir()) == []


def test_numeric_campaigns_too_large_to_fit_are_refused_with_the_limit() -> None:
    o = run_cli(["fuzz", "--vms", "100000000", "--pages", "100", "--seeds", "1..1"])
    assert_refused(o, words="at most")


def test_more_workers_than_the_machine_can_run_are_refused() -> None:
    o = run_cli(["fuzz", "--workers", "100000", "--seeds", "1..1", "--vms", "2", "--pages", "4"])
    assert_refused(o, words="at most")
