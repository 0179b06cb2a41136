"""The ``ballast`` command: exit codes, determinism, clear errors, no partial reports."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ballast.cli import main


def ballast(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ballast", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_same_seed_same_trace_byte_for_byte(tmp_path: Path) -> None:
    a, b, c = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "c.jsonl"
    assert main(["run", "--seed", "7", "--steps", "60", "--out", str(a)]) == 0
    assert main(["run", "--seed", "7", "--steps", "60", "--out", str(b)]) == 0
    assert main(["run", "--seed", "8", "--steps", "60", "--out", str(c)]) == 0
    assert a.read_bytes() == b.read_bytes()
    assert a.read_bytes() != c.read_bytes()


def test_run_then_replay_is_clean(tmp_path: Path) -> None:
    t = tmp_path / "t.jsonl"
    assert main(["run", "--preset", "vmware", "--seed", "3", "--steps", "100",
                 "--out", str(t)]) == 0
    assert main(["replay", str(t)]) == 0


def test_check_with_a_seeded_fault_exits_1_with_a_replayable_counterexample(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    r = ballast("check", "--checkers", "random", "--fault", "reclaim_keeps_mapping",
                "--report-dir", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "ballooned_pages_unbacked" in r.stdout
    traces = list(out.glob("*.jsonl"))
    assert len(traces) == 1
    md = traces[0].with_suffix(".md").read_text()
    assert "ballooned_pages_unbacked" in md and "ballast replay" in md
    rr = ballast("replay", str(traces[0]))
    assert rr.returncode == 1 and "breaks ballooned_pages_unbacked" in rr.stdout


def test_check_on_the_correct_model_passes(tmp_path: Path) -> None:
    r = ballast("check", "--checkers", "random,hypothesis", "--random-runs", "60",
                "--examples", "60", "--report-dir", str(tmp_path / "r"))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Verdict: pass" in r.stdout
    assert not (tmp_path / "r").exists()


def test_a_wall_clock_limit_stop_is_inconclusive_and_says_so(tmp_path: Path) -> None:
    r = ballast("check", "--checkers", "random", "--max-seconds", "1e-9", "--report-dir",
                str(tmp_path / "r"))
    assert r.returncode == 3, r.stdout
    [line] = [x for x in r.stdout.splitlines() if x.startswith("INCONCLUSIVE")]
    # One line for every property the limit left open, naming the limit and its flag.
    assert "random: stopped after 0 steps" in line and "(--max-seconds)" in line
    assert "memory_conservation" in line and "isolation" in line


def test_a_wall_clock_limit_stops_one_long_random_run(tmp_path: Path) -> None:
    """The limit is asked before every step, not only between runs: one run of a billion
    steps stops at it (it used to run on for hours)."""
    r = subprocess.run([sys.executable, "-m", "ballast", "check", "--preset", "core",
                        "--checkers", "random", "--random-runs", "1", "--random-steps",
                        "1000000000", "--max-seconds", "2", "--report-dir", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    [line] = [x for x in r.stdout.splitlines() if x.startswith("INCONCLUSIVE")]
    assert "(0 of 1 runs)" not in line and "of 1 runs)" in line and "(--max-seconds)" in line


def test_a_wall_clock_limit_stops_the_hypothesis_search(tmp_path: Path) -> None:
    """The Hypothesis checker heeds the limit too (it ran all its examples past it, and a
    search of very many never ended): inconclusive at the limit, saying how far it got."""
    r = subprocess.run([sys.executable, "-m", "ballast", "check", "--preset", "core",
                        "--checkers", "hypothesis", "--examples", "1000000000",
                        "--max-seconds", "2", "--report-dir", str(tmp_path / "r")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    [line] = [x for x in r.stdout.splitlines() if x.startswith("INCONCLUSIVE")]
    assert "hypothesis: stopped after" in line and "of 1000000000 runs)" in line
    assert "(--max-seconds)" in line


def test_counts_and_seeds_out_of_range_are_refused(tmp_path: Path) -> None:
    for args, flag in ((["run", "--steps", "0"], "--steps"),
                       (["run", "--seed", "99999999999999999999999999"], "--seed"),
                       (["run", "--seed", "-1"], "--seed"),
                       (["prove", "--jobs", "0"], "--jobs"),
                       (["fuzz", "--workers", "0"], "--workers"),
                       (["validate", "t.jsonl", "--max-gap", "-1"], "--max-gap"),
                       (["check", "--max-seconds", "0"], "--max-seconds"),
                       (["diff", "--adapter", "x", "--timeout", "2147484"], "--timeout")):
        r = ballast(*args, cwd=tmp_path)
        assert r.returncode == 2 and f"argument {flag}: expected" in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr and not list(tmp_path.iterdir())


def test_work_budgets_must_be_positive(tmp_path: Path) -> None:
    for flag in ("--max-states", "--rlimit", "--numeric-batches", "--random-runs"):
        r = ballast("check", flag, "0", "--report-dir", str(tmp_path / "r"))
        assert r.returncode == 2 and f"argument {flag}: expected a whole number of at least 1" \
            in r.stderr, r.stderr
        assert "Traceback" not in r.stderr


def _header(tmp_path: Path) -> str:
    t = tmp_path / "ok.jsonl"
    assert main(["run", "--seed", "1", "--steps", "3", "--out", str(t)]) == 0
    return t.read_text().splitlines()[0]


@pytest.mark.parametrize("line, code, message", [
    ("{oops", 2, ":2: not valid JSON"),
    ('{"step": 1, "action": "host_teleport", "args": {}}', 2, ":2: unknown action"),
    ('{"step": 1, "action": "vmm_release", "args": {"vm": 0}}', 1,
     ":2: illegal: step 1 (vmm_release(vm=0)) is not allowed"),
])
def test_replay_errors_are_one_line(tmp_path: Path, line: str, code: int, message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_header(tmp_path) + "\n" + line + "\n")
    r = ballast("replay", str(bad))
    assert r.returncode == code
    text = (r.stdout + r.stderr).strip()
    assert message in text
    assert "Traceback" not in text and len(text.splitlines()) == 1


def test_bad_config_file_is_exit_2_without_a_report(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("vms = 0\n")
    r = ballast("check", "--config", str(cfg), "--report-dir", str(tmp_path / "r"))
    assert r.returncode == 2
    assert r.stderr.startswith("ballast: error: ") and "Traceback" not in r.stderr
    assert not (tmp_path / "r").exists()


def test_unknown_fault_and_checker_are_usage_errors(tmp_path: Path) -> None:
    assert ballast("check", "--fault", "nope").returncode == 2
    assert ballast("check", "--checkers", "magic").returncode == 2
    assert ballast("frobnicate").returncode == 2


def test_list_shows_every_invariant() -> None:
    from ballast.model import INVARIANTS

    r = ballast("list", "invariants")
    assert r.returncode == 0
    for name in INVARIANTS:
        assert name in r.stdout


def test_list_presets_names_every_feature_switched_on(
        capsys: pytest.CaptureFixture[str]) -> None:
    """The feature list is read from the configuration's own switches, so the switches
    of real drivers (``qemu``) are named too."""
    from ballast.model.config import FEATURES, PRESETS

    assert main(["list", "presets"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    for name, cfg in PRESETS.items():
        shown = lines[name].partition(" (default of ")[0].rpartition("; ")[2].split(", ")
        assert [f for f in FEATURES if f in shown] == [f for f in FEATURES if getattr(cfg, f)]
    assert "migration" in lines["qemu"] and "oom_notifier" in lines["qemu"]


def test_configuration_flags_override_the_preset(tmp_path: Path) -> None:
    import json

    t = tmp_path / "t.jsonl"
    assert main(["run", "--preset", "core", "--set", "vms=2", "--set", 'module="application"',
                 "--machine-pages", "5", "--steps", "3", "--out", str(t)]) == 0
    cfg = json.loads(t.read_text().splitlines()[0])["config"]
    assert (cfg["vms"], cfg["module"], cfg["machine_pages"]) == (2, "application", 5)
    assert main(["run", "--set", "vms=zero", "--out", str(tmp_path / "u.jsonl")]) == 2
    assert not (tmp_path / "u.jsonl").exists()


def test_replay_as_a_python_program_fails_the_same_way(tmp_path: Path) -> None:
    out = tmp_path / "reports"
    assert ballast("check", "--checkers", "random", "--fault", "share_without_cow",
                   "--report-dir", str(out)).returncode == 1
    [trace] = list(out.glob("*.jsonl"))
    program = ballast("replay", "--python", str(trace))
    assert program.returncode == 0
    script = tmp_path / "repro.py"
    script.write_text(program.stdout)
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True)
    assert run.returncode == 1
    assert "breaks no_double_mapping" in run.stderr.splitlines()[-1]


def test_hypothesis_check_same_seed_same_figures(tmp_path: Path) -> None:
    def figures(seed: int) -> dict[str, object]:
        out = tmp_path / f"run-{seed}-{len(list(tmp_path.iterdir()))}.json"
        r = ballast("check", "--preset", "core", "--checkers", "hypothesis", "--examples", "20",
                    "--hypothesis-profile", "ci", "--seed", str(seed),
                    "--report-dir", str(tmp_path / "reports"), "--json", str(out))
        assert r.returncode in (0, 3), r.stdout + r.stderr
        data = json.loads(out.read_text())
        text = json.dumps(data, sort_keys=True)
        return {"held": [line for line in text.split('"') if "Hypothesis steps" in line]}

    a, b, c = figures(4), figures(4), figures(5)
    assert a == b and a["held"]
    assert a != c


def test_an_unknown_hypothesis_profile_is_a_usage_error(tmp_path: Path) -> None:
    r = ballast("check", "--checkers", "hypothesis", "--hypothesis-profile", "fast",
                "--report-dir", str(tmp_path))
    assert r.returncode == 2
    assert "unknown Hypothesis profile 'fast'" in r.stderr and "Traceback" not in r.stderr


def test_a_seed_for_exhaustive_checkers_alone_is_refused() -> None:
    assert main(["check", "--checkers", "explore,prove", "--seed", "3"]) == 2


@pytest.mark.parametrize("observe, code, words", [
    ({"host/free_count": 3}, 0, "ok: replayed 2 steps: every property holds"),
    ({"host/free_count": 2}, 1, ":1: illegal: the initial state (before step 1): observation "
                                "differs: host/free_count is 3, observed 2"),
    ({"vms/7/target": 0}, 2, ":1: header field observe: observed vms/7/target is not part of "
                             "the model's state"),
    ({"host/free_count": 3.5}, 2, ":1: header field observe: observed host/free_count must be"),
])
def test_replay_judges_the_headers_observation_of_the_initial_state(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], observe: object, code: int,
        words: str) -> None:
    """A trace header's ``observe`` (the initial state, before step 1): a matching one
    replays clean, a differing one fails at step 0 (exit 1), one of another form is bad
    input naming line 1 (exit 2); each was refused as an unknown header field."""
    t = tmp_path / "t.jsonl"
    assert main(["run", "--preset", "core", "--seed", "3", "--steps", "2", "--out",
                 str(t)]) == 0
    lines = t.read_text().splitlines()
    header = json.loads(lines[0])
    assert header["config"]["machine_pages"] == 3
    header["observe"] = observe
    t.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    capsys.readouterr()
    assert main(["replay", str(t)]) == code
    got = capsys.readouterr()
    assert words in (got.err if code == 2 else got.out)
