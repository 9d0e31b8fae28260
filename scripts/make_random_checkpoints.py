"""Random-weight checkpoints in the real on-disk layouts (Wan2.2-TI2V-5B, FastWan2.2, TAEHV, Qwen3-VL-4B).

    python scripts/make_random_checkpoints.py --out DIR [--tiny] [--only fastwan,wan,taehv,qwen]

The same as ``python -m benchmarks.e2e.checkpoints``; its docstring says what is written and what differs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.e2e.checkpoints import main  # noqa: E402

if __name__ == "__main__":
    main()
