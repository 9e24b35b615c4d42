"""One HTML report of a whole loop run: curves per round, proxy against gold as KL grows, feedback quality,
samples.

Plots are drawn with matplotlib and embedded in the page as PNG data, so the report is a single file
that opens anywhere, offline. The same figures are written beside it as JSON, and the feedback-quality
report of every judgment so far (`apprentice.quality.report`) beside it in `quality/`, linked from it.
"""

from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from apprentice.evaluation import load_samples
from apprentice.files import write_text_atomically
from apprentice.rates import describe_rate, trustworthy
from apprentice.store.rounds import RoundState

if TYPE_CHECKING:
    from apprentice.project import Project


def _figure_png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def labels_so_far(rows: list[dict[str, Any]]) -> list[int]:
    """Judgments in the store when each round's collection ended; for rounds recorded before that was kept,
    the running sum of the rounds' own counts (which leaves out later answers to earlier rounds' comparisons)."""
    if all(row.get("labels_so_far") is not None for row in rows):
        return [int(row["labels_so_far"]) for row in rows]
    totals, total = [], 0
    for row in rows:
        total += row["labels"] or 0
        totals.append(total)
    return totals


def round_figures(states: list[RoundState]) -> list[dict[str, Any]]:
    """The numbers behind the report, one row per finished round."""
    rows = []
    for state in states:
        evaluation = state.outputs.get("evaluate")
        if evaluation is None:
            continue
        new = evaluation["new"]
        reward = state.outputs.get("reward", {})
        rows.append(
            {
                "round": state.number,
                "labels": state.outputs.get("collect", {}).get("judgments"),
                "labels_so_far": state.outputs.get("collect", {}).get("judgments_in_store"),
                "reward_accuracy": reward.get("accuracy"),
                "reward_validation_pairs": reward.get("validation_pairs"),
                "reward_validation_prompts": reward.get("validation_prompts"),
                "reward_accuracy_low": reward.get("accuracy_low"),
                "reward_accuracy_high": reward.get("accuracy_high"),
                "reward_gold_accuracy": evaluation.get("reward_gold_accuracy"),
                "flagged": state.outputs.get("quality", {}).get("flagged", []),
                "agreement": state.outputs.get("quality", {}).get("agreement"),
                "agreement_units": state.outputs.get("quality", {}).get("agreement_units"),
                "alpha": state.outputs.get("quality", {}).get("alpha"),
                "kl_from_base": new["kl_from_base"],
                "proxy_reward": new["reward_mean"],
                "gold": new["gold_mean"],
                "base_gold": evaluation["base"]["gold_mean"],
                "base_proxy_reward": evaluation["base"]["reward_mean"],
                "length": new["length_mean"],
                "win_rate_vs_base_gold": evaluation.get("win_rate_vs_base_gold"),
                "win_rate_vs_base_reward": evaluation.get("win_rate_vs_base_reward"),
                "win_rate_vs_previous_gold": evaluation.get("win_rate_vs_previous_gold"),
                "win_rate_vs_previous_reward": evaluation.get("win_rate_vs_previous_reward"),
            }
        )
    return rows


def report_plots(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = [row["round"] for row in rows]
    images = []
    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(rounds, [row["proxy_reward"] for row in rows], "o-", label="proxy (reward model)")
    if all(row["gold"] is not None for row in rows):
        axis.plot(rounds, [row["gold"] for row in rows], "s-", label="gold (oracle)")
        axis.axhline(rows[0]["base_gold"], color="grey", linestyle=":", label="base policy, gold")
    _by_round(axis, "mean score on held-out prompts")
    images.append(("Reward and gold score by round", _close(figure)))

    # Gains over the base policy, each round's proxy measured by that round's reward model on both policies
    # (the reward models differ between rounds, their raw scales do not compare): the base sits at (0, 0).
    figure, axis = plt.subplots(figsize=(6, 3.6))
    kl = [0.0] + [row["kl_from_base"] for row in rows]
    axis.plot(kl, [0.0] + [row["proxy_reward"] - row["base_proxy_reward"] for row in rows], "o-", label="proxy")
    if all(row["gold"] is not None for row in rows):
        axis.plot(kl, [0.0] + [row["gold"] - row["base_gold"] for row in rows], "s-", label="gold")
    axis.axhline(0.0, color="grey", linestyle=":")
    axis.set_xlabel("KL(policy || base), nats")
    axis.set_ylabel("gain over the base policy")
    axis.set_title("Over-optimization shows as gold falling while proxy rises")
    axis.legend()
    images.append(("Proxy and gold against KL", _close(figure)))

    figure, axis = plt.subplots(figsize=(6, 3.6))
    axis.plot(labels_so_far(rows), [row["reward_accuracy"] for row in rows], "o-")
    axis.set_xlabel("labels so far")
    axis.set_ylabel("reward-model accuracy, cross-validated\n(against the annotators' labels)")
    images.append(("Label efficiency", _close(figure)))

    if any(row.get("agreement") is not None for row in rows):
        from apprentice.simulate import HUMAN_AGREEMENT

        figure, axis = plt.subplots(figsize=(6, 3.6))
        for key, marker, label in (("agreement", "o-", "raw agreement"), ("alpha", "s-", "Krippendorff's alpha")):
            axis.plot(rounds, [_nan_if_none(row.get(key)) for row in rows], marker, label=label)
        axis.axhline(HUMAN_AGREEMENT, color="grey", linestyle=":", label=f"people's agreement ({HUMAN_AGREEMENT:.0%})")
        _by_round(axis, "on the round's comparisons")
        images.append(("Annotator agreement by round", _close(figure)))
    return images


def _by_round(axis: Any, ylabel: str) -> None:
    from matplotlib.ticker import MaxNLocator

    axis.set_xlabel("round")
    axis.xaxis.set_major_locator(MaxNLocator(integer=True))
    axis.set_ylabel(ylabel)
    axis.legend()


def _close(figure: Any) -> str:
    """The figure as PNG data, and its memory given back."""
    import matplotlib.pyplot as plt

    data = _figure_png(figure)
    plt.close(figure)
    return data


def _nan_if_none(value: float | None) -> float:
    return float("nan") if value is None else value


def _samples_table(folder: Path, last_round: int) -> str:
    before = folder / "round-1" / "eval-base.jsonl"
    after = folder / f"round-{last_round}" / "eval-new.jsonl"
    if not (before.is_file() and after.is_file()):
        return ""
    rows = []
    for old, new in list(zip(load_samples(before), load_samples(after), strict=False))[:8]:
        rows.append(
            f"<tr><td>{html.escape(old['prompt'])}</td><td>{html.escape(old['completion'])}</td>"
            f"<td>{html.escape(new['completion'])}</td></tr>"
        )
    return (
        "<h2>Sample responses, base policy and last round</h2><table><tr><th>prompt</th><th>before</th>"
        "<th>after</th></tr>" + "".join(rows) + "</table>"
    )


def write_report(project: Project, path: Path | None = None) -> Path:
    """Write `loop/report.html` (and `loop/report.json`) for the project's finished rounds."""
    from apprentice.errors import ApprenticeError
    from apprentice.loop import LOOP_FOLDER

    states = project.store.rounds()
    rows = round_figures(states)
    if not rows:
        raise ApprenticeError("no round has been evaluated yet; run `apprentice loop` first")
    folder = project.root / LOOP_FOLDER
    path = path or folder / "report.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    table = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(cell)}</td>"
            for cell in (
                _cell(row["round"]),
                _cell(row["labels"]),
                accuracy_cell(row),
                rate_cell(row.get("reward_gold_accuracy")),
                *(_cell(row[key]) for key in ("kl_from_base", "proxy_reward", "gold", "length")),
                rate_cell(row["win_rate_vs_base_gold"] or row["win_rate_vs_base_reward"]),
                rate_cell(row["win_rate_vs_previous_gold"] or row["win_rate_vs_previous_reward"]),
                agreement_cell(row),
                ", ".join(row["flagged"]) or "-",
            )
        )
        + "</tr>"
        for row in rows
    )
    images = "".join(
        f"<figure><img alt='{html.escape(title)}' src='data:image/png;base64,{data}'>"
        f"<figcaption>{html.escape(title)}</figcaption></figure>"
        for title, data in report_plots(rows)
    )
    judges = judges_section(states, path.parent)
    samples = _samples_table(folder, rows[-1]["round"])
    page = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Apprentice loop report</title>
<style>body{{font-family:system-ui,sans-serif;max-width:1000px;margin:2em auto;padding:0 1em}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:4px 6px;vertical-align:top;
font-size:14px}}figure{{display:inline-block;margin:1em}}</style></head><body>
<h1>Apprentice: {html.escape(project.settings.project.name)}</h1>
<p>{len(rows)} {"round" if len(rows) == 1 else "rounds"}. Scores are means over the held-out prompts; win rates
are each round's policy against the base policy and against the previous round's (by the gold oracle when
simulated, else by that round's reward model), with their 95% intervals (a bootstrap over the prompts, whose
answers are not independent) and the number of answers compared; a rate on fewer than 20 items reads "too
little data". Round 1's previous policy is the base.</p>
<table><tr><th>round</th><th>labels</th><th>reward accuracy (labels, cross-validated)</th>
<th>reward accuracy vs gold (held-out answers)</th><th>KL from base</th><th>proxy reward</th>
<th>gold</th><th>length (tokens)</th><th>win rate vs base</th><th>win rate vs previous</th>
<th>agreement (alpha)</th><th>flagged annotators</th></tr>{table}</table>
{_write_quality_report(project, path.parent)}{judges}{images}{samples}</body></html>"""
    write_text_atomically(path, page)
    write_text_atomically(path.with_suffix(".json"), json.dumps(rows, indent=2) + "\n")
    return path


def judges_section(states: list[RoundState], folder: Path) -> str:
    """Machine judges by round: what they labelled, what they settled (people's labels saved), and how far they
    agree with people (the quality step's calibration); empty when the loop used no judge."""
    rows = []
    for state in states:
        routing = (state.outputs.get("collect") or {}).get("judges")
        calibrated = (state.outputs.get("quality") or {}).get("judges") or {}
        if not routing and not calibrated:
            continue
        routing = routing or {}
        people = (state.outputs.get("collect") or {}).get("judgments")
        judges = "; ".join(
            f"{name}: agreement {_share_text(figures.get('agreement'), figures.get('shared_with_people', 0))}, "
            f"weight {figures.get('weight', 0):.2f}"
            + (f" ({'; '.join(figures['flags'])})" if figures.get("flags") else "")
            for name, figures in calibrated.items()
        )
        cells = (state.number, people, routing.get("judge_labels"), routing.get("offered"), routing.get("settled"))
        rows.append("<tr>" + "".join(f"<td>{html.escape(_cell(cell))}</td>" for cell in cells))
        rows[-1] += f"<td>{html.escape(judges or '-')}</td></tr>"
    if not rows:
        return ""
    link = (
        " Each judge's errors, with examples: <a href='quality/judges.html'>quality/judges.html</a>."
        if (folder / "quality" / "judges.html").is_file()
        else ""
    )
    return (
        "<h2>Machine judges</h2><p>Judges label the comparisons the reward ensemble is surest about before people"
        " do; a confident label settles a comparison, which saves a person's label; people also judge an audit"
        f" share so that the judges' agreement with them stays measured.{link}</p>"
        "<table><tr><th>round</th><th>people's labels</th><th>judges' labels</th><th>offered to judges</th>"
        "<th>settled by judges (people's labels saved)</th><th>agreement with people, weight</th></tr>"
        + "".join(rows)
        + "</table>"
    )


def _share_text(share: float | None, count: int) -> str:
    return "no shared items" if not count else describe_rate(share, count)


def _write_quality_report(project: Project, folder: Path) -> str:
    """The feedback-quality report of every judgment so far, in `quality/` in the loop report's folder; a link
    to it (relative, so the folder can be moved or copied whole)."""
    from apprentice.quality.report import analyse
    from apprentice.quality.report import write_report as write_quality_report

    judgments = project.store.quality_judgments()
    if not judgments:
        return ""
    analysis = analyse(judgments, prompts_by_category=project.store.prompt_categories())
    write_quality_report(analysis, folder / "quality", title="Feedback quality of the loop's judgments")
    return (
        f"<p>Feedback quality of all {len(judgments)} judgments (agreement, annotator reliability, position and "
        f"length bias, coverage, {len(analysis['flags'])} flags): "
        "<a href='quality/quality.html'>quality/quality.html</a></p>"
    )


def step_summary(step: str, output: dict[str, Any]) -> str | None:
    """One line on what a loop step found, each rate with its count: the reward model's validation accuracy,
    the new policy's win rates against the base."""
    if step == "reward" and output.get("accuracy") is not None:
        # a round recorded before the interval over prompts was kept gets Wilson's on its pairs
        accuracy = describe_rate(
            output["accuracy"],
            output.get("validation_pairs"),
            low=output.get("accuracy_low"),
            high=output.get("accuracy_high"),
            prompts=output.get("validation_prompts"),
            digits=3,
        )
        return f"reward accuracy on the labels, cross-validated over prompts: {accuracy}"
    if step == "evaluate":
        shown = [
            f"win rate vs base by {judge} {rate_cell(output[key])}"
            for judge, key in (("gold", "win_rate_vs_base_gold"), ("reward", "win_rate_vs_base_reward"))
            if output.get(key)
        ]
        return "; ".join(shown) or None
    return None


def agreement_cell(row: dict[str, Any]) -> str:
    """Raw agreement on the round's comparisons judged twice or more (Krippendorff's alpha beside it), or
    "too little data" on fewer than 20 of them."""
    if row.get("agreement") is None:
        return "-"
    units = row.get("agreement_units")
    # a round recorded before the count was kept shows the figure as it was, saying so
    shown = f"{row['agreement']:.2f} (n not recorded)" if units is None else describe_rate(row["agreement"], units)
    alpha = row.get("alpha")
    return shown + ("" if alpha is None or not trustworthy(units) else f"; alpha {alpha:.2f}")


def accuracy_cell(row: dict[str, Any]) -> str:
    """The reward model's accuracy on the labels, with the pairs it rests on: each pair scored by heads that
    did not see its prompt (the loop's cross-validation), a noisy figure while the labels are few."""
    if row["reward_accuracy"] is None:
        return "-"
    return describe_rate(
        row["reward_accuracy"],
        row.get("reward_validation_pairs"),
        low=row.get("reward_accuracy_low"),
        high=row.get("reward_accuracy_high"),
        prompts=row.get("reward_validation_prompts"),
        digits=3,
    )


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3f}"
    return "-" if value is None else str(value)


def rate_cell(rate: dict[str, Any] | None) -> str:
    """A rate as stored by the loop's evaluation (rate, low, high, n), shown with its stored interval: for the
    win rates a bootstrap over prompts, which a Wilson interval on n answers would understate."""
    if not rate:
        return "-"
    return describe_rate(
        rate["rate"], rate.get("n"), low=rate.get("low"), high=rate.get("high"), prompts=rate.get("prompts")
    )
