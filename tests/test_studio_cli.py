"""`apprentice annotators ...` and `apprentice studio` through the CLI runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from apprentice.cli import app
from apprentice.project import init_project, open_project
from studio_fixtures import studio_client

runner = CliRunner()


def test_annotators_add_prints_a_working_link_and_disable_cuts_access_until_enabled(tmp_path: Path) -> None:
    root = tmp_path / "project"
    init_project(root).close()
    added = runner.invoke(app, ["annotators", "add", "alice", "-p", str(root)])
    assert added.exit_code == 0, added.output
    link = added.output.split()[-1]
    assert link.startswith("http://127.0.0.1:8000/signin/")
    admin = runner.invoke(app, ["annotators", "add", "root", "--admin", "-p", str(root)])
    assert admin.exit_code == 0 and "Added admin root" in admin.output
    again = runner.invoke(app, ["annotators", "add", "alice", "-p", str(root)])
    assert again.exit_code == 1 and "exists already" in again.output

    project = open_project(root)
    client = studio_client(project.store)
    page = client.get(link.removeprefix("http://127.0.0.1:8000"))
    assert page.status_code == 200 and "Sign in as alice" in page.text
    project.close()

    disabled = runner.invoke(app, ["annotators", "disable", "alice", "-p", str(root)])
    assert disabled.exit_code == 0, disabled.output
    project = open_project(root)
    assert project.store.annotator_account(name="alice").disabled  # type: ignore[union-attr]
    assert studio_client(project.store).get(link.removeprefix("http://127.0.0.1:8000")).status_code == 400
    project.close()
    missing = runner.invoke(app, ["annotators", "disable", "nobody", "-p", str(root)])
    assert missing.exit_code == 1 and "no annotator named 'nobody'" in missing.output
    listed = runner.invoke(app, ["annotators", "list", "-p", str(root)])
    assert "alice" in listed.output and "disabled" in listed.output and "root" in listed.output

    enabled = runner.invoke(app, ["annotators", "enable", "alice", "-p", str(root)])
    assert enabled.exit_code == 0 and "apprentice annotators link alice" in enabled.output
    project = open_project(root)
    assert not project.store.annotator_account(name="alice").disabled  # type: ignore[union-attr]
    project.close()
    missing = runner.invoke(app, ["annotators", "enable", "nobody", "-p", str(root)])
    assert missing.exit_code == 1 and "no annotator named 'nobody'" in missing.output


def test_studio_refuses_several_workers_on_sqlite(tmp_path: Path) -> None:
    root = tmp_path / "project"
    init_project(root).close()
    result = runner.invoke(app, ["studio", "-p", str(root), "--workers", "2"])
    assert result.exit_code == 1
    assert "--workers above 1 needs a PostgreSQL store" in result.output
