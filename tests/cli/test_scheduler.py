"""``--scheduler`` of ``ballast fuzz`` and ``ballast explore``: a Dask cluster gives the local
run's results, bad input is exit 2 in one line, and no process outlives the command."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ballast.cli import main


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(("argv", "says"), [
    (["explore", "--scheduler", "somewhere"], "expected a scheduler address"),
    (["explore", "--scheduler", "local:none"], "expected local:N"),
    (["fuzz", "--scheduler", "local:0"], "at least 1"),
    (["explore", "--scheduler", "local:2", "--liveness"], "--liveness run on one machine"),
    (["explore", "--scheduler", "local:2", "--max-seconds", "5"], "--max-seconds"),
    (["fuzz", "--scheduler", "local:2", "--max-seconds", "5"], "budget is --steps"),
    (["fuzz", "--scheduler", "local:2", "--workers", "2"], "--workers is for local"),
    (["explore", "--scheduler", "tcp://127.0.0.1:99999"], "the port must be a whole number"),
    (["fuzz", "--scheduler", "tcp://127.0.0.1:0"], "from 1 to 65535"),
])
def test_bad_usage_is_exit_2_in_one_line_before_any_cluster_starts(
        argv: list[str], says: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = _run(argv + ["-q"], capsys)
    assert code == 2 and says in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.mark.slow
@pytest.mark.parametrize("command", ["explore", "fuzz"])
def test_an_address_where_no_scheduler_answers_is_exit_2(
        command: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    monkeypatch.setattr("ballast.cluster.CONNECT_SECONDS", 1)
    address = f"tcp://127.0.0.1:{_free_port()}"
    code, out, err = _run([command, "--scheduler", address, "-q", "--report-dir",
                           str(tmp_path)], capsys)
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    assert f"--scheduler {address}: no Dask scheduler answers there" in err


def _answer_http(listener: socket.socket, served: threading.Event) -> None:
    """Answer one connection as a web server does to what it cannot read, and close it."""
    conn, _ = listener.accept()
    with conn:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    served.set()


@pytest.mark.slow
@pytest.mark.parametrize("command", ["explore", "fuzz"])
def test_an_address_where_a_web_server_answers_is_exit_2(
        command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        address = f"tcp://127.0.0.1:{listener.getsockname()[1]}"
        served = threading.Event()
        server = threading.Thread(target=_answer_http, args=(listener, served), daemon=True)
        server.start()
        code, out, err = _run([command, "--scheduler", address, "--preset", "core", "-q",
                               "--report-dir", str(tmp_path)], capsys)
        server.join(timeout=10)
    assert served.is_set()
    # Not "ran out of memory" (exit 3): Dask read the reply as a frame of exabytes.
    assert code == 2 and "Traceback" not in err
    assert err.strip().splitlines() == [err.strip()]
    assert (f"--scheduler {address}: the server there is not a Dask scheduler (the "
            "handshake failed: MemoryError") in err


def _results(out: str) -> dict[str, Any]:
    data = json.loads(out)
    for key in ("seconds", "bytes_per_state", "engine", "engine_reason", "cache"):
        data["stats"].pop(key, None)
    return {"stats": data["stats"], "exit": data["exit_code"],
            "results": [(r["property"], r["verdict"], r["detail"],
                         Path(r["counterexample"]).name if r["counterexample"] else None)
                        for r in data["results"]]}


@pytest.mark.slow
def test_explore_on_a_local_cluster_gives_the_local_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    argv = ["explore", "--small", "--set", "guest_pages=1", "--set", "guest_disk_slots=0",
            "--fault", "release_keeps_balloon_set", "--json", "-q"]
    code, out, _ = _run(argv + ["--report-dir", str(tmp_path / "local")], capsys)
    code2, out2, _ = _run(argv + ["--report-dir", str(tmp_path / "cluster"),
                                  "--scheduler", "local:2"], capsys)
    assert code == code2 == 1
    assert _results(out2) == _results(out)
    assert json.loads(out2)["stats"]["engine"] == "partitioned"
    for trace in (tmp_path / "local").glob("*.jsonl"):
        assert (tmp_path / "cluster" / trace.name).read_text() == trace.read_text()


@pytest.mark.slow
def test_fuzz_on_a_local_cluster_gives_the_local_results(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("distributed")
    argv = ["fuzz", "--seeds", "0..3", "--steps", "40", "--vms", "4", "--pages", "16",
            "--fault", "reclaim_keeps_mapping", "--json", "-q"]
    code, out, _ = _run(argv + ["--report-dir", str(tmp_path / "local")], capsys)
    code2, out2, _ = _run(argv + ["--report-dir", str(tmp_path / "cluster"),
                                  "--scheduler", "local:2"], capsys)
    assert code == code2 == 1

    def same(text: str, where: Path) -> Any:
        data = json.loads(text.replace(str(where), "DIR"))
        for seed in data["seeds"]:
            seed.pop("seconds")
        data["summary"].pop("seconds")
        return data

    assert same(out2, tmp_path / "cluster") == same(out, tmp_path / "local")
    written = sorted(p.name for p in (tmp_path / "local").iterdir())
    assert written and sorted(p.name for p in (tmp_path / "cluster").iterdir()) == written
    for name in written:
        if name.endswith(".jsonl"):
            assert ((tmp_path / "cluster" / name).read_text()
                    == (tmp_path / "local" / name).read_text())


@pytest.mark.slow
def test_ctrl_c_stops_the_local_cluster_with_the_command(tmp_path: Path) -> None:
    psutil = pytest.importorskip("psutil")
    pytest.importorskip("distributed")
    # The core preset takes minutes: it is still exploring when interrupted.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ballast", "explore", "--scheduler", "local:2",
         "--report-dir", str(tmp_path)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "BALLAST_PROGRESS_SECONDS": "0.2"}, start_new_session=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # a progress line: the workers are exploring
            if line.startswith("progress"):
                break
        children = psutil.Process(proc.pid).children(recursive=True)
        assert len(children) >= 2
        os.killpg(proc.pid, signal.SIGINT)  # as Ctrl-C: to the command and its workers
        rest = proc.communicate(timeout=60)[1]
        assert proc.returncode == 130 and "interrupted" in rest and "Traceback" not in rest
        deadline = time.monotonic() + 30
        while any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children):
            assert time.monotonic() < deadline, "a worker process outlived the command"
            time.sleep(0.2)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("command", [
    ["fuzz", "--preset", "core", "--seeds", "0..3", "--steps", "10"],
    ["explore", "--preset", "core", "--small"],
])
def test_without_dask_the_scheduler_is_refused_before_anything_is_said(
        command: list[str], capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """fuzz printed the local cluster it would use, then the error."""
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    code, out, err = _run([*command, "--scheduler", "local:2"], capsys)
    assert code == 2 and out == ""
    assert err.strip().splitlines() == [
        "ballast: error: --scheduler needs Dask: pip install 'ballast[dask]' (dask and "
        "distributed)"]
