"""`apprentice studio` and `apprentice annotators ...`: thin commands over the studio and the store."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from apprentice.cli_common import ProjectOption, console, errors, reports_errors
from apprentice.studio.crowd_cli import attention_app, study_app

if TYPE_CHECKING:
    from apprentice.project import Project

studio_app: typer.Typer = typer.Typer(help="Serve the feedback studio.", invoke_without_command=True)
studio_app.add_typer(study_app, name="study")
studio_app.add_typer(attention_app, name="attention")
annotators_app: typer.Typer = typer.Typer(
    help="People who judge: add them, give them sign-in links, disable them.", no_args_is_help=True
)
gold_app: typer.Typer = typer.Typer(
    help="Gold items: comparisons with a known answer, which score annotators (see [studio] gold_rate).",
    no_args_is_help=True,
)


@studio_app.callback()
@reports_errors
def studio(
    context: typer.Context,
    project_dir: ProjectOption = Path("."),
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes (above 1 only with PostgreSQL).", min=1, max=64)] = 1,
) -> None:
    """Serve the studio on the project's store (Ctrl+C stops it)."""
    if context.invoked_subcommand is not None:
        return  # `apprentice studio study ...` and the like: no server
    from apprentice.studio.server import serve

    console.print(f"Studio for {project_dir} on http://{host}:{port} ({workers} worker{'s' if workers > 1 else ''})")
    serve(project_dir, host=host, port=port, workers=workers, log_level="info")


@annotators_app.command("add")
@reports_errors
def add(
    name: Annotated[str, typer.Argument(help="A unique name for the person.")],
    project_dir: ProjectOption = Path("."),
    admin: Annotated[bool, typer.Option("--admin", help="May see the dashboard and manage annotators.")] = False,
) -> None:
    """Add an annotator and print their one-time sign-in link."""
    from apprentice.project import open_project
    from apprentice.studio.addresses import link_base
    from apprentice.studio.security import issue_signin_link

    project = open_project(project_dir)
    settings = project.settings.studio
    account = project.store.add_studio_annotator(name, role="admin" if admin else "annotator")
    link = issue_signin_link(
        project.store,
        account,
        public_url=link_base(settings, project_root=project.root),
        valid_hours=settings.signin_link_hours,
    )
    console.print(f"Added {account.role} {account.name}. One-time sign-in link (valid {settings.signin_link_hours} h):")
    console.print(link, soft_wrap=True, highlight=False)
    _warn_about_public_url(project)
    project.close()


@annotators_app.command("link")
@reports_errors
def link(
    name: Annotated[str, typer.Argument(help="The annotator's name.")],
    project_dir: ProjectOption = Path("."),
) -> None:
    """Print a new one-time sign-in link for an annotator (the previous unused link stops working)."""
    from apprentice.errors import ApprenticeError
    from apprentice.project import open_project
    from apprentice.studio.security import issue_signin_link

    project = open_project(project_dir)
    account = project.store.annotator_account(name=name)
    if account is None or account.kind != "human":
        project.close()
        raise ApprenticeError(f"no annotator named {name!r}")
    if account.disabled:
        project.close()
        raise ApprenticeError(f"{name} is disabled; enable them first with `apprentice annotators enable {name}`")
    from apprentice.studio.addresses import link_base

    settings = project.settings.studio
    url = issue_signin_link(
        project.store,
        account,
        public_url=link_base(settings, project_root=project.root),
        valid_hours=settings.signin_link_hours,
    )
    console.print(url, soft_wrap=True, highlight=False)
    _warn_about_public_url(project)
    project.close()


def _warn_about_public_url(project: Project) -> None:
    from apprentice.studio.addresses import setting_disagrees

    warning = setting_disagrees(project.settings.studio, project.root)
    if warning:
        errors.print(warning, soft_wrap=True, highlight=False)


@annotators_app.command("disable")
@reports_errors
def disable(
    name: Annotated[str, typer.Argument(help="The annotator's name.")],
    project_dir: ProjectOption = Path("."),
) -> None:
    """Cut an annotator's access at once: their sessions and API token stop working, their tasks return."""
    _set_disabled(project_dir, name, True)
    console.print(f"Disabled {name}: their sessions and API token no longer work.")


@annotators_app.command("enable")
@reports_errors
def enable(
    name: Annotated[str, typer.Argument(help="The annotator's name.")],
    project_dir: ProjectOption = Path("."),
) -> None:
    """Let a disabled annotator back in (they need a new sign-in link: `apprentice annotators link`)."""
    _set_disabled(project_dir, name, False)
    console.print(f"Enabled {name}. Give them a new link: apprentice annotators link {name}")


def _set_disabled(project_dir: Path, name: str, disabled: bool) -> None:
    from apprentice.project import open_project

    project = open_project(project_dir)
    try:
        project.store.set_annotator_disabled(name, disabled)
    finally:
        project.close()


@annotators_app.command("list")
@reports_errors
def list_annotators(project_dir: ProjectOption = Path(".")) -> None:
    """Annotators with their role and status."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    for account in project.store.annotator_accounts():
        console.print(f"{account.name:24} {account.role:10} {'disabled' if account.disabled else 'active'}")
    project.close()


@gold_app.command("set")
@reports_errors
def gold_set(
    comparison_id: Annotated[int, typer.Argument(help="The comparison's id (the admin's Gold page shows it).", min=1)],
    answer: Annotated[
        str,
        typer.Argument(
            help="About the responses in stored order (A first): a pair's A, B, tie or both_bad; "
            "a ranking's ranks, like 2,1,3; a rating's score, 1 to 7."
        ),
    ],
    project_dir: ProjectOption = Path("."),
) -> None:
    """Make a comparison a gold item with this known answer (a running studio uses it within a minute)."""
    from apprentice.errors import ApprenticeError
    from apprentice.project import open_project
    from apprentice.studio.answers import describe_answer, display_answer, gold_answer

    project = open_project(project_dir)
    try:
        shape = project.store.comparison_shapes([comparison_id]).get(comparison_id)
        if shape is None:
            raise ApprenticeError(f"no comparison with id {comparison_id}")
        gold = gold_answer(shape.kind, shape.size, answer.strip())
        project.store.set_gold_answers({comparison_id: gold})
    finally:
        project.close()
    said = describe_answer(shape.kind, display_answer(shape.kind, gold, list(range(shape.size))))
    console.print(f"Comparison {comparison_id} ({shape.kind}) is a gold item: {said}.")


@gold_app.command("import")
@reports_errors
def gold_import(
    file: Annotated[Path, typer.Argument(help='JSON Lines: {"comparison_id": 12, "answer": "A"} on each line.')],
    project_dir: ProjectOption = Path("."),
) -> None:
    """Set the known answers of many comparisons from a file; one bad line and nothing is imported."""
    from apprentice.project import open_project
    from apprentice.studio.gold_import import read_gold_file

    project = open_project(project_dir)
    try:
        answers = read_gold_file(file, project.store)
        project.store.set_gold_answers(answers)
    finally:
        project.close()
    console.print(f"{len(answers)} gold item{'s' if len(answers) != 1 else ''} set from {file}.")
