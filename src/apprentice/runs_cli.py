"""`apprentice runs [prune]` and `apprentice policies`: what the project has trained, and where it lies. Thin."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Column, Table

from apprentice.cli_common import ProjectOption, console, reports_errors
from apprentice.run_folders import checkpoint_folders, folder_size, human_size, prune_checkpoints

if TYPE_CHECKING:
    from apprentice.project import Project
    from apprentice.store import Run

runs_app = typer.Typer(
    help="The project's runs (generation, reward and policy training): list them, or prune their checkpoints.",
    invoke_without_command=True,
)
TOO_LITTLE_DATA = 20  # held-out pairs below which an accuracy is not shown as a figure


@runs_app.callback()
@reports_errors
def runs(context: typer.Context, project_dir: ProjectOption = Path(".")) -> None:
    """List every run: kind, status, what it started from, its folder, key figures and checkpoint size."""
    if context.invoked_subcommand is not None:
        return
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        names = {policy.model_path: policy.name for policy in project.store.policies() if policy.model_path}
        table = Table("Run", "Kind", "Status", "Parent", _folder_column(), "Figures", "Checkpoints", title="Runs")
        for run in project.store.runs():
            checkpoints = sum(map(folder_size, checkpoint_folders(Path(run.output_path)))) if run.output_path else 0
            table.add_row(
                f"#{run.id}",
                _kind(run),
                run.status,
                _parent(run, names),
                _shown_folder(project, run.output_path),
                _run_figures(run),
                human_size(checkpoints) if checkpoints else "-",
            )
        console.print(_folded(table) if table.rows else "No runs yet.")
    finally:
        project.close()


@runs_app.command("prune")
@reports_errors
def prune(
    project_dir: ProjectOption = Path("."),
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Say what would be deleted; delete nothing.")] = False,
) -> None:
    """Delete the checkpoints of runs that finished (a failed run keeps them, to be resumed)."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        folders = [Path(run.output_path) for run in project.store.runs() if run.status == "done" and run.output_path]
    finally:
        project.close()
    summary = prune_checkpoints(folders, dry_run=dry_run)
    if not summary.runs:
        console.print("No finished run keeps checkpoints; nothing to prune.")
    elif dry_run:
        console.print(
            f"Would delete the checkpoints of {_count(summary.runs, 'run')}, freeing {human_size(summary.freed_bytes)}"
        )
    else:
        console.print(
            f"Deleted the checkpoints of {_count(summary.runs, 'run')}, freed {human_size(summary.freed_bytes)}"
        )


@reports_errors
def policies(project_dir: ProjectOption = Path(".")) -> None:
    """List every policy: name (usable as --model or --policy), kind, parent, folder and key figures."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        stored = project.store.policies()
        by_id = {policy.id: policy for policy in stored}
        trained_by = {
            run.metrics["policy_id"]: run for run in project.store.runs("policy") if "policy_id" in run.metrics
        }
        responses = project.store.response_counts()
        table = Table("Name", "Kind", "Parent", _folder_column(), "Responses", "Trained by", title="Policies")
        for policy in stored:
            parent = by_id.get(policy.parent_id) if policy.parent_id is not None else None
            run = trained_by.get(policy.id)
            table.add_row(
                policy.name,
                policy.kind,
                parent.name if parent is not None else "-",
                _shown_folder(project, policy.model_path),
                str(responses.get(policy.id, 0)),
                f"run #{run.id}: {_policy_figures(run)}" if run is not None else "-",
            )
        console.print(_folded(table) if table.rows else "No policies yet.")
    finally:
        project.close()


def _folded(table: Table) -> Table:
    """Every cell wraps on a narrow terminal instead of being cut short with an ellipsis."""
    for column in table.columns:
        column.overflow = "fold"
    return table


def _folder_column() -> Column:
    return Column("Folder", overflow="fold")  # wrapped, never cut short: a folder is there to be copied


def _kind(run: Run) -> str:
    algorithm = run.config.get("algorithm")
    loop_round = run.config.get("loop_round")
    return " ".join(
        str(part) for part in (run.kind, algorithm, f"(round {loop_round})" if loop_round else None) if part
    )


def _parent(run: Run, names: dict[str, str]) -> str:
    started_from = run.config.get("policy") or run.config.get("model")
    if not started_from:
        return "-"
    return names.get(str(started_from), str(started_from))


def _shown_folder(project: Project, path: str | None) -> str:
    """A folder relative to the project when inside it (shorter, and what `--reward` and `--output` take)."""
    if not path:
        return "-"
    try:
        return str(Path(path).resolve().relative_to(project.root.resolve()))
    except ValueError:
        return path


def _run_figures(run: Run) -> str:
    metrics = run.metrics
    if run.kind == "generate":
        return f"{metrics.get('responses_stored', '?')} responses, {metrics.get('comparisons', '?')} comparisons"
    if run.kind == "reward":
        return _accuracy(metrics.get("accuracy"), metrics.get("pairs"))
    if run.kind == "policy":
        return _policy_figures(run)
    if run.kind == "quality":
        return f"weights on {metrics.get('judgments', '?')} judgments"
    return "-"


def _accuracy(accuracy: Any, pairs: Any) -> str:
    """Held-out accuracy with its 95% Wilson interval and count; 'too little data' on fewer than 20 pairs."""
    if not isinstance(accuracy, int | float) or not isinstance(pairs, int) or not pairs or math.isnan(accuracy):
        return "not evaluated"
    if pairs < TOO_LITTLE_DATA:
        return f"accuracy on {pairs} held-out pairs: too little data"
    from apprentice.quality.bias import wilson_interval

    low, high = wilson_interval(round(accuracy * pairs), pairs)
    return f"accuracy {accuracy:.3f} [{max(low, 0.0):.2f}, {min(high, 1.0):.2f}] on {pairs} held-out pairs"


def _policy_figures(run: Run) -> str:
    """The steps run and the last step's reward, KL and loss (those the algorithm has)."""
    shown = [_count(run.config["steps"], "step")] if "steps" in run.config else []
    shown += [f"{key} {run.metrics[key]:.3g}" for key in ("reward", "kl", "loss") if key in run.metrics]
    return ", ".join(shown) or "-"


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" + ("" if number == 1 else "s")
