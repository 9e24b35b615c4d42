"""The main job on the embedded defaults, as `make demo` runs it.

Until the studio, reward and policy steps land, the job is step 1 of the loop: a fresh project,
the bundled prompts, candidates from the default model, and comparisons ready for people to judge.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

from apprentice.generation import generate_for_project
from apprentice.importing import read_import_file
from apprentice.models import cache_dir, resolve_model
from apprentice.project import init_project

DEMO_PROMPTS = 48  # enough for varied samples, small enough for a couple of minutes on a laptop CPU


def bundled_prompts_path() -> Path:
    return Path(str(files("apprentice") / "data" / "prompts.jsonl"))


def run_demo(folder: Path, *, model_name: str = "default", limit: int | None = None, console: Console) -> None:
    console.rule("Apprentice demo: candidates for people to compare")
    project = init_project(folder)
    console.print(f"1. Project created in [bold]{folder}[/] (store: {project.database_url})")
    parsed = read_import_file(bundled_prompts_path())
    imported = project.store.import_prompts(parsed.prompts, parsed.pairs, source="bundled")
    console.print(f"2. Imported {imported.prompts_added} bundled prompts")
    console.print(f"3. Preparing the model '{model_name}' (first use converts it once; cache: {cache_dir()})")
    location = resolve_model(model_name)
    console.print(f"   model folder: {location}")
    count = limit or DEMO_PROMPTS
    console.print(f"4. Generating {project.settings.generation.candidates} candidates for {count} prompts")
    summary = generate_for_project(project, model_name=model_name, limit=count)
    console.print(
        f"   {summary.responses_stored} distinct responses, {summary.comparisons} comparisons, "
        f"{summary.new_tokens} tokens at {summary.tokens_per_second:.1f} tok/s"
    )
    _show_samples(project, console)
    totals = project.store.summary()
    table = Table(title="What the store holds", show_header=False)
    for name, value in vars(totals).items():
        table.add_row(name, str(value))
    console.print(table)
    console.print(
        f"Everything is in [bold]{folder}[/]: apprentice.toml (settings) and the store ({project.database_url}).\n"
        f"Next: `apprentice status -p {folder}`, `apprentice export preferences -p {folder}` once judgments exist."
    )
    project.close()


def _show_samples(project: object, console: Console, count: int = 3) -> None:
    store = project.store  # type: ignore[attr-defined]
    comparisons = store.comparisons()[:count]
    prompts = {prompt.id: prompt for prompt in store.prompts()}
    for comparison in comparisons:
        responses = {response.id: response.text for response in store.responses_for(comparison.prompt_id)}
        body = f"[bold]Prompt:[/] {prompts[comparison.prompt_id].text}\n"
        for member in comparison.members:
            label = chr(ord("A") + member.position)
            body += f"\n[bold]{label}:[/] {responses[member.response_id]}\n"
        console.print(Panel(body.rstrip(), title=f"comparison {comparison.id} ({comparison.kind})"))
