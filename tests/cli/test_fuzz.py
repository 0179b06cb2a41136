"""``ballast fuzz``: exit codes, summary, and a failing seed reproduced alone."""

from __future__ import annotations

import argparse
import json

import pytest

from ballast.errors import UsageError
from ballast.cli.fuzz import register


def _run(argv, capsys):
    ap = argparse.ArgumentParser(prog="ballast")
    register(ap.add_subparsers())
    args = ap.parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


def test_clean_campaign_exits_0(tmp_path, capsys):
    code, out = _run(["fuzz", "--seeds", "0..2", "--workers", "2", "--steps", "200", "--json",
                      "--report-dir", str(tmp_path)], capsys)
    data = json.loads(out)
    assert code == 0 and data["summary"]["failing"] == []
    assert data["summary"]["never_fired"] == []
    assert [s["seed"] for s in data["seeds"]] == [0, 1, 2]
    # Coverage: every action drawn counted, each taken; no fault seeded, none watched.
    actions = data["summary"]["actions"]
    assert actions and all(n > 0 for n in actions.values())
    assert sum(actions.values()) == data["summary"]["ops"]
    assert data["summary"]["fault_seeds"] == {} and data["summary"]["never_deviated"] == []


def test_a_clean_campaign_says_how_often_actions_took_effect(tmp_path, capsys):
    code, out = _run(["fuzz", "--no-progress",
                      "--report-dir", str(tmp_path)], capsys)
    line = next(line for line in out.splitlines() if line.startswith("actions: "))
    assert code == 0 and "INCONCLUSIVE" not in out
    assert line.startswith("actions: 23 of 23 took effect (fewest operations: "), line


FLOOD = ["fuzz", "--fault", "vmm_accepts_flood", "--no-progress"]
"""A fault whose step differs from the model's only for a report on full queues: seed 7 of
the ``large`` preset reaches that, seeds 0-3 (the default range) never do."""


def test_a_seeded_fault_no_seed_exercised_is_inconclusive_naming_it(tmp_path, capsys):
    """Every action took effect, no property broke, but the fault's step never did
    otherwise than the model's: nothing could have caught it, so it is no pass."""
    code, out = _run(FLOOD + ["--seeds", "0..3", "--report-dir", str(tmp_path)], capsys)
    assert code == 3 and "failing seeds: none" in out, out
    said = [line for line in out.splitlines() if line.startswith("INCONCLUSIVE")]
    assert len(said) == 1, said
    assert said[0].startswith("INCONCLUSIVE: the seeded fault vmm_accepts_flood was never "
                              "exercised: in 4 seed(s) of 200 batches its rogue_report took "
                              "effect "), said
    assert said[0].endswith("never doing otherwise than the model's rogue_report, so no seed "
                            "could catch it; raise --seeds or --steps")
    assert "fault vmm_accepts_flood exercised in 0 of 4 seed(s)" in out
    code, out = _run(FLOOD + ["--seeds", "0..3", "--json", "--report-dir", str(tmp_path)],
                     capsys)
    summary = json.loads(out)["summary"]
    assert code == 3 and summary["never_deviated"] == ["vmm_accepts_flood"]
    assert summary["fault_seeds"] == {"vmm_accepts_flood": 0}
    assert summary["never_fired"] == [] and summary["actions"]["rogue_report"] > 0


def test_a_seeded_fault_enough_seeds_exercise_is_a_violation(tmp_path, capsys):
    code, out = _run(FLOOD + ["--seeds", "4..7", "--workers", "2", "--json",
                              "--report-dir", str(tmp_path)], capsys)
    data = json.loads(out)
    assert code == 1 and data["summary"]["failing"] == [7]
    assert data["summary"]["fault_seeds"]["vmm_accepts_flood"] >= 1
    assert data["summary"]["never_deviated"] == []
    seven = next(s for s in data["seeds"] if s["seed"] == 7)
    assert 0 < seven["fault_deviated"]["vmm_accepts_flood"] <= seven["batches"]


def test_a_campaign_that_never_exercised_an_action_is_inconclusive_naming_it(tmp_path, capsys):
    """A clean run of 40 batches on a small guest leaves actions that never took effect:
    nothing that follows them was checked, so it is not a pass."""
    code, out = _run(["fuzz", "--seeds", "0..2", "--vms", "8", "--pages", "32", "--steps",
                      "40", "--no-progress", "--report-dir", str(tmp_path)], capsys)
    assert code == 3 and "failing seeds: none" in out
    said = next(line for line in out.splitlines() if line.startswith("INCONCLUSIVE"))
    assert "never took effect in any seed" in said and "balloon_cpu_online" in said
    code, out = _run(["fuzz", "--seeds", "0..2", "--vms", "8", "--pages", "32", "--steps",
                      "40", "--json", "--report-dir", str(tmp_path)], capsys)
    never = json.loads(out)["summary"]["never_fired"]
    assert code == 3 and "balloon_cpu_online" in never and "guest_read" not in never


def test_failing_seed_reproduces_alone(tmp_path, capsys):
    argv = ["fuzz", "--vms", "8", "--pages", "32", "--steps", "300", "--fault",
            "free_without_scrub", "--json", "--report-dir", str(tmp_path)]
    code, out = _run(argv + ["--seeds", "0..3", "--workers", "2"], capsys)
    data = json.loads(out)
    assert code == 1 and data["summary"]["failing"]
    seed = data["summary"]["failing"][0]
    first = next(s for s in data["seeds"] if s["seed"] == seed)
    code, out = _run(argv + ["--seeds", f"{seed}..{seed}"], capsys)
    again = json.loads(out)["seeds"][0]
    assert code == 1
    assert (again["ops"], again["violation"], again["message"]) == \
        (first["ops"], first["violation"], first["message"])
    assert again["counterexample"] and again["counterexample"].endswith(".jsonl")


@pytest.mark.parametrize("argv, exc", [
    (["fuzz", "--seeds", "5..2"], UsageError),
    (["fuzz", "--vms", "4"], UsageError),
    (["fuzz", "--fault", "no_such_fault"], UsageError),
    (["fuzz", "--workers", "100000"], UsageError),
])
def test_bad_input(argv, exc, capsys, tmp_path):
    with pytest.raises(exc):
        _run(argv + ["--report-dir", str(tmp_path)], capsys)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("seeds, says", [
    ("0..9223372036854775807", "a range holds at most 1,000,000 seeds"),
    (f"0..{10**30}", "a seed is a whole number from 0 to 9223372036854775807"),
    (str(10**30), "a seed is a whole number from 0 to 9223372036854775807"),
    ("9223372036854775808", "a seed is a whole number from 0 to 9223372036854775807"),
    ("0..1000000", "a range holds at most 1,000,000 seeds, this one 1,000,001"),
    ("5..2", "the range is empty"),
    ("five", "expected A..B (inclusive) or one seed N"),
    # argparse took '-1..2' for an option: "argument --seeds: expected one argument".
    ("-1..2", "a seed is a whole number from 0 to 9223372036854775807 (2**63-1, as --seed "
              "takes), got -1"),
    ("1..-2", "a seed is a whole number from 0 to 9223372036854775807 (2**63-1, as --seed "
              "takes), got -2"),
    # int() takes other scripts' digits, blanks and underscores; a seed is written in 0-9.
    ("\u0661..\u0662", "expected A..B (inclusive) or one seed N, written with the digits 0-9"),
    ("\uff11", "expected A..B (inclusive) or one seed N, written with the digits 0-9"),
    ("1 .. 2", "expected A..B (inclusive) or one seed N, written with the digits 0-9"),
    ("1_0", "expected A..B (inclusive) or one seed N, written with the digits 0-9"),
])
def test_seeds_out_of_bounds_are_exit_2_naming_the_bound(
        seeds: str, says: str, tmp_path, capsys) -> None:
    from ballast.cli import main

    code = main(["fuzz", "--preset", "core", "--steps", "5", "-q", "--seeds", seeds,
                 "--report-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "internal error" not in err
    assert f"--seeds {seeds}: {says}" in err


def test_a_negative_seed_range_reads_the_same_with_or_without_an_equals_sign(
        tmp_path, capsys) -> None:
    from ballast.cli import main

    said = []
    for seeds in (["--seeds", "-1..2"], ["--seeds=-1..2"]):
        assert main(["fuzz", "--preset", "core", "-q", *seeds,
                     "--report-dir", str(tmp_path)]) == 2
        said.append(capsys.readouterr().err)
    assert said[0] == said[1] and "expected one argument" not in said[0]
    assert said[0].startswith("ballast: error: --seeds -1..2: a seed is a whole number from 0")


def test_the_largest_seeds_are_accepted() -> None:
    from ballast.numeric.campaign import parse_seeds

    top = 2**63 - 1
    assert parse_seeds(str(top)) == range(top, top + 1)
    assert len(parse_seeds(f"{top - 999_999}..{top}")) == 1_000_000


def test_a_wall_clock_limit_cuts_seeds_short_and_is_inconclusive(tmp_path, capsys):
    code, out = _run(["fuzz", "--seeds", "0..1", "--vms", "8", "--pages", "32", "--steps",
                      "40", "--max-seconds", "0.000001", "--no-progress",
                      "--report-dir", str(tmp_path)], capsys)
    assert code == 3
    assert "did not run all 40 batches" in out and "(--max-seconds)" in out
    code, out = _run(["fuzz", "--seeds", "0..2", "--steps", "200", "--max-seconds", "600",
                      "--json", "--report-dir", str(tmp_path)], capsys)
    assert code == 0 and json.loads(out)["summary"]["cut_short"] == []


def test_a_killed_worker_is_named_with_its_seeds_at_once(monkeypatch):
    """A worker killed from outside (as the out-of-memory killer does) loses its seeds: the
    campaign says which, at once, where a pool waited for its answer for ever."""
    import os
    import signal

    from ballast.errors import WorkerLost
    from ballast.model.config import Config
    from ballast.numeric import campaign

    real = campaign._run

    def killed_at_seed_5(job):
        if job.seed == 5:
            os.kill(os.getpid(), signal.SIGKILL)
        return real(job)

    monkeypatch.setattr(campaign, "_run", killed_at_seed_5)
    cfg = Config(vms=2, guest_pages=8, machine_pages=12)
    got = []
    with pytest.raises(WorkerLost, match=r"for seeds 4\.\.5 ended by signal 9 \(SIGKILL\)"):
        for r in campaign.run_campaign(cfg, range(16), workers=2, batches=5):  # slices of 2
            got.append(r.seed)
    # Each seed's result as it came, seed 4's among them (sent before seed 5 killed it).
    assert 4 in got and 5 not in got and set(got) <= set(range(16)) - {5}


def test_a_violation_the_model_does_not_reproduce_is_no_verdict(tmp_path, capsys, monkeypatch):
    """The reference model confirms every violation before it is reported: one it does not
    reproduce (the NumPy core and the model disagree, a bug in Ballast) writes no trace and
    is inconclusive, never a violation (exit 1)."""
    import ballast.numeric.runner as runner
    from ballast.reports.counterexample import CounterexampleNotReproduced

    def refuse(*args, **kwargs):
        raise CounterexampleNotReproduced("the model does not break it")

    monkeypatch.setattr(runner, "shrink_run", refuse)
    argv = ["fuzz", "--vms", "8", "--pages", "32", "--steps", "300", "--fault",
            "free_without_scrub", "--seeds", "0..1", "--workers", "1", "--report-dir",
            str(tmp_path)]
    code, out = _run(argv + ["--json"], capsys)
    data = json.loads(out)
    assert code == 3, out
    assert data["summary"]["failing"] == [] and data["summary"]["properties"] == []
    assert data["summary"]["unconfirmed"] == [0, 1]
    assert all(s["violation"] and s["counterexample"] is None for s in data["seeds"])
    assert not list(tmp_path.glob("*.jsonl"))
    code, out = _run(argv + ["--no-progress"], capsys)
    said = next(line for line in out.splitlines() if line.startswith("INCONCLUSIVE"))
    assert code == 3 and "does not reproduce the violation of seed(s) [0, 1]" in said


def test_a_failing_seed_is_worded_as_its_trace_replays(tmp_path, capsys):
    """Seed 1 finds the fault on VM 8 of 64; its trace is shrunk onto VM 0: the line printed
    and the JSON name what ``ballast replay`` shows of the trace (step, action and VM,
    property, the model's message), the seed's own find after it, as such."""
    from ballast.cli import main
    argv = ["fuzz", "--vms", "64", "--pages", "64", "--steps", "100", "--seeds", "1",
            "--fault", "oom_deflate_without_report", "--report-dir", str(tmp_path)]
    code, out = _run(argv + ["--no-progress"], capsys)
    assert code == 1
    [said] = [line for line in out.splitlines() if line.startswith("  seed 1: ")]
    code, data = _run(argv + ["--json"], capsys)
    [seed] = json.loads(data)["seeds"]
    path = seed["counterexample"]
    assert main(["replay", path]) == 1
    replayed = capsys.readouterr().out.splitlines()[0].split(": violation: ", 1)[1]
    # step N (action(vm=V, ...)) breaks PROPERTY: the model's message
    assert said.startswith(f"  seed 1: {seed['violation']} -- {replayed}; found by seed 1 "), \
        (said, replayed)
    assert seed["finding"].startswith(replayed + "; ")
    assert replayed == (f"step {seed['trace']['step']} ({seed['trace']['action']}) breaks "
                        f"{seed['violation']}: {seed['message']}")
    assert f"vm={seed['trace']['vm']}" in seed["trace"]["action"]
    assert seed["found"]["message"] != seed["message"]  # VM 8's, not the trace's VM 0
    assert f'"{seed["found"]["message"]}"' in said
    assert json.loads(data)["summary"]["properties"] == [seed["violation"]]
