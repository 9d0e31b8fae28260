"""The micro world's lab: the architecture builders (``weights_student``, ``weights_teacher``) and the
training that fills them (``training``, ``make train-micro``)."""

from pathlib import Path

import benchmarks.micro

# Where the micro benchmark's shipped weights live: the builders write and the pipeline installs here.
WEIGHTS = Path(benchmarks.micro.__file__).resolve().parent / "weights"
