"""The paper's method: per-instance LoRA test-time optimisation under a VLM teacher's yes/no loss.

Its results tables read ``trace`` and ``teacher_audit`` without torch, so the torch-heavy modules are imported only
when one of their names is first asked for (as a config's ``_target_`` does).
"""

_HOMES = {"OptimisationDiverged": "method", "VlmTeach": "method", "StepLog": "trace", "VlmTeachTrace": "trace"}
__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(f"harness.vlmteach.{_HOMES[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
