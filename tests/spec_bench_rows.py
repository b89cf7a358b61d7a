"""A stand-in of Spec-Bench's question file: its row shape, categories and counts (80 per category, the
MT-Bench rows spread over MT-Bench's eight categories), with made-up text."""

from __future__ import annotations

import json
from pathlib import Path

MT_BENCH = ["writing", "roleplay", "reasoning", "math", "coding", "extraction", "stem", "humanities"]
OTHERS = ["translation", "summarization", "qa", "math_reasoning", "rag"]


def spec_bench_rows() -> list[dict]:
    """480 rows: 80 MT-Bench questions (two turns, ten per MT-Bench category, interleaved), then 80 of each
    other category (one turn); ids 1..480."""
    rows = [{"question_id": i + 1, "category": MT_BENCH[i % 8], "turns": [f"Question {i + 1}: say why.", "And then?"]}
            for i in range(80)]
    for j, category in enumerate(OTHERS):
        rows += [{"question_id": 81 + 80 * j + i, "category": category,
                  "turns": [f"A {category} task, number {i}."], "reference": []} for i in range(80)]
    return rows


def write_spec_bench(path: Path, rows: list[dict] | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in (spec_bench_rows() if rows is None else rows)))
    return path
