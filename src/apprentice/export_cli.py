"""`apprentice export preferences | ratings | kto | rankings`: labels out of the store. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from apprentice.cli_common import ProjectOption, console, errors, reports_errors
from apprentice.exports import KTO_THRESHOLD, ExportKind, LabelExport

export_app: typer.Typer = typer.Typer(
    help="Labels out of the store: preference pairs, ratings, KTO rows or rankings.", no_args_is_help=True
)
OutOption = Annotated[Path | None, typer.Option(help="JSONL file to write (default: PROJECT/exports/KIND.jsonl).")]
DatasetOption = Annotated[Path | None, typer.Option(help="Folder to save a datasets.Dataset in.")]


def _export(kind: ExportKind, project_dir: Path, out: Path | None, dataset: Path | None, **options: float) -> None:
    from apprentice.exports import build_export, write_export
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        export = build_export(project.store.judged_comparisons(), kind, **options)
        if out is None and dataset is None:
            out = project.root / "exports" / f"{kind}.jsonl"
        write_export(export, jsonl_path=out, dataset_path=dataset)
    finally:
        project.close()
    where = " and ".join(str(path) for path in (out, dataset) if path is not None)
    console.print(f"Exported {_describe(export)} to {escape(where)}", highlight=False)
    for reason, count in export.left_out.items():
        console.print(f"  left out: {count} {escape(reason)}", highlight=False)
    if (why := export.why_empty()) is not None:
        errors.print(f"warning: nothing exported: {why}", highlight=False, soft_wrap=True)


def _describe(export: LabelExport) -> str:
    rows = len(export.rows)
    if export.kind == "kto":
        desirable = sum(1 for row in export.rows if row["label"])
        return f"{rows} KTO rows ({desirable} desirable, {rows - desirable} undesirable)"
    noun = {"preferences": "preference pairs", "ratings": "ratings", "rankings": "rankings"}[export.kind]
    return f"{rows} {noun}"


@export_app.command("preferences")
@reports_errors
def preferences(project_dir: ProjectOption = Path("."), out: OutOption = None, dataset: DatasetOption = None) -> None:
    """Pairwise judgments, and every pair a ranking implies, as TRL preference pairs (prompt, chosen, rejected)."""
    _export("preferences", project_dir, out, dataset)


@export_app.command("ratings")
@reports_errors
def ratings(project_dir: ProjectOption = Path("."), out: OutOption = None, dataset: DatasetOption = None) -> None:
    """Ratings as per-response labels: prompt, completion, score (1-7) and the per-criterion scores."""
    _export("ratings", project_dir, out, dataset)


@export_app.command("kto")
@reports_errors
def kto(
    project_dir: ProjectOption = Path("."),
    out: OutOption = None,
    dataset: DatasetOption = None,
    threshold: Annotated[
        float, typer.Option(help="Ratings above it are desirable, below it undesirable; at it left out.")
    ] = KTO_THRESHOLD,
) -> None:
    """Ratings in the unpaired form TRL's KTO trainer reads: prompt, completion, label (desirable or not)."""
    _export("kto", project_dir, out, dataset, threshold=threshold)


@export_app.command("rankings")
@reports_errors
def rankings(project_dir: ProjectOption = Path("."), out: OutOption = None, dataset: DatasetOption = None) -> None:
    """Rankings as their full order: each ranking's completions best first, with their ranks (ties share one)."""
    _export("rankings", project_dir, out, dataset)
