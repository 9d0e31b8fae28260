"""RULER-Bench's fixed vocabulary: categories, tasks, metrics, labels, and the paper's table layout."""

from __future__ import annotations

# The task list per category, as in the official aggregation (eval/cal_acc.py, CATEGORY).
CATEGORY_TASKS: dict[str, tuple[str, ...]] = {
    "science": ("chemistry", "physics", "biology", "earth", "math", "medicine", "life"),
    "game": ("chess", "puzzle", "gomoku", "sudoku", "maze", "minesweeper", "number_sliding_puzzle", "sticks", "xiangqi", "Go"),
    "semantic": ("idioms", "metaphors", "definition"),
    "hypothetical": ("subjective_change", "objective_change"),
    "humanity": ("transportation", "sport", "social", "safety", "festival", "dress", "food", "emotion"),
    "vision rule": ("anomaly", "color", "count", "direction", "position", "shape", "size", "style", "view", "motion"),
}
TASK_CATEGORY: dict[str, str] = {task: cat for cat, tasks in CATEGORY_TASKS.items() for task in tasks}

# VLM-as-Teacher drops "game" (it overlaps with VBVR): 30 tasks in 5 categories.
PAPER_CATEGORIES: tuple[str, ...] = ("humanity", "science", "hypothetical", "semantic", "vision rule")

# Checklist metric names in the data -> the short names used in scores and tables.
METRICS: dict[str, str] = {
    "Instruction Following": "IF",
    "Visual Consistency": "VC",
    "Visual Fidelity": "VF",
    "Rule Coherence": "RC",
}
METRIC_ORDER: tuple[str, ...] = ("IF", "VC", "VF", "RC")
NO_IF_CATEGORY = "vision rule"  # the official aggregation has no Instruction Following here

LABEL_VALUES: dict[str, int] = {"Good": 2, "Medium": 1, "Poor": 0}

# The paper's column order (Tables II and IV), with "game" appended for the full benchmark.
TABLE_CATEGORY_ORDER: tuple[str, ...] = (*PAPER_CATEGORIES, "game")
CATEGORY_DISPLAY: dict[str, str] = {
    "humanity": "Humanity",
    "science": "Science",
    "hypothetical": "Hypothesis",
    "semantic": "Semantics",
    "vision rule": "Vision",
    "game": "Game",
}


def category_metrics(category: str) -> tuple[str, ...]:
    """The metrics the official aggregation averages for one category."""
    return METRIC_ORDER[1:] if category == NO_IF_CATEGORY else METRIC_ORDER


def task_abbrev(task: str) -> str:
    """Table II's three-letter column name ('transportation' -> 'Tra'). Game tasks are not in the
    paper's table and keep their full name ('chess' would clash with 'chemistry')."""
    return task if TASK_CATEGORY.get(task) == "game" else task[:3].capitalize()
