"""VLM teachers: the Qwen-VL adapter, its differentiable preprocessing and query synthesis."""

from harness.teachers.qwen_vl import QwenVLTeacher

__all__ = ["QwenVLTeacher"]
