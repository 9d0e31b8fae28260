"""The paper's method: per-instance LoRA test-time optimisation under a VLM teacher's yes/no loss.

Its results tables read ``teacher_audit`` without torch, so the torch-heavy ``method`` module is imported only
when ``VlmTeach`` or ``OptimisationDiverged`` is first asked for (as a config's ``_target_`` does).
"""

__all__ = ["OptimisationDiverged", "VlmTeach"]


def __getattr__(name: str):
    if name in __all__:
        from harness.vlmteach import method

        return getattr(method, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
