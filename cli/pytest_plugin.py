"""A pytest plugin: run Ballast's differential test from a project's own test suite.

::

    pytest --ballast-adapter "node examples/balloon_adapter.js" [--ballast-preset virtio]
           [--ballast-config FILE] [--ballast-set KEY=VALUE] [--ballast-fault NAME]
           [--ballast-examples 100] [--ballast-seed 0] [--ballast-report-dir DIR]

The model options are those of every ``ballast`` subcommand
(:mod:`ballast.cli.options`), prefixed with ``ballast-``.

With ``--ballast-adapter`` the session gets one more test item, ``ballast-diff``,
which passes when the implementation agrees with the model and fails with the
shrunk command sequence (and the paths of the trace and report) when it does
not, or when the implementation times out, crashes or answers garbage.

Tests of one's own can use the ``ballast_diff`` fixture, a function that runs
the differential test with the command-line options as defaults and returns
the :class:`~ballast.validate.adapters.diff.DiffOutcome`.

Installing Ballast registers the plugin (``pytest11`` entry point ``ballast``);
pytest loads it by itself, and its options do nothing until ``--ballast-adapter``
is given.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from ballast.argtypes import positive_int, seed, timeout_seconds
from ballast.errors import BallastError
from ballast.model.config import Config
from ballast.model.trace import check_destinations
from ballast.cli.options import (
    DEFAULT_PRESETS,
    add_pytest_options,
    config_from_args,
    config_line,
    origin,
    options_of_pytest,
)
from ballast.validate.adapters.diff import DEFAULT_STEPS, DiffOutcome, run_diff
from ballast.validate.adapters.report import Report, write_report
from ballast.verdict import Verdict

__all__ = ["BallastDiffFailure", "BallastDiffItem", "ballast_diff", "pytest_addoption",
           "pytest_collection_modifyitems", "pytest_configure", "pytest_report_header"]

DEFAULT_PRESET = DEFAULT_PRESETS["diff"][0]
"""The configuration without model options: ``ballast diff``'s (adapters implement the
virtio driver)."""


def pytest_addoption(parser: pytest.Parser) -> None:
    """The ``--ballast-*`` options."""
    group = parser.getgroup("ballast", "differential testing against the Ballast model")
    group.addoption("--ballast-adapter", default=None, metavar="CMD",
                    help="command starting an implementation that speaks the Ballast adapter "
                         "protocol; adds the test item 'ballast-diff'")
    add_pytest_options(group, default_preset=DEFAULT_PRESET)
    group.addoption("--ballast-examples", type=positive_int, default=100, metavar="N",
                    help="runs to try (default 100)")
    group.addoption("--ballast-steps", type=positive_int, default=DEFAULT_STEPS, metavar="N",
                    help=f"most commands per run (default {DEFAULT_STEPS})")
    group.addoption("--ballast-seed", type=seed, default=0, metavar="N",
                    help="random seed (default 0)")
    group.addoption("--ballast-timeout", type=timeout_seconds, default=5.0, metavar="SECONDS",
                    help="longest wait for one request to be written and "
                    "answered (default 5)")
    group.addoption("--ballast-report-dir", default="reports/out", metavar="DIR",
                    help="where counterexamples go (default reports/out)")


def pytest_configure(config: pytest.Config) -> None:
    """Refuse a report folder that could not be written before any test runs.

    A differential test's report is written when it ends; a folder found unwritable then
    would cost the whole run and fail the item for a reason known at the start.
    """
    if not config.getoption("ballast_adapter", None):
        return
    try:
        check_destinations(folders=[config.getoption("ballast_report_dir")])
    except BallastError as exc:
        raise pytest.UsageError(f"--ballast-report-dir: {exc}") from None


def _config(config: pytest.Config) -> Config:
    return config_from_args(options_of_pytest(config.getoption, default_preset=DEFAULT_PRESET))


def _faults(config: pytest.Config) -> list[str]:
    faults: list[str] = config.getoption("ballast_fault")
    return faults


def pytest_report_header(config: pytest.Config) -> str | None:
    """The configuration the ``ballast-diff`` item runs, when an adapter is given."""
    if not config.getoption("ballast_adapter"):
        return None
    args = options_of_pytest(config.getoption, default_preset=DEFAULT_PRESET)
    try:
        return f"ballast {config_line(config_from_args(args), args.fault, origin(args))}"
    except BallastError as exc:  # the item fails with the reason
        return f"ballast configuration: {exc}"


class BallastDiffFailure(Exception):
    """The implementation diverged from the model, or failed to answer."""

    def __init__(self, outcome: DiffOutcome | None, report: Report | None,
                 message: str | None = None) -> None:
        self.outcome = outcome
        self.report = report
        super().__init__(message or (outcome.describe() if outcome else "ballast diff failed"))

    def explain(self) -> str:
        """The failure as a person reads it: what differs, the commands, the files."""
        lines = [str(self)]
        o = self.outcome
        if o is not None and o.divergence is not None:
            lines.append("")
            lines.append(f"shrunk to {o.divergence.commands} commands:")
            for ex in o.divergence.exchanges[1:]:
                lines.append(f"  {ex.index}. {ex.action}")
        if o is not None and o.adapter_error is not None and o.adapter_error.stderr.strip():
            lines += ["", "stderr of the implementation (last lines):",
                      o.adapter_error.stderr.rstrip()]
        if self.report is not None:
            lines.append("")
            lines.append(f"report: {self.report.markdown_path}")
            if self.report.trace_path is not None:
                lines.append(f"trace:  {self.report.trace_path}")
        return "\n".join(lines)


class BallastDiffItem(pytest.Item):
    """The differential test of the implementation named by ``--ballast-adapter``."""

    def runtest(self) -> None:
        opt = self.config.getoption
        try:
            outcome = run_diff(opt("ballast_adapter"), _config(self.config),
                               examples=opt("ballast_examples"), steps=opt("ballast_steps"),
                               seed=opt("ballast_seed"), timeout_s=opt("ballast_timeout"),
                               faults=_faults(self.config))
            report = write_report(outcome, Path(opt("ballast_report_dir")))
        except BallastError as exc:
            raise BallastDiffFailure(None, None, f"ballast diff cannot run: {exc}") from None
        self.user_properties.append(("ballast_runs", outcome.examples))
        self.user_properties.append(("ballast_commands", outcome.commands))
        if outcome.verdict is not Verdict.PASS:
            raise BallastDiffFailure(outcome, report)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | Any:
        if isinstance(excinfo.value, BallastDiffFailure):
            return excinfo.value.explain()
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"ballast diff --adapter {self.config.getoption('ballast_adapter')}"


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    """Add the ``ballast-diff`` item when an adapter is given."""
    if config.getoption("ballast_adapter"):
        items.append(BallastDiffItem.from_parent(session, name="ballast-diff"))


@pytest.fixture
def ballast_diff(request: pytest.FixtureRequest) -> Callable[..., DiffOutcome]:
    """Run the differential test; arguments default to the ``--ballast-*`` options.

    ``ballast_diff(command=None, cfg=None, **run_diff_arguments) -> DiffOutcome``
    """
    config = request.config

    def run(command: str | list[str] | None = None, cfg: Config | None = None,
            **kwargs: Any) -> DiffOutcome:
        cmd = command if command is not None else config.getoption("ballast_adapter")
        if cmd is None:
            pytest.fail("ballast_diff needs a command, or --ballast-adapter")
        kwargs.setdefault("examples", config.getoption("ballast_examples"))
        kwargs.setdefault("steps", config.getoption("ballast_steps"))
        kwargs.setdefault("seed", config.getoption("ballast_seed"))
        kwargs.setdefault("timeout_s", config.getoption("ballast_timeout"))
        kwargs.setdefault("faults", _faults(config))
        return run_diff(cmd, cfg if cfg is not None else _config(config), **kwargs)

    return run
