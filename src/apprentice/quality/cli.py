"""`apprentice quality ...`: the quality report, the flag list, and weights written back for training."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apprentice.cli_common import ProjectOption, console, reports_errors
from apprentice.project import Project
from apprentice.rates import describe_rate

app: typer.Typer = typer.Typer(
    help="Feedback quality: agreement, annotator reliability, bias, corrections.", no_args_is_help=True
)


@app.command("report")
@reports_errors
def report(
    project_dir: ProjectOption = Path("."),
    out: Annotated[
        Path | None, typer.Option(help="Folder for quality.html and quality.json (default: reports/).")
    ] = None,
    resamples: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 300,
) -> None:
    """Write the HTML quality report with plots, and the same figures as JSON."""
    from apprentice.project import open_project
    from apprentice.quality.report import analyse, write_report

    project = open_project(project_dir)
    try:
        judgments = project.store.quality_judgments()
        with console.status(f"Analysing {len(judgments)} judgments"):
            analysis = analyse(judgments, prompts_by_category=project.store.prompt_categories(), resamples=resamples)
            html_path, json_path = write_report(analysis, out or project.root / "reports")
        judges_path = _judges_report(project, out or project.root / "reports")
    finally:
        project.close()
    alpha = analysis["agreement"]["pairs"]["alpha_nominal"]
    shown_alpha = describe_rate(alpha["value"], alpha["units"], low=alpha["low"], high=alpha["high"], digits=3)
    console.print(
        f"{analysis['judgments']} judgments; Krippendorff's alpha (pairs) {shown_alpha}; "
        f"{len(analysis['flags'])} flags",
        highlight=False,
    )
    console.print(f"Report: {html_path}\nFigures: {json_path}")
    if judges_path is not None:
        console.print(f"Machine judges against people: {judges_path}")


def _judges_report(project: Project, folder: Path) -> Path | None:
    """The machine judges' calibration against people, beside the quality report (None without judges)."""
    if not project.store.judges():
        return None
    from apprentice.judges.jobs import calibrate_and_report

    return calibrate_and_report(project, folder)[1]


@app.command("flags")
@reports_errors
def flags(project_dir: ProjectOption = Path(".")) -> None:
    """List flagged annotators and why."""
    from apprentice.project import open_project
    from apprentice.quality.flags import check_annotators

    project = open_project(project_dir)
    try:
        checks = check_annotators(project.store.quality_judgments())
    finally:
        project.close()
    if not checks.flags:
        console.print(f"No annotator flagged ({len(checks.judgments_per_annotator)} annotators checked).")
    for flag in checks.flags:
        console.print(f"{flag.annotator}\t{flag.kind}\t{flag.message}", highlight=False)


@app.command("weights")
@reports_errors
def weights(
    project_dir: ProjectOption = Path("."),
    exclude_flagged: Annotated[bool, typer.Option(help="Give flagged annotators' judgments weight 0.")] = True,
    length_controlled: Annotated[bool, typer.Option(help="Weight length out of the preferences.")] = False,
    dry_run: Annotated[bool, typer.Option(help="Show the weights' summary without storing them.")] = False,
) -> None:
    """Compute a training weight per judgment from reliability, position bias and flags, and store it.

    Each run is recorded (kind `quality`) with the weights it set, so a reward run trained on them can name them."""
    from apprentice.project import open_project
    from apprentice.quality.correction import CorrectionSettings, correct
    from apprentice.quality.flags import check_annotators

    project = open_project(project_dir)
    try:
        judgments = project.store.quality_judgments()
        checks = check_annotators(judgments)
        correction = correct(
            judgments, checks, CorrectionSettings(exclude_flagged=exclude_flagged, length_controlled=length_controlled)
        )
        if not dry_run:
            config = {
                "source": "annotators",
                "exclude_flagged": exclude_flagged,
                "length_controlled": length_controlled,
            }
            with project.store.recording_run("quality", config) as run:
                project.store.set_judgment_weights(correction.weights, run_id=run.id)
                run.metrics = {"judgments": len(correction.weights), "excluded": sorted(correction.excluded_annotators)}
    finally:
        project.close()
    zero = sum(1 for weight in correction.weights.values() if weight == 0)
    console.print(
        f"{'Would set' if dry_run else 'Set'} weights on {len(correction.weights)} judgments "
        f"({zero} at 0 from {len(correction.excluded_annotators)} excluded annotators)"
    )
