"""Tests of ``ballast diff``: exit codes, report files, JSON output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ballast.cli import main

from .adapter_scripts import EXAMPLES, script


def test_agreeing_implementation_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                         ) -> None:
    # An implementation of the host's target alone, which it keeps exactly as the model does.
    cmd = script(tmp_path, "targets", '''
    if "reset" in msg: target = 0
    else:
        a = msg["args"]
        ok = a["vm"] == 0 and 0 <= a["pages"] <= 3 and a["pages"] != target
        if ok: target = a["pages"]
    send({"id": i, "ok": True if "reset" in msg else ok, "observe": {"vms/0/target": target}})
''', observe=["vms/*/target"])
    code = main(["diff", "--adapter", " ".join(cmd), "--preset", "core", "--examples", "20",
                 "--steps", "60", "--report-dir", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["verdict"] == "pass" and out["runs"] >= 20
    assert out["carried_out"]["host_set_target"] > 0 and out["refused"]["host_set_target"] > 0
    assert not (tmp_path / "out").exists()


def test_divergence_exits_1_and_writes_report(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    cmd = script(tmp_path, "yes", '''
    send({"id": i, "ok": True, "observe": {}})
''')
    code = main(["diff", "--adapter", " ".join(cmd), "--preset", "core", "--examples", "30",
                 "--report-dir", str(tmp_path / "out")])
    text = capsys.readouterr().out
    assert code == 1 and text.startswith("violation:")
    assert len(list((tmp_path / "out").glob("*.jsonl"))) == 1
    assert len(list((tmp_path / "out").glob("*.md"))) == 1


def test_timeout_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cmd = script(tmp_path, "slow", '''
    import time; time.sleep(30)
''')
    code = main(["diff", "--adapter", " ".join(cmd), "--timeout", "0.3", "--preset", "core",
                 "--report-dir", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and out["failure"]["kind"] == "timeout"
    assert out["failure"]["request"]["reset"] == {}


@pytest.mark.parametrize("argv", [
    ["diff", "--adapter", "x", "--examples", "0"],
    ["diff", "--adapter", "x", "--preset", "nope"],
    ["diff", "--adapter", "'unclosed"],
    ["diff"],
])
def test_bad_usage_exits_2(argv: list[str], tmp_path: Path) -> None:
    assert main(argv + ["--report-dir", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(shutil.which("node") is None, reason="the example adapters run on "
                                                         "Node.js, which is not installed")
def test_unsupported_preset_is_bad_usage(tmp_path: Path) -> None:
    cmd = f"node {EXAMPLES / 'balloon_adapter.js'}"
    assert main(["diff", "--adapter", cmd, "--preset", "default",
                 "--report-dir", str(tmp_path)]) == 2
    assert not any(tmp_path.iterdir())


def test_protocol_2_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    example = f"python3 {EXAMPLES / 'balloon_adapter.py'} --protocol 2"
    code = main(["diff", "--adapter", f"{example} --alloc highest", "--preset", "virtio",
                 "--examples", "20", "--report-dir", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["verdict"] == "pass" and out["protocol"] == 2, out["message"]
    assert out["never_happened"] == [] and out["unreached"] == [] and out["near_misses"] > 0
    code = main(["diff", "--adapter", f"{example} --bug no-scrub", "--preset", "virtio",
                 "--examples", "60", "--report-dir", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["divergence"]["diffs"][0]["key"] == "host/unscrubbed_count"
    assert Path(out["trace"]).exists()


def test_vacuous_run_exits_3(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It declares a deflate it can never be asked for: the guest has no balloon to deflate.
    cmd = script(tmp_path, "never", '''
    if "reset" in msg: target = 0
    elif msg["action"] == "host_set_target":
        a = msg["args"]
        ok = a["vm"] == 0 and 0 <= a["pages"] <= 3 and a["pages"] != target
        if ok: target = a["pages"]
    else: ok = False
    send({"id": i, "ok": True if "reset" in msg else ok, "observe": {"vms/0/target": target}})
''', actions=["host_set_target", "balloon_deflate"], observe=["vms/*/target"])
    code = main(["diff", "--adapter", " ".join(cmd), "--preset", "core", "--examples", "10",
                 "--report-dir", str(tmp_path / "out"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and out["verdict"] == "inconclusive"
    assert out["never_happened"] == ["balloon_deflate"]
    assert "never happened: balloon_deflate" in out["message"]


def test_unknown_protocol_version_exits_2(tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    cmd = script(tmp_path, "future", "    pass\n", protocol=7)
    code = main(["diff", "--adapter", " ".join(cmd), "--preset", "core", "--examples", "1",
                 "--report-dir", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and "protocol version 7" in err and "Traceback" not in err


def test_a_wrong_initial_observation_is_a_trace_that_replays_to_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A host that starts with one free machine page fewer than the model's: the divergence
    is in the initial state, so its trace has no step; the header carries the observation,
    and replay, report and validate all show it (the trace used to replay clean)."""
    cmd = script(tmp_path, "short", '''
    send({"id": i, "ok": True, "observe": {"host/free_count": 2}})
''', observe=["host/free_count"])
    out_dir = tmp_path / "out"
    code = main(["diff", "--adapter", " ".join(cmd), "--preset", "core", "--examples", "5",
                 "--report-dir", str(out_dir)])
    text = capsys.readouterr().out
    assert code == 1 and "the initial state: observations differ: host/free_count is 3 in the " \
                         "model, 2 in the implementation" in text
    [trace_path] = out_dir.glob("*.jsonl")
    header = json.loads(trace_path.read_text().splitlines()[0])
    assert header["observe"] == {"host/free_count": 2} and header["expect"]["step"] == 0
    assert len(trace_path.read_text().splitlines()) == 1  # no step
    assert main(["replay", str(trace_path)]) == 1
    replayed = capsys.readouterr().out
    assert f"{trace_path}:1: illegal: the initial state (before step 1): observation " \
           "differs: host/free_count is 3, observed 2" in replayed
    assert main(["validate", str(trace_path)]) == 1
    assert "line 1: the initial state (before step 1) is not explained by the model: " \
           "observation differs: host/free_count is 3, observed 2" in capsys.readouterr().out
    assert main(["report", str(trace_path), "--out", str(tmp_path / "html"),
                 "--format", "html,md,json"]) == 0
    capsys.readouterr()
    md = (tmp_path / "html" / f"{trace_path.stem}.md").read_text()
    assert md.startswith("# Trace rejected: the model does not explain it")
    assert "**Why** (in the initial state): " in md
    assert "first unexplained: the initial state, before step 1 (trace line 1" in md
    page = (tmp_path / "html" / f"{trace_path.stem}.html").read_text()
    assert "in the initial state" in page and "First unexplained: the initial state" in page
    report = json.loads((tmp_path / "html" / f"{trace_path.stem}.json").read_text())
    assert report["kind"] == "rejected" and report["failing_step"] == 0
    assert report["failing_line"] == 1 and report["unexplained"]["step"] == 0
