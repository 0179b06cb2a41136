"""``ballast prove`` and the ``ballast check`` integration."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ballast.errors import UsageError
from ballast.model.config import preset
from ballast.model.faults import FAULTS
from ballast.cli.prove import register
from ballast.proofs.suite import suite_check
from ballast.verdict import Verdict


def _run(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    register(ap.add_subparsers())
    args = ap.parse_args(argv)
    return int(args.func(args))


def test_prove_core_json_all_proved(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--json", "--jobs", "1",
               "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["exit_code"] == 0
    assert out["coverage"]["actions_not_encoded"] == []
    assert out["coverage"]["invariants_not_encoded"] == []
    assert all(q["verdict"] == "proved" and q["seconds"] >= 0 for q in out["queries"])
    assert any(q["kind"] == "policy" for q in out["queries"])
    assert "bounded" in out["scope"]


def test_prove_with_a_fault_reports_a_replayed_counterexample(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--fault", "host_takes_partial_page",
               "--jobs", "1", "--report-dir", str(tmp_path)])
    text = capsys.readouterr().out
    assert rc == 1
    assert "invariant memory_conservation is not preserved by action host_take_page" in text
    assert "a real bug" in text
    assert list(tmp_path.glob("*.jsonl")) and list(tmp_path.glob("*.md"))


def test_unknown_fault_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        _run(["prove", "--preset", "core", "--fault", "no_such_fault"])


def test_tiny_resource_limit_exits_inconclusive(tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--rlimit", "1", "--jobs", "1",
               "--report-dir", str(tmp_path)])
    assert rc == 3
    out = capsys.readouterr().out
    assert "unknown" in out and "raise with --rlimit" in out


def test_wall_clock_limit_exits_inconclusive(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--max-seconds", "0.000001", "--jobs", "1",
               "--report-dir", str(tmp_path)])
    assert rc == 3
    assert "(--max-seconds)" in capsys.readouterr().out


def test_suite_check_passes_on_core_and_never_passes_on_a_fault(tmp_path: Path) -> None:
    res = suite_check(preset("core"), report_dir=tmp_path)
    assert res.checker == "prove"
    verdicts = {r.property: r.verdict for r in res.results}
    assert verdicts["memory_conservation"] is Verdict.PASS
    assert verdicts["processor_conservation"] is Verdict.SKIPPED
    fault = FAULTS["host_takes_partial_page"]
    bad = suite_check(preset("core").replace(**fault.config),
                      faults=("host_takes_partial_page",), report_dir=tmp_path)
    by = {r.property: r for r in bad.results}
    assert by["memory_conservation"].verdict is Verdict.VIOLATION
    assert by["memory_conservation"].counterexample is not None
    assert all(r.verdict is not Verdict.PASS for r in bad.results
               if r.verdict is not Verdict.SKIPPED)


def test_bmc_of_every_property_finds_a_seeded_fault(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--fault", "host_takes_single_unit", "--bmc",
               "--bmc-depth", "2", "--json", "--jobs", "1", "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 1
    bmc = {q["conjunct"]: q for q in out["queries"] if q["kind"] == "bmc"}
    assert bmc["host_pages_whole"]["verdict"] == "violated"
    assert bmc["host_pages_whole"]["counterexample"]
    assert bmc["memory_conservation"]["verdict"] == "proved"


def test_up_to_proves_every_smaller_size(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Two PPNs and two MPNs: four sizes show "every smaller size" as nine would, in half
    # the time of the core preset's three by three.
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "core"\nguest_pages = 2\nmachine_pages = 2\n')
    rc = _run(["prove", "--config", str(cfg), "--up-to", "--json", "--jobs", "1",
               "--report-dir", str(tmp_path / "r")])
    out = json.loads(capsys.readouterr().out)
    sizes = {(r["vms"], r["guest_pages"], r["machine_pages"]) for r in out["sizes"]}
    assert rc == 0 and sizes == {(1, p, m) for p in (1, 2) for m in (1, 2)}
    assert all(r["proved"] == r["queries"] for r in out["sizes"])


def test_up_to_reports_the_worst_size(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "core"\nguest_pages = 2\nmachine_pages = 2\n')
    rc = _run(["prove", "--config", str(cfg), "--fault", "reclaim_keeps_mapping", "--up-to",
               "--jobs", "1", "--report-dir", str(tmp_path / "r")])
    text = capsys.readouterr().out
    assert rc == 1 and "violated" in text and "every size up to 1 VMs x 2 PPNs" in text



def test_up_to_progress_ends_with_every_size_counted(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """A size was counted before it was proved: the last line said one fewer than all."""
    cfg = tmp_path / "c.toml"
    cfg.write_text('preset = "core"\nguest_pages = 1\nmachine_pages = 2\n')
    monkeypatch.setenv("BALLAST_PROGRESS_SECONDS", "0.000001")  # a line at every count
    assert _run(["prove", "--config", str(cfg), "--up-to", "--json", "--jobs", "1",
                 "--report-dir", str(tmp_path / "r")]) == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "sizes: " in line]
    assert lines and lines[-1].endswith("done: sizes: 2/2 configurations"), lines


def test_query_reruns_one_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rc = _run(["prove", "--preset", "core", "--query", "isolation preserved by vmm_reclaim",
               "--json", "--jobs", "1", "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [q["query"] for q in out["queries"]] == \
        ["isolation preserved by vmm_reclaim"]
    rc = _run(["prove", "--preset", "core", "--query", "bmc isolation to depth 6",
               "--bmc-depth", "1", "--json", "--jobs", "1", "--report-dir", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and [q["kind"] for q in out["queries"]] == ["bmc"]


def test_a_bad_query_name_is_a_usage_error_with_a_close_match(
        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(UsageError, match="did you mean 'isolation preserved by vmm_reclaim'"):
        _run(["prove", "--preset", "core", "--query", "isolation preservd by vmm_reclaim"])
    with pytest.raises(UsageError, match="--list-queries"):
        _run(["prove", "--preset", "core", "--query", "zzz"])
    assert _run(["prove", "--preset", "core", "--list-queries"]) == 0
    names = capsys.readouterr().out.splitlines()
    assert "Inv => isolation" in names and "init => memory_conservation" in names



def test_list_queries_with_a_query_lists_that_query_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    """--query was ignored by --list-queries: every query was listed."""
    assert _run(["prove", "--preset", "core", "--list-queries", "--query",
                 "isolation  preserved by vmm_reclaim"]) == 0
    assert capsys.readouterr().out.splitlines() == ["isolation preserved by vmm_reclaim"]
    # As the report prints it (with its depth) or as the list does: the list's name.
    assert _run(["prove", "--preset", "core", "--list-queries", "--query",
                 "bmc isolation to depth 6"]) == 0
    assert capsys.readouterr().out.splitlines() == ["bmc isolation"]
    with pytest.raises(UsageError, match="did you mean 'isolation preserved by vmm_reclaim'"):
        _run(["prove", "--preset", "core", "--list-queries", "--query",
              "isolation preservd by vmm_reclaim"])
    assert capsys.readouterr().out == ""


def test_list_queries_with_up_to_is_bad_usage() -> None:
    """--up-to was ignored by --list-queries: the queries of one size were listed."""
    with pytest.raises(UsageError, match="not with --up-to"):
        _run(["prove", "--preset", "core", "--list-queries", "--up-to"])


def test_list_queries_with_an_unknown_query_is_exit_2_in_one_line(
        capsys: pytest.CaptureFixture[str]) -> None:
    from ballast.cli import main

    assert main(["prove", "--preset", "core", "--list-queries", "--query", "zzz"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("ballast: error: no query named 'zzz'")
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_every_printed_query_name_can_be_rerun(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    from ballast.proofs.queries import query_names
    from ballast.proofs.run import prove
    cfg = preset("core")
    printed = {q.name for q in prove(cfg, jobs=1, report_dir=tmp_path).queries}
    assert printed <= set(query_names(cfg))


def test_a_reachable_violation_is_printed_as_its_trace_replays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The counterexample to induction may read a page of VM 0 into host page 1 (MPNs 2 and
    3) while the trace written reads a page into host page 0. The finding's line is the
    trace's as ``ballast replay`` prints it; the CTI's action and the model's check of it
    come after, under a line that says what they are."""
    from ballast.cli import main
    sets = [arg for key, value in (
        ("vms", 2), ("guest_pages", 2), ("guest_data_pages", 1), ("guest_disk_slots", 1),
        ("machine_pages", 4), ("host_swap_slots", 1), ("tokens", 1), ("batch", 1))
        for arg in ("--set", f"{key}={value}")]
    argv = ["prove", "--preset", "core", *sets, "--fault", "vmm_maps_foreign_host_page",
            "--jobs", "1", "--report-dir", str(tmp_path)]
    assert _run(argv) == 1
    text = capsys.readouterr().out.splitlines()
    [trace] = list(tmp_path.glob("*.jsonl"))
    assert main(["replay", str(trace)]) == 1
    replayed = capsys.readouterr().out.splitlines()[0].split(": violation: ", 1)[1]
    [i] = [i for i, line in enumerate(text) if line.startswith(replayed + "; a real bug")]
    assert text[i + 1].startswith(f"  counterexample: {trace}")
    assert text[i + 2].startswith("  the counterexample to induction it was found from")
    cti = next(line for line in text[i:] if "model's own check after the step" in line)
    assert cti.startswith("    ")  # the CTI's, under the line that says so
