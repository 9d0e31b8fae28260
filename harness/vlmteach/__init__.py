"""The paper's method: per-instance LoRA test-time optimisation under a VLM teacher's yes/no loss."""

from harness.vlmteach.method import OptimisationDiverged, VlmTeach

__all__ = ["OptimisationDiverged", "VlmTeach"]
