"""`apprentice studio` and `apprentice annotators ...`: thin commands over the studio and the store."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apprentice.cli_common import ProjectOption, console, reports_errors
from apprentice.studio.crowd_cli import attention_app, study_app

studio_app: typer.Typer = typer.Typer(help="Serve the feedback studio.", invoke_without_command=True)
studio_app.add_typer(study_app, name="study")
studio_app.add_typer(attention_app, name="attention")
annotators_app: typer.Typer = typer.Typer(
    help="People who judge: add them, give them sign-in links, disable them.", no_args_is_help=True
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
    from apprentice.studio.security import issue_signin_link

    project = open_project(project_dir)
    settings = project.settings.studio
    account = project.store.add_studio_annotator(name, role="admin" if admin else "annotator")
    link = issue_signin_link(
        project.store, account, public_url=settings.public_url, valid_hours=settings.signin_link_hours
    )
    console.print(f"Added {account.role} {account.name}. One-time sign-in link (valid {settings.signin_link_hours} h):")
    console.print(link, soft_wrap=True, highlight=False)
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
    settings = project.settings.studio
    url = issue_signin_link(
        project.store, account, public_url=settings.public_url, valid_hours=settings.signin_link_hours
    )
    console.print(url, soft_wrap=True, highlight=False)
    project.close()


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
