"""Detection power of the annotator flags on synthetic panels, by panel and by volume.

Mixed panels: 20% random clickers, 30% left-leaners (80% left when unsure), the rest honest; honest
panels: everyone honest (`apprentice.quality.synthetic`, calibrated to people's 66% agreement).
For each seed a fresh panel; precision and recall of the flagged set against the bad annotators,
per panel and pooled, and the number of false flags on honest panels.

    python benchmarks/quality_detection.py [--seeds 8] [--annotators 40] [--judgments 50 100]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter

from apprentice.quality.flags import check_annotators, precision_recall
from apprentice.quality.synthetic import make_panel_annotators, simulate_panel


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--annotators", type=int, default=40)
    parser.add_argument("--judgments", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--overlap", type=int, default=5)
    arguments = parser.parse_args()
    for judgments in arguments.judgments:
        started = time.perf_counter()
        totals: Counter[str] = Counter()
        kinds: Counter[str] = Counter()
        worst_precision, worst_recall = 1.0, 1.0
        honest_false_flags = honest_panels_flagged = 0
        for seed in range(arguments.seeds):
            annotators = make_panel_annotators(arguments.annotators, clickers=0.2, left_leaners=0.3, seed=seed)
            panel = simulate_panel(annotators, judgments_per_annotator=judgments, overlap=arguments.overlap, seed=seed)
            checks = check_annotators(panel.judgments)
            flagged, bad = checks.flagged, panel.bad_annotators
            totals["true"] += len(flagged & bad)
            totals["false"] += len(flagged - bad)
            totals["missed"] += len(bad - flagged)
            for name in bad - flagged:
                kinds["missed " + name.split("-")[0]] += 1
            precision, recall = precision_recall(flagged, bad)
            worst_precision, worst_recall = min(worst_precision, precision), min(worst_recall, recall)
            honest = simulate_panel(
                make_panel_annotators(arguments.annotators, seed=seed),
                judgments_per_annotator=judgments,
                overlap=arguments.overlap,
                seed=seed,
            )
            false_flags = len(check_annotators(honest.judgments).flagged)
            honest_false_flags += false_flags
            honest_panels_flagged += int(false_flags > 0)
        pooled_precision = totals["true"] / max(1, totals["true"] + totals["false"])
        pooled_recall = totals["true"] / max(1, totals["true"] + totals["missed"])
        print(
            f"{judgments} judgments each, {arguments.annotators} annotators, {arguments.seeds} panels: "
            f"pooled precision {pooled_precision:.3f}, recall {pooled_recall:.3f} "
            f"(worst panel {worst_precision:.2f} / {worst_recall:.2f}); "
            f"missed {dict(kinds)}; honest panels: {honest_false_flags} false flags in {honest_panels_flagged} of "
            f"{arguments.seeds} panels ({time.perf_counter() - started:.0f} s)"
        )


if __name__ == "__main__":
    main()
