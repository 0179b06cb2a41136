"""Ballast reports: what a failure looks like to the engineer who gets a red CI run.

* :mod:`~ballast.reports.counterexample` -- every checker's counterexample: replayed,
  then written (trace + Markdown, optionally HTML) atomically;
* :mod:`~ballast.reports.explain` -- what a trace shows, from the trace file alone;
  :mod:`~ballast.reports.sequence` (diagram), :mod:`~ballast.reports.memory` (plot),
  :mod:`~ballast.reports.diff` (state changes);
* :mod:`~ballast.reports.render_html` / :mod:`~ballast.reports.render_md` -- the
  self-contained HTML page and its Markdown twin; :mod:`~ballast.reports.page` and
  :mod:`~ballast.cli.report` -- ``ballast report TRACE``;
* :mod:`~ballast.reports.summary`, :mod:`~ballast.reports.junit`,
  :mod:`~ballast.reports.sarif` -- a whole ``ballast check`` as Markdown, JSON, JUnit
  XML and SARIF 2.1.0 (:func:`~ballast.reports.summary.write_summary`);
* :mod:`~ballast.reports.atomic` -- every file is written whole or not at all.
"""
