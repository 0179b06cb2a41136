"""The "adding an action" walkthrough, performed for real on a copy of the source tree.

``docs/adding-an-action.md`` names the files an action, its property and a seeded fault
are added in. This test copies the sources to a temporary folder, adds free page reporting
there (the action ``balloon_report_free``, the property
``reporting_discards_only_free_pages``, the fault ``reporting_discards_neighbour``) by
editing exactly the files the document names, at most six, installs nothing (the
package's folders are laid out as the ``ballast`` namespace by symbolic links, read from
``pyproject.toml``) and runs the command line there: every checker picks the action up or
names the gap. It runs in about ten seconds of CPU time: every check uses a small
configuration and small budgets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKLIST = ROOT / "docs" / "adding-an-action.md"
MAX_FILES = 6

ACTION = "balloon_report_free"
PROPERTY = "reporting_discards_only_free_pages"
FAULT = "reporting_discards_neighbour"
SWITCH = "page_reporting"


@dataclass(frozen=True)
class Edit:
    """One edit of one file: ``text`` put right after the first ``anchor`` (or, with
    ``before``, right before it); an empty anchor appends to the file."""

    path: str
    text: str
    anchor: str = ""
    before: bool = False


EDITS = [
    Edit("model/config.py", anchor="    def __post_init__(self) -> None:", before=True, text='''\
    page_reporting: bool = False
    """virtio FREE_PAGE_REPORTING: the module reports pages on the guest's free list and the
    VMM discards the machine pages behind them."""

'''),
    Edit("model/actions.py", text='''

# --------------------------------------------------------------------------
# Free page reporting


def _free_backed(cfg: Config, s: State, vm: int) -> Iterator[dict[str, Any]]:
    v = s.vms[vm]
    for ppn, use in enumerate(v.guest.ppn_use):
        if use == FREE and v.p2m[ppn] != UNBACKED:
            yield {"vm": vm, "ppn": ppn}


@action(Actor.MODULE, vm_candidates=_free_backed, feature=lambda c: c.page_reporting)
def balloon_report_free(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Free page reporting: the module reports a page on the guest's free list and the VMM
    discards the machine page behind it (zeroed, back to the free pool); the page stays
    free and is backed again when the guest touches it."""
    v = s.vms[vm]
    require(isinstance(ppn, int) and 0 <= ppn < cfg.guest_pages, "balloon_report_free",
            f"no PPN {ppn}")
    require(v.guest.ppn_use[ppn] == FREE, "balloon_report_free",
            "the guest does not have this page free")
    require(v.p2m[ppn] != UNBACKED, "balloon_report_free", "no machine page backs this page")
    return unback(s, vm, ppn, by_balloon=False)
'''),
    Edit("model/invariants.py", anchor="\nfrom ballast.model.state import ", text="FREE, "),
    Edit("model/invariants.py", text='''

def _reported_free_step(cfg: Config, pre: State, act: Action, post: State) -> str | None:
    if act.name != "balloon_report_free":
        return None
    vm = act.kwargs["vm"]
    assert isinstance(vm, int)
    a, b = pre.vms[vm], post.vms[vm]
    for ppn, (before, after) in enumerate(zip(a.p2m, b.p2m)):
        if before != UNBACKED and after == UNBACKED and a.guest.ppn_use[ppn] != FREE:
            return (f"VM {vm}: free page reporting discarded the machine page of PPN {ppn}, "
                    "which the guest uses")
    return None


_register(Property(
    "reporting_discards_only_free_pages",
    """Free page reporting discards only the machine pages of pages the guest has free.

    A page the guest uses keeps its machine page: a discarded one would come back
    zeroed under a running process.""",
    "guest", step=_reported_free_step, feature=lambda cfg: cfg.page_reporting))
'''),
    Edit("model/faults.py", text='''

@_fault("reporting_discards_neighbour", "balloon_report_free",
        "reporting_discards_only_free_pages", page_reporting=True)
def _discard_neighbour(cfg: Config, s: State, vm: int, ppn: int) -> State:
    """Free page reporting that discards a block of two pages, the reported one and the
    next, whether or not the guest uses the next one."""
    s = A.balloon_report_free(cfg, s, vm, ppn)
    if ppn + 1 < cfg.guest_pages:
        s = A.unback(s, vm, ppn + 1, by_balloon=False)
    return s
'''),
    Edit("README.md", anchor="`balloon_cpu_online`,", text=(
        " `balloon_report_free` (free page reporting: the module reports a free page and the"
        " VMM discards its machine page; `page_reporting`),")),
    Edit("README.md", anchor="| `processor_conservation` |", before=True, text=(
        "| `reporting_discards_only_free_pages` | guest | (with `page_reporting`) free page "
        "reporting discards only the machine pages of pages the guest has free |\n")),
]
"""Free page reporting, added as the checklist says."""


def checklist_files(text: str) -> list[str]:
    """The files the "Adding an action" checklist names, in order: the numbered items
    under that heading, each starting with the file's path in backquotes."""
    lines = text.splitlines()
    start = lines.index("# Adding an action")
    files = []
    for line in lines[start + 1:]:
        if line.startswith("#"):
            break
        m = re.match(r"\d+\. `([^`]+)`", line)
        if m:
            files.append(m.group(1))
    return files


def apply_edits(tree: Path, edits: list[Edit]) -> list[str]:
    """Make ``edits`` in ``tree``; the files edited, in order."""
    done: list[str] = []
    for e in edits:
        path = tree / e.path
        text = path.read_text(encoding="utf-8")
        if not e.anchor:
            text += e.text
        else:
            at = text.find(e.anchor)
            assert at >= 0, f"{e.path}: no {e.anchor!r} to edit at"
            at += 0 if e.before else len(e.anchor)
            text = text[:at] + e.text + text[at:]
        path.write_text(text, encoding="utf-8")
        if e.path not in done:
            done.append(e.path)
    return done


def package_dirs(root: Path) -> dict[str, str]:
    """Package -> folder, as ``pyproject.toml`` maps them."""
    with open(root / "pyproject.toml", "rb") as f:
        mapping: dict[str, str] = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
    return mapping


def copy_sources(tmp: Path) -> Path:
    """The package's folders, the README, the docs and ``pyproject.toml``, copied."""
    tree = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for folder in sorted(set(package_dirs(ROOT).values())) + ["docs"]:
        shutil.copytree(ROOT / folder, tree / folder, ignore=ignore)
    for name in ("README.md", "pyproject.toml"):
        shutil.copy2(ROOT / name, tree / name)
    return tree


def lay_out(tree: Path, site: Path) -> None:
    """The ``ballast`` namespace of ``tree`` as folders of symbolic links under ``site``,
    so that ``PYTHONPATH=site`` imports the copy without installing it."""
    for package, folder in sorted(package_dirs(tree).items(), key=lambda kv: kv[0].count(".")):
        target = site.joinpath(*package.split("."))
        target.mkdir(parents=True, exist_ok=True)
        for entry in (tree / folder).iterdir():
            if not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)


@dataclass
class Copy:
    """The edited copy and how to run its command line."""

    site: Path
    work: Path

    def run(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": str(self.site), "COLUMNS": "200",
               "BALLAST_QEMU_SAMPLE": str(self.work / "no-qemu-sample")}
        return subprocess.run(
            [sys.executable, "-c", "import sys; from ballast.cli import main; "
             "sys.exit(main(sys.argv[1:]))", *args],
            cwd=self.work, env=env, capture_output=True, text=True, timeout=600)

    def python(self, code: str) -> str:
        env = {**os.environ, "PYTHONPATH": str(self.site)}
        r = subprocess.run([sys.executable, "-c", code], cwd=self.work, env=env,
                           capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        return r.stdout


SMALL = ["--preset", "core", "--set", f"{SWITCH}=true"]


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Copy:
    tmp = tmp_path_factory.mktemp("walkthrough")
    tree = copy_sources(tmp)
    edited = apply_edits(tree, EDITS)
    named = checklist_files((tree / "docs" / "adding-an-action.md").read_text(encoding="utf-8"))
    assert edited == named, "the walkthrough edits exactly the files the checklist names"
    assert len(named) <= MAX_FILES
    site = tmp / "site"
    lay_out(tree, site)
    work = tmp / "work"
    work.mkdir()
    c = Copy(site, work)
    where = c.python("import ballast.model.actions as a; print(a.__file__)").strip()
    assert Path(where).resolve() == (tree / "model" / "actions.py").resolve()
    return c


def test_the_checklist_names_at_most_six_files() -> None:
    files = checklist_files(CHECKLIST.read_text(encoding="utf-8"))
    assert files and len(files) <= MAX_FILES
    assert all((ROOT / f).is_file() for f in files), files


def test_architecture_names_the_same_files_as_the_checklist() -> None:
    text = (ROOT / "ARCHITECTURE.md").read_text(encoding="utf-8")
    block = text.split("```text\nAdding an action\n", 1)[1].split("```", 1)[0]
    named = [m.group(1) for m in re.finditer(r"(?m)^\d+\. (\S+)", block)]
    assert named == checklist_files(CHECKLIST.read_text(encoding="utf-8"))


def test_the_model_has_the_new_names_and_the_tables_name_each_gap(copy: Copy) -> None:
    out = copy.python(
        "import json\n"
        "from ballast.model import ACTIONS, FAULTS, INVARIANTS\n"
        "from ballast.model.config import FEATURES\n"
        "from ballast.suites.tables import problems\n"
        f"print(json.dumps({{'known': ['{ACTION}' in ACTIONS, '{PROPERTY}' in INVARIANTS,"
        f" '{FAULT}' in FAULTS, '{SWITCH}' in FEATURES],"
        " 'problems': [[p.file, p.table, p.key] for p in problems()]}))\n")
    data = json.loads(out)
    assert data["known"] == [True, True, True, True]
    assert sorted(map(tuple, data["problems"])) == sorted([
        ("model/virtio.py", "PROJECTIONS or PAGE_USE_ONLY", ACTION),
        ("numeric/engine.py", "ENGINE_FAULTS", FAULT),
        ("numeric/engine.py", "Engine (a method per action)", ACTION),
        ("numeric/engine.py", "STEP_CHECKS", PROPERTY),
        ("numeric/workload.py", "WEIGHTS", ACTION),
        ("proofs/faults.py", "FAULT_EFFECTS", FAULT),
        ("proofs/properties.py", "STEPS", PROPERTY),
        ("proofs/transitions.py", "ENCODED (@_encodes)", ACTION),
        ("reports/sequence.py", "MESSAGES", ACTION),
    ])


def test_list_backends_shows_the_new_names_with_their_gaps(copy: Copy) -> None:
    for kind, name, missing in (("actions", ACTION, ("prove", "numeric", "virtio")),
                                ("invariants", PROPERTY, ("prove", "numeric")),
                                ("faults", FAULT, ("prove", "numeric"))):
        r = copy.run("list", kind, "--backends")
        assert r.returncode == 0, r.stderr
        rows = {line.split()[0]: line.split()[1:] for line in r.stdout.splitlines() if line}
        header = r.stdout.splitlines()[0].split()[1:]
        marks = dict(zip(header, rows[name]))
        assert {b for b, mark in marks.items() if mark == "MISSING"} == set(missing), marks
        assert marks["model"] == marks["explore"] == "yes"
        for backend in missing:
            assert f"missing: {backend}: {name}: no " in r.stdout
        assert f"{len(missing)} missing encodings" in r.stdout


def test_random_hypothesis_and_explore_run_the_action_and_catch_the_fault(copy: Copy) -> None:
    r = copy.run("check", *SMALL, "--fault", FAULT, "--checkers", "random,hypothesis",
                 "--random-runs", "40", "--random-steps", "60", "--examples", "40",
                 "--report-dir", "out", "--json", "check.json", "--summary-md", "summary.md",
                 "--junit", "junit.xml", "--sarif", "check.sarif")
    assert r.returncode == 1, r.stdout + r.stderr
    data = json.loads((copy.work / "check.json").read_text())
    assert data["properties"][PROPERTY] == {"random": "violation", "hypothesis": "violation"}
    for checker in ("random", "hypothesis"):  # the property breaks only in the new action's steps
        trace = (copy.work / "out" / f"{checker}-{PROPERTY}-{FAULT}.jsonl").read_text()
        assert f'"action":"{ACTION}"' in trace.replace(" ", ""), checker
    for report in ("summary.md", "junit.xml", "check.sarif"):
        assert PROPERTY in (copy.work / report).read_text(), report
    # The counterexample is replayable, and its report draws the new action's step.
    traces = sorted((copy.work / "out").glob(f"random-{PROPERTY}-*.jsonl"))
    assert traces, sorted(p.name for p in (copy.work / "out").iterdir())
    replay = copy.run("replay", str(traces[0]))
    assert replay.returncode == 1 and PROPERTY in replay.stdout, replay.stdout + replay.stderr
    page = traces[0].with_suffix(".md").read_text()
    assert f"{ACTION}(vm=0, ppn=" in page and PROPERTY in page

    ex = copy.run("explore", *SMALL, "--set", "guest_pages=2", "--set", "machine_pages=2",
                  "--fault", FAULT, "--stop-at-first", "--report-dir", "out")
    assert ex.returncode == 1, ex.stdout + ex.stderr
    assert f"invariant {PROPERTY}: shortest trace" in ex.stdout
    shortest = (copy.work / "out" / f"explore-{PROPERTY}-{FAULT}.jsonl").read_text()
    assert f'"action":"{ACTION}"' in shortest.replace(" ", "")


def test_prove_numeric_and_validate_name_the_missing_encoding(copy: Copy) -> None:
    """On the correct model: random runs fire the new action and every property holds;
    the checkers with encodings of their own are inconclusive, naming what they lack."""
    r = copy.run("check", *SMALL, "--set", "guest_pages=2", "--set", "machine_pages=2",
                 "--checkers", "random,prove,numeric,validate", "--random-runs", "40",
                 "--random-steps", "60", "--numeric-seeds", "1", "--numeric-batches", "10",
                 "--report-dir", "out", "--json", "gaps.json")
    assert r.returncode == 3, r.stdout + r.stderr
    data = json.loads((copy.work / "gaps.json").read_text())
    verdicts = data["properties"]
    assert ACTION in data["coverage"]["actions_fired"]
    assert {v["random"] for v in verdicts.values() if "random" in v} == {"pass"}
    for checker, done, encoding in (("prove", "proved", "Z3"), ("numeric", "checked", "NumPy")):
        assert verdicts["memory_conservation"][checker] == "inconclusive"
        assert verdicts[PROPERTY][checker] == "inconclusive"
        detail = next(res["detail"] for c in data["checkers"] if c["checker"] == checker
                      for res in c["results"] if res["property"] == "memory_conservation")
        assert detail == (f"{checker}: no {encoding} encoding of action {ACTION}; "
                          f"memory_conservation not {done}")
    assert verdicts["virtio_projection"]["validate"] == "inconclusive"
    assert f"validate: no virtio encoding of action {ACTION}" in r.stdout
