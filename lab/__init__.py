"""The lab: code that makes the product's shipped artefacts (trained micro weights) and measures them.

It depends on the product (``harness``, ``benchmarks``, ``baselines``); nothing in the product imports it
(``tests/test_lab_boundary.py``).
"""
