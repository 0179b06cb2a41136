"""Tests of the pytest plugin: ``pytest --ballast-adapter CMD`` in a project's own suite."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from ..validate.adapters.adapter_scripts import EXAMPLES, script

pytest_plugins = ["pytester"]

PLUGIN = "ballast.cli.pytest_plugin"


def test_options_are_registered(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*--ballast-adapter=CMD*", "*--ballast-preset=NAME*",
                                 "*--ballast-examples=N*"])


def test_no_adapter_no_item(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_own(): pass")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)


def test_divergence_fails_the_item_with_the_shrunk_commands(pytester: pytest.Pytester,
                                                            tmp_path: Path) -> None:
    cmd = script(tmp_path, "yes", '''
    send({"id": i, "ok": True, "observe": {}})
''')
    pytester.makepyfile("def test_own(): pass")
    result = pytester.runpytest("--ballast-adapter", " ".join(cmd),
                                "--ballast-preset", "core", "--ballast-examples", "30",
                                "--ballast-report-dir", str(tmp_path / "out"))
    result.assert_outcomes(passed=1, failed=1)
    # Set the target, then set it again: the guard refuses the same target twice.
    result.stdout.fnmatch_lines(["*diverges from the model after [12] commands*",
                                 "*shrunk to [12] commands:*", "*report: *divergence.md*"])
    assert list((tmp_path / "out").glob("*.jsonl"))


def test_crash_fails_the_item(pytester: pytest.Pytester, tmp_path: Path) -> None:
    cmd = script(tmp_path, "crash", '''
    sys.stderr.write("out of memory\\n"); sys.exit(1)
''')
    result = pytester.runpytest("--ballast-adapter", " ".join(cmd),
                                "--ballast-preset", "core",
                                "--ballast-report-dir", str(tmp_path / "out"))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*failed (crash)*", "*out of memory*"])


def test_an_unwritable_report_folder_is_refused_before_any_test_runs(
        pytester: pytest.Pytester, tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file where the report folder would be\n")
    cmd = script(tmp_path, "never", "    time.sleep(60)\n")
    pytester.makepyfile("def test_own(): open('ran', 'w').close()")
    result = pytester.runpytest("--ballast-adapter", " ".join(cmd), "--ballast-preset", "core",
                                "--ballast-report-dir", str(tmp_path / "taken" / "out"))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--ballast-report-dir:*is a file, not a folder*"])
    assert not (pytester.path / "ran").exists()


def test_bad_configuration_fails_with_the_reason(pytester: pytest.Pytester,
                                                 tmp_path: Path) -> None:
    cmd = script(tmp_path, "plain", "    pass\n", config={"sharing": False})
    result = pytester.runpytest("--ballast-adapter", " ".join(cmd),
                                "--ballast-preset", "vmware")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*cannot run*sharing=False*"])


@pytest.mark.skipif(shutil.which("node") is None, reason="the example adapters run on "
                                                         "Node.js, which is not installed")
def test_correct_example_passes_and_fixture_runs(pytester: pytest.Pytester,
                                                 tmp_path: Path) -> None:
    pytester.makepyfile('''
from ballast.model import preset
from ballast.verdict import Verdict

def test_with_fixture(ballast_diff):
    out = ballast_diff(examples=5, cfg=preset("core"))
    assert out.verdict is Verdict.PASS
''')
    cmd = f"node {EXAMPLES / 'balloon_adapter.js'}"
    result = pytester.runpytest("--ballast-adapter", cmd,
                                "--ballast-examples", "15",
                                "--ballast-report-dir", str(tmp_path / "out"))
    result.assert_outcomes(passed=2)


def test_plugin_loads_from_the_installed_entry_point() -> None:
    from importlib.metadata import entry_points

    assert [ep.name for ep in entry_points(group="pytest11") if ep.value == PLUGIN] == ["ballast"]
