"""VLM teachers (Qwen-VL, InternVL3), their differentiable preprocessing and query synthesis."""

from harness.teachers.internvl import InternVLTeacher
from harness.teachers.qwen_vl import QwenVLTeacher

__all__ = ["InternVLTeacher", "QwenVLTeacher"]
