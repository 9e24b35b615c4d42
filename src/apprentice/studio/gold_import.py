"""Reading known answers for gold items from a JSON Lines file, checked whole before anything is written.

One object a line: `{"comparison_id": 12, "answer": "A"}`. The answer is about the responses in their stored
order (A is the first): a pair's "A", "B", "tie" or "both_bad"; a ranking's ranks ("2,1,3" or [2, 1, 3]);
a rating's score (1 to 7). `apprentice gold import` and its errors name the file, line and field.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.store import Store
from apprentice.studio.answers import AnswerError, gold_answer

MAX_ERRORS_SHOWN = 20


@dataclass(frozen=True)
class GoldLine:
    line: int
    comparison_id: int
    answer: Any


def _parse_line(path: Path, number: int, text: str) -> GoldLine:
    where = f"{path} line {number}"
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise ApprenticeError(f"{where}: not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(row, dict):
        raise ApprenticeError(f'{where}: expected an object like {{"comparison_id": 12, "answer": "A"}}')
    unknown = sorted(set(row) - {"comparison_id", "answer"})
    if unknown:
        raise ApprenticeError(f"{where}: unknown field {', '.join(map(repr, unknown))}")
    comparison_id = row.get("comparison_id")
    if isinstance(comparison_id, bool) or not isinstance(comparison_id, int) or comparison_id < 1:
        raise ApprenticeError(f"{where}: field 'comparison_id' must be a positive whole number, got {comparison_id!r}")
    if "answer" not in row:
        raise ApprenticeError(f"{where}: field 'answer' is missing")
    return GoldLine(number, comparison_id, row["answer"])


def read_gold_file(path: Path, store: Store) -> dict[int, dict[str, Any]]:
    """Canonical gold answers by comparison id, or an ApprenticeError listing every bad line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ApprenticeError(f"cannot read {path}: {error}") from None
    problems: list[str] = []
    lines: list[GoldLine] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            lines.append(_parse_line(path, number, raw))
        except ApprenticeError as error:
            problems.append(str(error))
    shapes = store.comparison_shapes(line.comparison_id for line in lines)
    answers: dict[int, dict[str, Any]] = {}
    first_line: dict[int, int] = {}
    for line in lines:
        where = f"{path} line {line.line}"
        shape = shapes.get(line.comparison_id)
        if shape is None:
            problems.append(f"{where}: field 'comparison_id': no comparison with id {line.comparison_id}")
            continue
        if line.comparison_id in first_line:
            problems.append(f"{where}: comparison {line.comparison_id} is on line {first_line[line.comparison_id]} too")
            continue
        if shape.status == "closed":
            problems.append(f"{where}: comparison {line.comparison_id} is closed; it cannot become a gold item")
            continue
        try:
            answers[line.comparison_id] = gold_answer(shape.kind, shape.size, line.answer)
        except AnswerError as error:
            problems.append(f"{where}: field 'answer' for a {shape.kind} of {shape.size}: {error}")
            continue
        first_line[line.comparison_id] = line.line
    if problems:
        shown = problems[:MAX_ERRORS_SHOWN]
        more = f"\n... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ApprenticeError(
            f"{len(problems)} bad line{'s' if len(problems) > 1 else ''}, nothing imported:\n" + "\n".join(shown) + more
        )
    if not answers:
        raise ApprenticeError(f"{path} holds no answers (one JSON object a line)")
    return answers
