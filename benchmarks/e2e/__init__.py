"""The real-scale end-to-end check (issue 32): random-weight checkpoints in the real on-disk layouts
(``checkpoints``), RULER- and VBVR-format fixture data (``fixtures``), the run (``run``) and its report
(``report``). ``scripts/bench_e2e.sh`` runs it on one GPU; ``--tiny`` runs the same layouts on a CPU."""
