"""The quality report: every figure computed once, written as JSON and as an HTML page with plots.

`analyse` turns judgments into a plain dict (the JSON); `write_report` draws the plots from that dict
with matplotlib (Agg backend, PNGs embedded as base64 so the page is one file) and writes both files
atomically (written, then renamed).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from apprentice.files import write_text_atomically
from apprentice.quality.agreement import (
    agreement_by_annotator,
    alpha_with_distance,
    bootstrap_ci,
    fleiss_kappa,
    kendall_distance,
    krippendorff_alpha,
    pairwise_cohen_kappa,
    raw_agreement,
)
from apprentice.quality.bias import coverage, length_bias_of_table, position_bias, rating_harshness
from apprentice.quality.flags import FlagSettings, check_annotators
from apprentice.quality.pairs import pair_table, pair_units, ranking_units, rating_units
from apprentice.quality.reliability import dawid_skene_pairs
from apprentice.rates import trustworthy
from apprentice.store.quality_queries import QualityJudgment


def _clean(value: Any) -> Any:
    """JSON has no NaN: write null instead."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(key): _clean(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(item) for item in value]
    return value


def _grouped_alpha(judgments: Sequence[QualityJudgment], key: str, resamples: int) -> dict[str, Any]:
    groups: dict[str, list[QualityJudgment]] = defaultdict(list)
    for judgment in judgments:
        groups[str(getattr(judgment, key))].append(judgment)
    return {
        name: bootstrap_ci(pair_units(group), krippendorff_alpha, resamples=resamples).as_dict()
        for name, group in sorted(groups.items())
    }


def analyse(
    judgments: Sequence[QualityJudgment],
    *,
    prompts_by_category: Mapping[str | None, int] | None = None,
    settings: FlagSettings | None = None,
    resamples: int = 300,
) -> dict[str, Any]:
    """All quality figures for a set of judgments, as JSON-ready data (attention checks only in their flag)."""
    everything = judgments
    judgments = [judgment for judgment in judgments if judgment.purpose != "attention"]
    pair_judgments = [judgment for judgment in judgments if judgment.kind == "pair"]
    units = pair_units(pair_judgments)
    agreement: dict[str, Any] = {
        "pairs": {
            "alpha_nominal": bootstrap_ci(units, krippendorff_alpha, resamples=resamples).as_dict(),
            "raw_agreement": bootstrap_ci(units, raw_agreement, resamples=resamples).as_dict(),
            "fleiss_kappa": bootstrap_ci(units, fleiss_kappa, resamples=resamples).as_dict(),
            "cohen_kappa_pairs": [vars(pair) for pair in pairwise_cohen_kappa(units)],
            "by_annotator": {
                name: {"agreement": share, "pairs": pairs}
                for name, (share, pairs) in agreement_by_annotator(units).items()
            },
            "by_round": _grouped_alpha(pair_judgments, "round", resamples),
            "by_category": _grouped_alpha(pair_judgments, "category", resamples),
        }
    }
    ratings = rating_units(judgments)
    if ratings:
        agreement["ratings"] = {
            "alpha_ordinal": bootstrap_ci(
                ratings, lambda u: krippendorff_alpha(u, "ordinal"), resamples=resamples
            ).as_dict(),
            "alpha_interval": bootstrap_ci(
                ratings, lambda u: krippendorff_alpha(u, "interval"), resamples=resamples
            ).as_dict(),
        }
    rankings = ranking_units(judgments)
    if rankings:
        agreement["rankings"] = {
            "alpha_kendall": bootstrap_ci(
                rankings, lambda u: alpha_with_distance(u, kendall_distance), resamples=min(resamples, 100)
            ).as_dict()
        }

    checks = check_annotators(everything, settings)
    table = pair_table(judgments)
    reliability: dict[str, Any] = {"annotators": {}}
    for name, count in checks.judgments_per_annotator.items():
        reliability["annotators"][name] = {"judgments": count, "flags": [flag.kind for flag in checks.flags_for(name)]}
    for test in checks.tests:
        reliability["annotators"][test.annotator].update(
            {
                "skill": test.skill,
                "relative_skill": test.skill / test.reference_skill if test.reference_skill else None,
                "left_when_unsure": test.left_when_unsure,
                "left_share": test.left_share,
                "bias_p_value": test.bias_p_value,
                "low_skill_p_value": test.low_skill_p_value,
            }
        )
    if len(table):
        dawid = dawid_skene_pairs(table)
        for index, name in enumerate(table.annotators):
            reliability["annotators"][name]["dawid_skene_accuracy"] = float(dawid.accuracy[index])
    for name, (accuracy, items) in checks.gold_accuracy.items():
        reliability["annotators"][name]["gold_accuracy"] = {"accuracy": accuracy, "items": items}
    for name, (share, repeats) in checks.self_consistency.items():
        reliability["annotators"][name]["self_consistency"] = {"share": share, "repeats": repeats}
    for name, seconds in checks.median_seconds.items():
        reliability["annotators"][name]["median_seconds"] = seconds
    for name, (failed, answered) in checks.attention.items():
        entry = reliability["annotators"].setdefault(name, {"judgments": 0, "flags": []})
        entry["attention_checks"] = {"failed": failed, "answered": answered}
        entry["flags"] = [flag.kind for flag in checks.flags_for(name)]

    bias: dict[str, Any] = {}
    if len(table):
        overall, per_annotator = position_bias(table)
        bias["position"] = {"overall": overall.as_dict(), "by_annotator": [test.as_dict() for test in per_annotator]}
        bias["length"] = length_bias_of_table(table).as_dict()
    loose = pair_table(judgments, require_order=False)
    if len(loose) and not len(table):
        bias["length"] = length_bias_of_table(loose).as_dict()
    bias["harshness"] = [vars(item) for item in rating_harshness(judgments)]
    bias["coverage"] = coverage(judgments, prompts_by_category).as_dict()

    return _clean(
        {
            "judgments": len(judgments),
            "pair_judgments": {
                "decisive_with_order": len(table),
                "ties_or_both_bad": table.skipped_undecided,
                "unknown_order": table.skipped_unknown_order,
            },
            "agreement": agreement,
            "reliability": reliability,
            "bias": bias,
            "flags": [vars(flag) for flag in checks.flags],
            # Simes' test of the whole panel; where it is above panel_alpha the statistical flags are held back
            "panel_gate": {
                "p_value": checks.panel_p_value,
                "held_back": [vars(flag) for flag in checks.held_back],
                "annotators": len(checks.judgments_per_annotator),
                "annotators_tested": len(checks.tests),
                "min_judgments": (settings or FlagSettings()).min_judgments,
            },
        }
    )


# -- plots ----------------------------------------------------------------------------------------


def _png(figure: Any) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def error_lengths(values: Sequence[float], lows: Sequence[float], highs: Sequence[float]) -> list[list[float]]:
    """Lengths of error bars below and above each value, never negative (matplotlib refuses those): a bootstrap
    interval need not contain its estimate, and a value may sit exactly on its interval's end."""
    return [
        [max(0.0, value - low) for value, low in zip(values, lows, strict=True)],
        [max(0.0, high - value) for value, high in zip(values, highs, strict=True)],
    ]


def wrapped_labels(labels: Sequence[str], width: int = 14) -> list[str]:
    """Category names broken into lines of about `width` characters, so that neighbouring tick labels do
    not run into each other."""
    return ["\n".join(textwrap.wrap(label, width, break_long_words=True)) or label for label in labels]


def figures(analysis: Mapping[str, Any]) -> dict[str, str]:
    """The report's plots as base64 PNGs, drawn from the analysis dict alone."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn: dict[str, str] = {}
    by_round = analysis["agreement"]["pairs"]["by_round"]
    if by_round:
        figure, axes = plt.subplots(figsize=(6, 3.2))
        names = list(by_round)
        values = [by_round[name]["value"] for name in names]
        lows = [
            by_round[name]["low"] if by_round[name]["low"] is not None else v
            for name, v in zip(names, values, strict=True)
        ]
        highs = [
            by_round[name]["high"] if by_round[name]["high"] is not None else v
            for name, v in zip(names, values, strict=True)
        ]
        valid = [i for i, v in enumerate(values) if v is not None]
        axes.errorbar(
            [names[i] for i in valid],
            [values[i] for i in valid],
            yerr=error_lengths([values[i] for i in valid], [lows[i] for i in valid], [highs[i] for i in valid]),
            marker="o",
            capsize=4,
        )
        axes.axhline(0.667, color="grey", linestyle=":", label="0.667 tentative")
        axes.axhline(0.8, color="grey", linestyle="--", label="0.8 reliable")
        axes.set(
            xlabel="round", ylabel="Krippendorff's alpha (pairs)", title="Agreement over rounds (95% bootstrap CI)"
        )
        axes.legend(fontsize=7)
        drawn["agreement_over_time"] = _png(figure)

    annotators = analysis["reliability"]["annotators"]
    with_skill = {name: info for name, info in annotators.items() if info.get("relative_skill") is not None}
    if with_skill:
        figure, axes = plt.subplots(figsize=(6, 3.6))
        for name, info in with_skill.items():
            flagged = bool(info["flags"])
            point = (info["judgments"], info["relative_skill"])
            axes.scatter(*point, color="tab:red" if flagged else "tab:blue", s=18)
            if flagged:
                axes.annotate(name, point, fontsize=6)
        axes.axhline(0.0, color="grey", linewidth=0.8)
        axes.set(
            xlabel="judgments",
            ylabel="skill / panel median (0 = blind to quality)",
            title="Reliability against volume (red: flagged)",
        )
        drawn["reliability_vs_volume"] = _png(figure)

    position = analysis["bias"].get("position")
    if position:
        rows = [position["overall"], *position["by_annotator"]]
        figure, axes = plt.subplots(figsize=(6, max(2.5, 0.22 * len(rows))))
        labels = [f"{row['label']} (n={row['trials']})" for row in rows]
        shares = [row["share"] for row in rows]
        axes.barh(
            labels,
            shares,
            xerr=error_lengths(shares, [row["low"] for row in rows], [row["high"] for row in rows]),
            color=["tab:gray", *["tab:blue"] * (len(rows) - 1)],
            capsize=2,
        )
        axes.axvline(0.5, color="black", linewidth=0.8)
        axes.invert_yaxis()
        axes.tick_params(axis="y", labelsize=6)
        axes.set(xlabel="share of left choices (95% Wilson CI)", title="Position bias")
        drawn["position_bias"] = _png(figure)

    length = analysis["bias"].get("length")
    if length and length["bins"]:
        figure, axes = plt.subplots(figsize=(6, 3.4))
        xs = [item["log_ratio"] for item in length["bins"]]
        ys = [item["chose_a"] for item in length["bins"]]
        axes.plot(xs, ys, marker="o", label="observed (binned)")
        import numpy as np

        grid = np.linspace(min(xs), max(xs), 50)
        axes.plot(grid, 1 / (1 + np.exp(-(length["intercept"] + length["slope"] * grid))), label="logistic fit")
        axes.axhline(0.5, color="grey", linewidth=0.8)
        axes.set(
            xlabel="log(length A / length B)",
            ylabel="P(A chosen)",
            title=f"Preference against length (slope {length['slope']:.2f}, "
            f"95% CI {length['slope_low']:.2f} to {length['slope_high']:.2f})",
        )
        axes.legend(fontsize=7)
        drawn["length_bias"] = _png(figure)

    cover = analysis["bias"]["coverage"]
    if cover["judged_by_category"] or cover["annotator_share"]:
        figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
        categories = sorted(set(cover["judged_by_category"]) | set(cover["prompts_by_category"]))
        left.bar(range(len(categories)), [cover["judged_by_category"].get(c, 0) for c in categories])
        left.set(title="Judged comparisons by category")
        left.set_xticks(range(len(categories)), wrapped_labels(categories), rotation=45, ha="right", fontsize=7)
        shares = sorted(cover["annotator_share"].values(), reverse=True)
        right.bar(range(len(shares)), shares)
        right.axhline(0.5, color="tab:red", linestyle=":")
        right.set(title="Share of judgments per annotator", xlabel="annotators (largest first)")
        drawn["coverage"] = _png(figure)
    return drawn


def render_html(analysis: Mapping[str, Any], drawn: Mapping[str, str], title: str) -> str:
    pairs = analysis["agreement"]["pairs"]

    def estimate(name: str, data: Mapping[str, Any]) -> str:
        value, low, high, units = data["value"], data["low"], data["high"], data.get("units", 0)
        if value is None:
            return f"<tr><td>{name}</td><td colspan=3>not enough overlap (n={units})</td></tr>"
        if not trustworthy(units):
            return f"<tr><td>{name}</td><td colspan=3>too little data (n={units})</td></tr>"
        interval = f"{low:.3f} to {high:.3f}" if low is not None else "n/a"
        return f"<tr><td>{name}</td><td>{value:.3f}</td><td>{interval}</td><td>{units}</td></tr>"

    rows = "".join(
        estimate(label, pairs[key])
        for label, key in (
            ("Krippendorff's alpha", "alpha_nominal"),
            ("Raw agreement", "raw_agreement"),
            ("Fleiss' kappa", "fleiss_kappa"),
        )
    )
    flags = (
        "".join(
            f"<tr><td>{html.escape(flag['annotator'])}</td><td>{html.escape(flag['kind'])}</td>"
            f"<td>{html.escape(flag['message'])}</td></tr>"
            for flag in analysis["flags"]
        )
        or f"<tr><td colspan=3>No annotator flagged{html.escape(_untested_reason(analysis))}.</td></tr>"
    )
    images = "".join(
        f"<h2>{html.escape(name.replace('_', ' ').capitalize())}</h2>"
        f"<img alt='{name}' src='data:image/png;base64,{data}'>"
        for name, data in drawn.items()
    )
    unlabelled = analysis["bias"]["coverage"]["unlabelled_categories"]
    dominant = analysis["bias"]["coverage"]["dominant_annotator"]
    notes = []
    if unlabelled:
        notes.append("Categories without any label: " + ", ".join(html.escape(c) for c in unlabelled) + ".")
    if dominant:
        notes.append(f"One annotator gave more than half of all judgments: {html.escape(dominant)}.")
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}}
table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}}
img{{max-width:100%}}</style></head><body>
<h1>{html.escape(title)}</h1>
<p>{analysis["judgments"]} judgments; {analysis["pair_judgments"]["decisive_with_order"]} decisive pair
judgments with a known display order.</p>
<h2>Agreement (pairs, 95% bootstrap intervals over comparisons)</h2>
<table><tr><th>statistic</th><th>value</th><th>interval</th><th>comparisons judged twice or more</th></tr>{rows}
</table>
<h2>Flags</h2>
<table><tr><th>annotator</th><th>flag</th><th>why</th></tr>{flags}</table>
{"".join(f"<p>{note}</p>" for note in notes)}
{images}
<p>The same figures are in the JSON file next to this page.</p>
</body></html>
"""


def _untested_reason(analysis: Mapping[str, Any]) -> str:
    """Why nobody could be flagged for position bias or near-random judging, where nobody could be tested."""
    gate = analysis["panel_gate"]
    if gate.get("annotators_tested", 1) or not analysis["judgments"]:
        return ""
    return (
        f": the panel is too small to flag anyone for position bias or near-random judging, which needs at "
        f"least 3 annotators on decisive pairs and {gate['min_judgments']} such judgments from an annotator "
        f"({gate['annotators']} {'annotator' if gate['annotators'] == 1 else 'annotators'} here)"
    )


def write_report(analysis: Mapping[str, Any], folder: Path, *, title: str = "Feedback quality") -> tuple[Path, Path]:
    """Write quality.html and quality.json into `folder` (each written in full, then renamed)."""
    folder.mkdir(parents=True, exist_ok=True)
    drawn = figures(analysis)
    json_path = folder / "quality.json"
    html_path = folder / "quality.html"
    for path, text in ((json_path, json.dumps(analysis, indent=2)), (html_path, render_html(analysis, drawn, title))):
        write_text_atomically(path, text)
    return html_path, json_path
