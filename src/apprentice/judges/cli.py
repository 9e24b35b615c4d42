"""`apprentice judges ...`: add machine judges, let them judge, and measure them against the people."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from apprentice.cli_common import ProjectOption, console, reports_errors
from apprentice.errors import ApprenticeError

app: typer.Typer = typer.Typer(
    help="Machine judges: language models that label pairs where they agree with your people.",
    no_args_is_help=True,
)


@app.command("add")
@reports_errors
def add(
    name: Annotated[str, typer.Argument(help="The judge's name (an annotator of kind ai).")],
    project_dir: ProjectOption = Path("."),
    model: Annotated[
        str | None, typer.Option(help="A local causal LM: 'default', a model folder or a cached Hugging Face id.")
    ] = None,
    endpoint: Annotated[
        str | None, typer.Option(help="Base URL of an OpenAI-compatible server (…/v1), instead of --model.")
    ] = None,
    model_name: Annotated[str | None, typer.Option(help="The model's name on the endpoint.")] = None,
    api_key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the endpoint's API key (the key itself is never stored)."),
    ] = None,
) -> None:
    """Add a judge: a local model read from its next-token logits, or an OpenAI-compatible endpoint."""
    from apprentice.project import open_project

    if (model is None) == (endpoint is None):
        raise ApprenticeError("give either --model (a local model) or --endpoint with --model-name")
    if endpoint is not None and not model_name:
        raise ApprenticeError("--endpoint needs --model-name (the model's name on that server)")
    if model is not None and (model_name or api_key_env):
        raise ApprenticeError("--model-name and --api-key-env go with --endpoint, not --model")
    project = open_project(project_dir)
    try:
        if endpoint is not None:
            record = project.store.add_judge(
                name, backend="endpoint", model=str(model_name), url=endpoint, api_key_env=api_key_env
            )
        else:
            from apprentice.models import resolve_model

            resolve_model(str(model))  # fail now, not at the first judgment, if the model is not here
            record = project.store.add_judge(name, backend="local", model=str(model))
    finally:
        project.close()
    where = f"{record.url} ({record.model})" if record.backend == "endpoint" else record.model
    console.print(f"Added judge {record.name}: {record.backend} {where}", highlight=False, markup=False)


@app.command("list")
@reports_errors
def list_judges(project_dir: ProjectOption = Path(".")) -> None:
    """The project's judges."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        judges = project.store.judges()
    finally:
        project.close()
    table = Table("judge", "backend", "model", "endpoint", "key from", "disabled")
    for column in table.columns:
        column.overflow = "fold"  # a narrow terminal wraps a long URL instead of cutting it
    for judge in judges:
        table.add_row(
            judge.name, judge.backend, judge.model, judge.url or "", judge.api_key_env or "", str(judge.disabled)
        )
    console.print(table if judges else "No judges yet: apprentice judges add NAME --model MODEL")


@app.command("run")
@reports_errors
def run(
    names: Annotated[list[str] | None, typer.Argument(help="Judges to run (default: all).")] = None,
    project_dir: ProjectOption = Path("."),
    limit: Annotated[int | None, typer.Option(help="At most this many tasks per judge.")] = None,
    studio_url: Annotated[
        str | None, typer.Option(help="A running studio to judge through (default: start one meanwhile).")
    ] = None,
) -> None:
    """Let the judges answer the open pairs the studio gives them, asking in both orders."""
    from apprentice.judges.jobs import run_judges
    from apprentice.project import open_project
    from apprentice.rates import describe_rate

    project = open_project(project_dir)
    try:
        with console.status("Judges at work"):
            results = run_judges(project, names, limit=limit, base_url=studio_url)
    finally:
        project.close()
    for stats in results:
        consistency = stats.position_consistency
        console.print(
            f"{stats.name}: asked {stats.asked} pairs, labelled {stats.labelled}, abstained on {stats.abstained} "
            f"(orders disagreed), skipped {stats.not_pairs} that are not pairs"
            + ("" if consistency is None else f"; position consistency {describe_rate(consistency, stats.asked)}"),
            highlight=False,
            markup=False,
        )


@app.command("report")
@reports_errors
def report(
    project_dir: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Folder for judges.html and judges.json (default: reports/).")
    ] = None,
    weights: Annotated[
        bool, typer.Option("--weights/--no-weights", help="Also write each judge's weight onto its judgments.")
    ] = True,
) -> None:
    """Each judge against the people: agreement, kappa, position consistency, length bias, errors; its weight."""
    from apprentice.judges.jobs import calibrate_and_report, weight_judges
    from apprentice.judges.report import rate_text
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        if not project.store.judges():
            raise ApprenticeError("no judges yet: add one with `apprentice judges add NAME --model MODEL`")
        calibrations, html_path, json_path = calibrate_and_report(project, out or project.root / "reports")
        weighted = weight_judges(project, calibrations) if weights else 0
    finally:
        project.close()
    for calibration in calibrations:
        console.print(
            f"{calibration.name}: agreement with people {rate_text(calibration.agreement)}, weight "
            f"{calibration.weight:.2f}" + (f"; flagged: {'; '.join(calibration.flags)}" if calibration.flags else ""),
            highlight=False,
            markup=False,
        )
    if weights:
        console.print(f"Weights written on {weighted} judge labels.")
    console.print(f"Report: {html_path}\nFigures: {json_path}", markup=False)
