"""Length bias in real human preferences: HH-RLHF harmless-base (test split, 2,312 pairs).

Each pair is put in a random order (seeded) so that "A" is either the chosen or the rejected
response, then the length analysis of `apprentice.quality.bias` runs on it: the logistic slope of
P(A chosen) on log(length A / length B) with a 95% Wald interval, the odds ratio for a response
twice as long, and the share of unequal-length pairs in which the longer response was chosen (exact
binomial test, Wilson interval). With --plot, the preference-against-length figure is written too.

    python benchmarks/quality_hh_length_bias.py [--plot reports/hh_length_bias.png]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from apprentice.importing import read_import_file
from apprentice.quality.bias import length_bias
from shared_data import HH_RLHF_HARMLESS

DATA = HH_RLHF_HARMLESS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, default=None, help="PNG file for the figure")
    arguments = parser.parse_args()

    started = time.perf_counter()
    pairs = read_import_file(arguments.data).pairs
    rng = np.random.default_rng(arguments.seed)
    chosen_first = rng.random(len(pairs)) < 0.5
    chosen_length = np.array([len(pair.chosen) for pair in pairs])
    rejected_length = np.array([len(pair.rejected) for pair in pairs])
    length_a = np.where(chosen_first, chosen_length, rejected_length)
    length_b = np.where(chosen_first, rejected_length, chosen_length)
    result = length_bias(chosen_first, length_a, length_b)
    seconds = time.perf_counter() - started

    longer = result.longer_wins
    print(f"HH-RLHF harmless-base test: {result.pairs} pairs ({arguments.data.name}), analysed in {seconds:.1f} s")
    print(
        f"  slope of P(A chosen) on log(len A / len B): {result.slope:+.3f} "
        f"(95% CI {result.slope_low:+.3f} to {result.slope_high:+.3f}, p = {result.slope_p_value:.2g})"
    )
    print(f"  odds of being chosen when twice as long: x{result.odds_ratio_for_doubling():.2f}")
    print(
        f"  longer response chosen in {longer.successes} of {longer.trials} unequal pairs: {longer.share:.1%} "
        f"(95% CI {longer.low:.1%} to {longer.high:.1%}, p = {longer.p_value:.2g}, Cohen's h {longer.cohens_h:+.2f})"
    )
    print(
        f"  median length chosen {np.median(chosen_length):.0f} characters, rejected {np.median(rejected_length):.0f}"
    )
    if arguments.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        xs = [item["log_ratio"] for item in result.bins]
        ys = [item["chose_a"] for item in result.bins]
        figure, axes = plt.subplots(figsize=(6, 3.6))
        axes.plot(xs, ys, marker="o", label="observed (9 equal-count bins)")
        grid = np.linspace(min(xs), max(xs), 50)
        axes.plot(grid, 1 / (1 + np.exp(-(result.intercept + result.slope * grid))), label="logistic fit")
        axes.axhline(0.5, color="grey", linewidth=0.8)
        axes.set(
            xlabel="log(length A / length B)",
            ylabel="P(A chosen)",
            title=f"HH-RLHF harmless-base: slope {result.slope:+.2f} "
            f"({result.slope_low:+.2f} to {result.slope_high:+.2f})",
        )
        axes.legend(fontsize=8)
        arguments.plot.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(arguments.plot, dpi=110, bbox_inches="tight")
        print(f"  figure: {arguments.plot}")


if __name__ == "__main__":
    main()
