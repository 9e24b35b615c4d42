"""The judges' report: each judge against the project's people, with examples of where it erred."""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from apprentice.files import write_text_atomically
from apprentice.judges.calibration import JudgeCalibration, Rate
from apprentice.quality.pairs import pair_winner
from apprentice.rates import describe_rate, trustworthy
from apprentice.store import JudgedComparison


def rate_text(rate: Rate | None) -> str:
    """A calibration share as every rate is shown: with its interval and count, or "too little data"."""
    if rate is None or rate.trials == 0:
        return describe_rate(None, 0)
    return describe_rate(rate.successes / rate.trials, rate.trials, low=rate.low, high=rate.high)


@dataclass(frozen=True)
class ErrorExample:
    request: str
    first: str
    second: str
    judge_chose: str  # "first" | "second"
    people_chose: str
    rationale: str | None


def error_examples(judged: Sequence[JudgedComparison], judge: str, *, limit: int = 5) -> list[ErrorExample]:
    """Pairs where the judge chose against the majority of the people who judged the same comparison."""
    people: dict[int, list[int]] = {}
    own: dict[int, tuple[int, JudgedComparison]] = {}
    for item in judged:
        winner = pair_winner(item.answer) if item.kind == "pair" else None
        if winner is None:
            continue
        if item.annotator == judge:
            own[item.comparison_id] = (winner, item)
        elif item.annotator_kind != "ai" and item.source != "imported":
            people.setdefault(item.comparison_id, []).append(winner)
    examples = []
    for comparison_id, (winner, item) in own.items():
        votes = people.get(comparison_id, [])
        if not votes or 2 * sum(votes) == len(votes):
            continue
        majority = int(2 * sum(votes) > len(votes))
        if majority != winner:
            examples.append(
                ErrorExample(
                    request=item.prompt_messages[-1].get("content", "") if item.prompt_messages else "",
                    first=item.responses[0],
                    second=item.responses[1],
                    judge_chose=("first", "second")[winner],
                    people_chose=("first", "second")[majority],
                    rationale=item.rationale,
                )
            )
        if len(examples) >= limit:
            break
    return examples


def _row(calibration: JudgeCalibration) -> list[str]:
    kappa = (
        "n/a"
        if not trustworthy(calibration.agreement.trials)
        else f"{calibration.kappa:.2f} ({calibration.kappa_low:.2f}-{calibration.kappa_high:.2f})"
    )
    return [
        calibration.name,
        str(calibration.labels),
        rate_text(calibration.agreement),
        kappa,
        rate_text(calibration.position_consistency),
        f"{rate_text(calibration.longer_share)} vs people {rate_text(calibration.people_longer_share)}",
        f"{calibration.weight:.2f}",
        "; ".join(calibration.flags) or "none",
    ]


HEADERS = [
    "judge",
    "labels",
    "agreement with people",
    "Cohen's kappa (95% CI)",
    "position consistency",
    "chose the longer answer",
    "weight",
    "flags",
]


def write_judges_report(
    calibrations: Sequence[JudgeCalibration], examples: dict[str, list[ErrorExample]], folder: Path
) -> tuple[Path, Path]:
    """judges.html and judges.json in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    people = calibrations[0].people_agreement if calibrations else None
    parts = [
        "<!doctype html><meta charset='utf-8'><title>Machine judges</title>",
        "<style>body{font-family:sans-serif;max-width:72rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top}"
        "pre{white-space:pre-wrap}</style>",
        "<h1>Machine judges against the project's people</h1>",
        f"<p>People's agreement with each other: {html.escape(rate_text(people))}. "
        "A judge's labels train the reward model with its weight; flagged judges weigh nothing.</p>",
        "<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in HEADERS) + "</tr>",
    ]
    for calibration in calibrations:
        parts.append("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in _row(calibration)) + "</tr>")
    parts.append("</table>")
    for calibration in calibrations:
        parts.append(f"<h2>{html.escape(calibration.name)}: accuracy against its confidence</h2><ul>")
        for label, rate in calibration.confidence_bins:
            parts.append(f"<li>confidence {html.escape(label)}: {html.escape(rate_text(rate))}</li>")
        parts.append("</ul>")
        shown = examples.get(calibration.name, [])
        parts.append(f"<h3>Where it disagreed with people ({len(shown)} shown)</h3>")
        for example in shown:
            parts.append(
                f"<div><p><b>Request</b></p><pre>{html.escape(example.request)}</pre>"
                f"<p><b>First</b></p><pre>{html.escape(example.first)}</pre>"
                f"<p><b>Second</b></p><pre>{html.escape(example.second)}</pre>"
                f"<p>Judge chose the {example.judge_chose}; people chose the {example.people_chose}. "
                f"{html.escape(example.rationale or '')}</p></div><hr>"
            )
    html_path, json_path = folder / "judges.html", folder / "judges.json"
    write_text_atomically(html_path, "\n".join(parts))
    write_text_atomically(
        json_path,
        json.dumps(
            {
                "judges": [asdict(c) for c in calibrations],
                "examples": {k: [asdict(e) for e in v] for k, v in examples.items()},
            },
            indent=2,
            default=str,
        ),
    )
    return html_path, json_path
