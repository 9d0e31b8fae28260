"""The paper's method: per-instance LoRA test-time optimisation under a VLM teacher's yes/no loss."""

from harness.vlmteach.method import OptimisationDiverged, VlmTeach
from harness.vlmteach.trace import StepLog, VlmTeachTrace

__all__ = ["OptimisationDiverged", "StepLog", "VlmTeach", "VlmTeachTrace"]
