"""Records in, tables out: the one place where result tables are computed.

A run directory (harness.rundir) becomes rows per level — overall, split, split x category,
category, task — each with mean, 95% CI (harness.stats, tasks resampled within categories), n,
errors and the expected n from the manifests. Errored or unscored instances never enter a mean;
they are counted beside it, and an incomplete run says so in its table header.

Rooms: ``runs`` (a run directory read: ``RunResults``, ``load_run``), ``rows`` (per-level means and paired
differences), ``benchmark`` (what the run's benchmark declares: its official aggregation and paper table),
``audit`` (what the run's trace type declares: an audit of its own), ``reference`` (the paper tables), ``render``
(markdown), ``summary`` (one run's summary.json, table.md, table.csv) and ``compare`` (runs side by side).
"""
