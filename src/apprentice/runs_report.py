"""The report of a project trained by hand: its reward runs, its policies and the evaluations of them.

`apprentice report` writes the loop's report when the loop has evaluated a round (`apprentice.report`);
a project trained with `apprentice reward train`, `policy train` and compared with `apprentice eval` gets
this one instead, in `report/report.html` with its figures as JSON beside it: one self-contained page.
Every accuracy and win rate carries its count and 95% interval, or says "too little data".
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.evaluation import load_samples
from apprentice.files import write_text_atomically
from apprentice.policy_eval import RESULT_COLUMNS, load_evaluations, rate_text, result_cells, trained_policies
from apprentice.project import Project
from apprentice.store import Store
from apprentice.store.tables import Policy, Run

REPORT_FOLDER = "report"
_SAMPLE_ROWS = 6


def write_project_report(project: Project) -> Path:
    """The loop's report when it has evaluated a round, else the report of the runs made by hand."""
    from apprentice.report import round_figures, write_report

    if round_figures(project.store.rounds()):
        return write_report(project)
    return write_runs_report(project)


def write_runs_report(project: Project, path: Path | None = None) -> Path:
    """Write `report/report.html` and `report/report.json` from the runs, policies and evaluations stored."""
    store = project.store
    reward_runs = [run for run in store.runs("reward") if "loop_round" not in run.config]
    policies = _policies_with_parents(store)
    evaluations = load_evaluations(store)
    if not (reward_runs or policies or evaluations):
        raise ApprenticeError(
            "nothing to report yet: train a reward model (`apprentice reward train`) or a policy "
            "(`apprentice policy train`) and compare them with `apprentice eval`, or run `apprentice loop`"
        )
    path = path or project.root / REPORT_FOLDER / "report.html"
    made_by = _runs_by_policy(store)
    summary = store.summary()
    held_out = len(store.prompts(held_out=True))
    sections = [
        f"<p>{_count(summary.prompts, 'prompt')} ({held_out} held out for evaluation), "
        f"{_count(summary.responses, 'response')}, {_count(summary.judgments, 'judgment')} by "
        f"{_count(summary.annotators, 'annotator')}; {_count(len(reward_runs), 'reward run')}, "
        f"{_count(len(policies), 'policy', 'policies')}, {_count(len(evaluations), 'evaluation')}.</p>",
        _reward_section(reward_runs),
        _policy_section(policies, made_by),
        _evaluation_section(evaluations),
        _samples_section(store, evaluations),
    ]
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Apprentice report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;width:100%;margin-bottom:1em}}td,th{{border:1px solid #ccc;padding:4px 6px;
vertical-align:top;font-size:14px;text-align:left}}caption{{text-align:left;font-weight:600;padding:4px 0}}</style>
</head><body><h1>Apprentice: {html.escape(project.settings.project.name)}</h1>{"".join(sections)}</body></html>"""
    write_text_atomically(path, page)
    figures = {
        "reward_runs": [_run_record(run) for run in reward_runs],
        "policies": [_policy_record(policy, made_by.get(policy.id)) for policy in policies],
        "evaluations": [{"run": run_id, **results} for run_id, results in evaluations],
    }
    write_text_atomically(path.with_suffix(".json"), json.dumps(figures, indent=2, default=str) + "\n")
    return path


# -- sections ---------------------------------------------------------------------------------------------


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], caption: str = "") -> str:
    head = "".join(f"<th>{html.escape(header)}</th>" for header in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in row) + "</tr>" for row in rows)
    shown = f"<caption>{html.escape(caption)}</caption>" if caption else ""
    return f"<table>{shown}<tr>{head}</tr>{body}</table>"


def accuracy_text(accuracy: float | None, pairs: int | None) -> str:
    """A reward model's held-out accuracy with its interval and count (or too little data)."""
    from apprentice.quality.bias import wilson_interval

    if accuracy is None or not pairs:
        return "-"
    correct = round(accuracy * pairs)
    low, high = wilson_interval(correct, pairs)
    return rate_text({"wins": correct, "comparisons": pairs, "rate": accuracy, "low": low, "high": high})


def _reward_section(runs: list[Run]) -> str:
    if not runs:
        return "<h2>Reward models</h2><p>None trained yet (`apprentice reward train`).</p>"
    rows = [
        (
            str(run.id),
            run.status,
            run.output_path or "-",
            str(run.config.get("model", "-")),
            accuracy_text(run.metrics.get("accuracy"), run.metrics.get("pairs")),
            accuracy_text(run.metrics.get("length_baseline_accuracy"), run.metrics.get("pairs")),
            _number(run.metrics.get("expected_calibration_error")),
        )
        for run in runs
    ]
    headers = ("run", "status", "folder", "backbone", "held-out accuracy", "length-only baseline", "calibration error")
    return "<h2>Reward models</h2>" + _table(headers, rows)


def _policy_section(policies: list[Policy], made_by: dict[int, Run]) -> str:
    if not policies:
        return "<h2>Policies</h2><p>None trained yet (`apprentice policy train`).</p>"
    names = {policy.id: policy.name for policy in policies}
    rows = []
    for policy in policies:
        run = made_by.get(policy.id)
        trained = "-"
        if run is not None:
            trained = f"run {run.id}: {run.config.get('algorithm', '?')}, {run.config.get('steps', '?')} steps"
        elif policy.round:
            trained = f"loop round {policy.round}"
        rows.append(
            (
                policy.name,
                policy.kind,
                names.get(policy.parent_id, "-") if policy.parent_id else "-",
                policy.model_path or "-",
                trained,
                _last_step(run),
            )
        )
    return "<h2>Policies</h2>" + _table(("name", "kind", "parent", "folder", "trained by", "last step"), rows)


def _evaluation_section(evaluations: list[tuple[int, dict[str, Any]]]) -> str:
    if not evaluations:
        return (
            "<h2>Evaluations</h2><p>None yet: compare policies on the held-out prompts with "
            "<code>apprentice eval BASE POLICY ...</code>.</p>"
        )
    parts = [
        "<h2>Evaluations</h2><p>Means over the held-out answers; win rates answer by answer against the "
        "evaluation's first policy (ties half), with their 95% intervals and counts.</p>"
    ]
    for run_id, results in reversed(evaluations):
        reward = ", ".join(results.get("reward") or []) or "no reward model"
        caption = (
            f"Evaluation run {run_id}: {results['prompts']} held-out prompts, {results['answers_per_policy']} "
            f"answers a policy; reward {reward}; gold oracle {results.get('oracle') or 'none'}"
        )
        parts.append(_table(RESULT_COLUMNS, [result_cells(row) for row in results["results"]], caption))
    latest = evaluations[-1][1]
    if any(row[key] is not None for row in latest["results"] for key in ("reward_mean", "gold_mean")):
        parts.append(
            f"<figure><img alt='Reward and gold against KL' src='data:image/png;base64,{_kl_plot(latest)}'>"
            "<figcaption>Latest evaluation: mean reward and gold score against KL from the base</figcaption></figure>"
        )
    return "".join(parts)


def _samples_section(store: Store, evaluations: list[tuple[int, dict[str, Any]]]) -> str:
    if not evaluations:
        return ""
    run_id, results = evaluations[-1]
    folder = next((Path(run.output_path or "") for run in store.runs("eval") if run.id == run_id), None)
    names = [row["name"] for row in results["results"]]
    files = [folder / f"answers-{index}.jsonl" for index in range(1, len(names) + 1)] if folder else []
    if not files or not all(path.is_file() for path in files):
        return ""
    answers = [load_samples(path)[:_SAMPLE_ROWS] for path in files]
    rows = [
        [answers[0][row]["prompt"], *(column[row]["completion"] for column in answers)]
        for row in range(len(answers[0]))
    ]
    return "<h2>Sample answers, latest evaluation</h2>" + _table(["prompt", *names], rows)


# -- pieces -----------------------------------------------------------------------------------------------


def _policies_with_parents(store: Store) -> list[Policy]:
    """The trained policies and every policy they descend from, oldest first."""
    found = {policy.id: policy for policy in trained_policies(store)}
    pending = [policy.parent_id for policy in found.values() if policy.parent_id]
    while pending:
        policy_id = pending.pop()
        if policy_id in found:
            continue
        found[policy_id] = parent = store.policy_by_id(policy_id)
        if parent.parent_id:
            pending.append(parent.parent_id)
    return [found[policy_id] for policy_id in sorted(found)]


def _runs_by_policy(store: Store) -> dict[int, Run]:
    return {
        run.metrics["policy_id"]: run
        for run in store.runs("policy")
        if run.status == "done" and isinstance(run.metrics.get("policy_id"), int)
    }


def _last_step(run: Run | None) -> str:
    if run is None:
        return "-"
    figures = {key: value for key, value in run.metrics.items() if "/" not in key and key != "policy_id"}
    return ", ".join(f"{key} {_number(value)}" for key, value in sorted(figures.items())[:6]) or "-"


def _count(count: int, noun: str, plural: str | None = None) -> str:
    return f"{count} {noun if count == 1 else plural or noun + 's'}"


def _number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "-" if value is None else str(value)


def _run_record(run: Run) -> dict[str, Any]:
    return {"id": run.id, "status": run.status, "folder": run.output_path, "config": run.config, "metrics": run.metrics}


def _policy_record(policy: Policy, run: Run | None) -> dict[str, Any]:
    return {
        "name": policy.name,
        "kind": policy.kind,
        "parent_id": policy.parent_id,
        "folder": policy.model_path,
        "run": None if run is None else _run_record(run),
    }


def _kl_plot(results: dict[str, Any]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["results"]
    figure, axis = plt.subplots(figsize=(6, 3.6))
    kl = [row["kl_from_base"] for row in rows]
    for key, marker, label in (("reward_mean", "o", "reward (proxy)"), ("gold_mean", "s", "gold (oracle)")):
        if all(row[key] is not None for row in rows):
            axis.plot(kl, [row[key] for row in rows], marker, label=label)
            for x, row in zip(kl, rows, strict=True):
                axis.annotate(row["name"], (x, row[key]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    axis.set_xlabel("KL(policy || base), nats")
    axis.set_ylabel("mean score on held-out answers")
    if axis.get_legend_handles_labels()[0]:
        axis.legend()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")
