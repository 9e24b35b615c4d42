"""`apprentice studio study ...` and `apprentice studio attention ...`: crowd studies and attention checks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apprentice.cli_common import ProjectOption, console, reports_errors

study_app: typer.Typer = typer.Typer(
    help="Crowd studies (Prolific-style): an entry link with a quota, a completion code, payment export.",
    no_args_is_help=True,
)
attention_app: typer.Typer = typer.Typer(help="Attention checks: items with an obvious answer.", no_args_is_help=True)


@study_app.command("create")
@reports_errors
def create(
    name: Annotated[str, typer.Argument(help="A short name: letters, digits, '-', '_' or '.'.")],
    quota: Annotated[int, typer.Option(help="How many participants may start.", min=1)],
    completion_code: Annotated[str, typer.Option(help="The code participants get when done.")],
    items: Annotated[
        int, typer.Option(help="Judgments per participant (checks included) before the code.", min=1)
    ] = 20,
    completion_url: Annotated[
        str | None,
        typer.Option(
            help="Where 'Return to the study platform' leads, e.g. https://app.prolific.com/submissions/complete?cc=CODE."
        ),
    ] = None,
    project_dir: ProjectOption = Path("."),
) -> None:
    """Create a study and print its entry link (shown once; paste it as the study URL on the platform)."""
    from apprentice.project import open_project
    from apprentice.studio.addresses import link_base
    from apprentice.studio.crowd import create_study

    project = open_project(project_dir)
    try:
        study, link = create_study(
            project.store,
            name,
            quota=quota,
            items=items,
            completion_code=completion_code,
            completion_url=completion_url,
            public_url=link_base(project.settings.studio, project_root=project.root),
        )
    finally:
        project.close()
    console.print(f"Study {study.name}: {study.quota} participants, {study.items} judgments each. Entry link:")
    console.print(link, soft_wrap=True, highlight=False, markup=False)


@study_app.command("list")
@reports_errors
def list_studies(project_dir: ProjectOption = Path(".")) -> None:
    """Studies with their participants, completions and quota."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        for study in project.store.studies():
            console.print(
                f"{study.name:24} {study.participants} of {study.quota} started, {study.completed} completed, "
                f"{study.items} items each, code {study.completion_code}",
                markup=False,
            )
    finally:
        project.close()


@study_app.command("export")
@reports_errors
def export(
    name: Annotated[str, typer.Argument(help="The study's name.")],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="CSV file to write (default: print).")] = None,
    project_dir: ProjectOption = Path("."),
) -> None:
    """Items done and time spent per participant, as CSV, for payment."""
    from apprentice.errors import ApprenticeError
    from apprentice.files import write_text_atomically
    from apprentice.project import open_project
    from apprentice.studio.crowd import payments_csv

    project = open_project(project_dir)
    try:
        study = project.store.study(name=name)
        if study is None:
            raise ApprenticeError(f"no study named {name!r}")
        text = payments_csv(project.store.study_payments(study.id))
    finally:
        project.close()
    if output is None:
        typer.echo(text, nl=False)
    else:
        write_text_atomically(output, text)
        console.print(f"Wrote {text.count(chr(10)) - 1} participants to {output}")


@attention_app.command("add")
@reports_errors
def add_attention(
    count: Annotated[int, typer.Option(help="How many attention checks to make.", min=1)] = 10,
    text: Annotated[str | None, typer.Option(help="The obviously bad response (default: a canned one).")] = None,
    seed: Annotated[int, typer.Option(help="Which prompts and sides are drawn.")] = 0,
    project_dir: ProjectOption = Path("."),
) -> None:
    """Make attention checks: a real response against an obviously bad canned text, the real one right.

    They are drawn at `[studio] attention_rate`, never used for training, and failures are flagged.
    """
    from apprentice.project import open_project
    from apprentice.store.crowd import CANNED_BAD_TEXT

    project = open_project(project_dir)
    try:
        created = project.store.add_attention_checks(count, text=text or CANNED_BAD_TEXT, seed=seed)
    finally:
        project.close()
    console.print(f"Made {len(created)} attention checks (comparisons {created[0]}-{created[-1]}).")
