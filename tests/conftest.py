import os
import sys
import types

import pytest
import torch

# Two shared CPU cores: one thread per test process keeps runs predictable.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")


@pytest.fixture
def no_official(monkeypatch):
    """The synthetic benchmark has no package; vbvr/ruler stubs keep other engineers' code out of these tests."""
    for bench in ("synth", "vbvr"):
        monkeypatch.setitem(sys.modules, f"benchmarks.{bench}", types.ModuleType(f"benchmarks.{bench}"))
