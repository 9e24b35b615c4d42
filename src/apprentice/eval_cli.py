"""`apprentice eval POLICY [POLICY ...]`: compare policies on the held-out prompts. Thin: parse, call, print."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from apprentice.cli_common import ProjectOption, console, reports_errors


@reports_errors
def evaluate(
    policies: Annotated[
        list[str],
        typer.Argument(
            help="Policies: a stored policy's name (as `policy train` printed it), a folder or 'default'. "
            "The first is the base: KL and win rates are measured against it.",
            show_default=False,
        ),
    ],
    project_dir: ProjectOption = Path("."),
    reward: Annotated[
        list[str] | None,
        typer.Option(
            help="Reward to score with (repeatable, summed), as `policy train --reward` takes it "
            "(default: the project's newest reward run)."
        ),
    ] = None,
    oracle: Annotated[
        str | None,
        typer.Option(help="Gold oracle, or 'none' (default: loop.oracle when loop.annotators > 0)."),
    ] = None,
    samples: Annotated[int, typer.Option(help="Answers per prompt and policy.")] = 2,
    max_new_tokens: Annotated[int, typer.Option(help="Longest answer in tokens.")] = 48,
    temperature: Annotated[float, typer.Option(help="Sampling temperature (KL is measured at it).")] = 0.7,
    seed: Annotated[int, typer.Option(help="Random seed, the same for every policy.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Prompts per batch.")] = 8,
    limit: Annotated[int | None, typer.Option(help="Only the first N held-out prompts.")] = None,
    out: Annotated[Path | None, typer.Option(help="Also write the results JSON here.")] = None,
) -> None:
    """Evaluate policies on the project's held-out prompts: reward, gold score, win rates against the first
    policy with 95% intervals, KL from it, and answer length. Writes runs/eval-N/eval.json."""
    import json

    from apprentice.files import write_text_atomically
    from apprentice.policy_eval import EvalOptions, evaluate_policies
    from apprentice.project import open_project

    options = EvalOptions(samples, max_new_tokens, temperature, seed, batch_size, limit)
    project = open_project(project_dir)
    try:
        results, folder = evaluate_policies(
            project,
            policies,
            reward_specs=reward,
            oracle=oracle,
            options=options,
            say=lambda line: console.print(f"Sampling {escape(line)}", highlight=False),
        )
    finally:
        project.close()
    if out is not None:
        write_text_atomically(out, json.dumps(results, indent=2) + "\n")
    console.print(results_table(results))
    scored_by = "reward " + ", ".join(results["reward"]) if results["reward"] else "no reward model (give --reward)"
    gold = f"gold oracle {results['oracle']}" if results["oracle"] else "no gold oracle"
    console.print(
        f"{results['prompts']} held-out prompts, {results['answers_per_policy']} answers a policy; {scored_by}; "
        f"{gold}. Results: {folder / 'eval.json'}" + (f" and {out}" if out else ""),
        highlight=False,
        markup=False,
    )


def results_table(results: dict[str, Any]) -> Table:
    from apprentice.policy_eval import RESULT_COLUMNS, result_cells

    table = Table(title=f"Policies on held-out prompts (base: {escape(results['base'])})")
    for column in RESULT_COLUMNS:
        table.add_column(column, overflow="fold")  # a long policy name or folder is shown whole
    for row in results["results"]:
        table.add_row(*(escape(cell) for cell in result_cells(row)))
    return table
