"""``ballast report``: files named after the trace, all or nothing, no external resources."""

from __future__ import annotations

import argparse
import json
import os
import re
from pathlib import Path

import pytest

from ballast.errors import InputError, UsageError
from ballast.cli.report import register
from ballast.reports.page import parse_formats, write_report


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="ballast")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(list(argv))
    return int(args.func(args))


def test_cli_writes_html_and_markdown_next_to_the_trace(reclaim_file: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli("report", str(reclaim_file)) == 0
    names = sorted(p.name for p in reclaim_file.parent.iterdir())
    assert names == ["reclaim_keeps_mapping.html", "reclaim_keeps_mapping.jsonl",
                     "reclaim_keeps_mapping.md"]
    assert "wrote" in capsys.readouterr().out


def test_cli_out_dir_formats_and_json(reclaim_file: Path, tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    assert run_cli("report", str(reclaim_file), "--out", str(out), "--format", "json",
                   "--json") == 0
    assert json.loads(capsys.readouterr().out)["written"] == [
        (out / "reclaim_keeps_mapping.json").as_posix()]
    data = json.loads((out / "reclaim_keeps_mapping.json").read_text())
    assert data["property"] == "ballooned_pages_unbacked"


def test_html_is_self_contained(reclaim_file: Path, tmp_path: Path) -> None:
    [page] = write_report(reclaim_file, tmp_path, ("html",))
    html = page.read_text(encoding="utf-8")
    assert "Content-Security-Policy" in html and "<svg" in html
    assert re.search(r'<img[^>]+src="data:image/png;base64,', html)
    # Nothing is fetched: no http(s) URL outside the SVG namespace, no src/href elsewhere.
    urls = set(re.findall(r"https?://[^\s\"'<>]+", html))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r'(src|href)="(?!data:|#)', html)
    assert "<script" not in html and "<link" not in html
    assert 'class="step failing" id="step-10"' in html
    assert "ballast replay " + str(reclaim_file) in html


def test_malformed_trace_is_an_input_error_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"ballast_trace": 1, "config": {}}\n{"step": 1, "action": "vmm_reclaim"}\n')
    out = tmp_path / "out"
    with pytest.raises(InputError) as err:
        write_report(bad, out, ("html", "md", "json"))
    assert err.value.line == 2
    assert not out.exists()
    with pytest.raises(InputError):
        write_report(tmp_path / "missing.jsonl", out)
    assert not out.exists()


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_formats("html,pdf")
    with pytest.raises(UsageError):
        parse_formats("")


def test_interrupt_while_writing_leaves_no_partial_file(reclaim_file: Path, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    write_report(reclaim_file, out, ("md",))
    before = (out / "reclaim_keeps_mapping.md").read_bytes()

    def interrupted(src: str, dst: str) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_report(reclaim_file, out, ("md", "html"))
    # The old report is intact, no new one appeared and no temporary file is left.
    assert sorted(p.name for p in out.iterdir()) == ["reclaim_keeps_mapping.md"]
    assert (out / "reclaim_keeps_mapping.md").read_bytes() == before


def test_report_never_overwrites_its_trace(tmp_path: Path, reclaim_file: Path) -> None:
    odd = tmp_path / "odd.md"
    odd.write_bytes(reclaim_file.read_bytes())
    with pytest.raises(UsageError):
        write_report(odd, tmp_path, ("md",))
    assert odd.read_bytes() == reclaim_file.read_bytes()


def test_written_reports_are_readable_by_others(reclaim_file: Path, tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        [md] = write_report(reclaim_file, tmp_path / "o", ("md",))
    finally:
        os.umask(old)
    assert md.stat().st_mode & 0o777 == 0o644


def test_a_report_written_over_keeps_its_permissions(reclaim_file: Path, tmp_path: Path) -> None:
    """A file made private stays private when written again (it used to become 0644)."""
    [md] = write_report(reclaim_file, tmp_path / "o", ("md",))
    md.chmod(0o600)
    old = os.umask(0o022)
    try:
        [again] = write_report(reclaim_file, tmp_path / "o", ("md",))
    finally:
        os.umask(old)
    assert again == md and md.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("claim, message", [
    ({"lasso_start": 999}, "expect.lasso_start must be a step number"),
    ({"lasso_start": 3, "fairness": "bogus"}, "expect.fairness must be one of"),
    ({"lasso_start": 3, "vm": 7}, "expect.vm must be a VM that follows the protocol"),
])
def test_a_liveness_claim_replay_refuses_is_refused_too(reclaim_file: Path, tmp_path: Path,
                                                         claim: dict[str, object],
                                                         message: str) -> None:
    """The report refuses the traces ``ballast replay`` refuses (it used to draw them),
    before it writes anything."""
    lines = reclaim_file.read_text().splitlines()
    header = json.loads(lines[0])
    header["expect"] = {"property": "balloon_reaches_target", **claim}
    bad = tmp_path / "lasso.jsonl"
    bad.write_text("\n".join([json.dumps(header)] + lines[1:]) + "\n")
    out = tmp_path / "out"
    with pytest.raises(InputError, match=message):
        run_cli("report", str(bad), "--out", str(out))
    assert not out.exists()
