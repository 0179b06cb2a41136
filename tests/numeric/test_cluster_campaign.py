"""Campaigns on a Dask cluster: the seeds' results and counterexamples are a local run's."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from ballast.model.config import preset
from ballast.model.trace import read_trace
from ballast.numeric.campaign import run_campaign
from ballast.numeric.cluster_campaign import SeedJob, run_seed_job, trace_from_text
from ballast.numeric.runner import SeedResult, fuzz_seed, write_seed_trace
from ballast.numeric.scale import scaled, with_faults

FAULT = "reclaim_keeps_mapping"
CFG = with_faults(scaled(preset("large"), vms=4, pages=16), [FAULT], keep_sizes=True)
"""What ``ballast fuzz --vms 4 --pages 16 --fault reclaim_keeps_mapping`` runs."""


def comparable(r: SeedResult, report_dir: Path) -> dict[str, Any]:
    """A seed's result without its timing, its counterexample as the trace it holds."""
    out = {k: v for k, v in asdict(r).items() if k not in ("seconds", "counterexample")}
    out["trace"] = (read_trace(Path(r.counterexample)).steps
                    if r.counterexample is not None else None)
    out["written_under"] = (Path(r.counterexample).parent == report_dir
                            if r.counterexample is not None else None)
    return out


def test_a_worker_keeps_the_trace_a_local_run_writes(tmp_path: Path) -> None:
    local = fuzz_seed(CFG, seed=3, faults=(FAULT,), batches=40, report_dir=tmp_path / "local")
    assert local.violation is not None and local.counterexample is not None
    sent = run_seed_job(SeedJob(CFG, 3, (FAULT,), 40, 0.5, 1))
    assert sent.counterexample is None and sent.trace is not None
    assert not (tmp_path / "remote").exists()  # a worker writes nothing
    write_seed_trace(sent, trace_from_text(sent.trace, 3), tmp_path / "remote")
    sent.trace = None
    assert comparable(sent, tmp_path / "remote") == comparable(local, tmp_path / "local")
    ours = Path(sent.counterexample or "").with_suffix(".md").read_text()
    theirs = Path(local.counterexample or "").with_suffix(".md").read_text()
    assert ours.replace(str(tmp_path / "remote"), "") == theirs.replace(str(tmp_path / "local"),
                                                                        "")


@pytest.mark.slow
def test_on_a_cluster_every_seed_gives_the_local_result(tmp_path: Path) -> None:
    pytest.importorskip("distributed")
    from ballast.cluster import connected, parse_scheduler
    from ballast.numeric.cluster_campaign import run_campaign_on

    seeds = range(0, 6)
    local = sorted(run_campaign(CFG, seeds, faults=(FAULT,), batches=40,
                                report_dir=tmp_path / "local"), key=lambda r: r.seed)
    with connected(parse_scheduler("local:2")) as client:
        remote = sorted(run_campaign_on(client, CFG, seeds, faults=(FAULT,), batches=40,
                                        report_dir=tmp_path / "remote"), key=lambda r: r.seed)
    assert any(r.violation for r in local) and any(r.violation is None for r in local)
    assert ([comparable(r, tmp_path / "remote") for r in remote]
            == [comparable(r, tmp_path / "local") for r in local])
