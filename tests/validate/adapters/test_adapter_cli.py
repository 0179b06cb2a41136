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
