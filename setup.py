"""The wheel's packages: the code's, and conf/ and results/reference/ as ``harness.conf`` and ``harness.reference``.

The repository keeps both folders at its root (``make`` and the README use them there); an installed harness
finds them inside its package (harness.paths). pyproject.toml cannot list found packages beside mapped ones,
hence this file; everything else is in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

CODE = ["harness*", "benchmarks*", "baselines*"]

setup(
    packages=[
        *find_namespace_packages(include=CODE, exclude=["*__pycache__*"]),  # data folders (micro weights) too
        "harness.conf", *(f"harness.conf.{p}" for p in find_namespace_packages("conf")),
        "harness.reference",
    ],
    package_dir={"harness.conf": "conf", "harness.reference": "results/reference"},
)
