"""Student adapters: video generation models behind the ``harness.types.Student`` protocol."""

from harness.students.wan import WanStudent

__all__ = ["WanStudent"]
