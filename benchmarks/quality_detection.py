"""Detection power of the annotator flags on synthetic panels, by panel and by volume.

Mixed panels: 20% random clickers, 30% left-leaners (80% left when unsure), the rest honest. Two-sided
panels: 20% clickers, 15% left-leaners and 15% right-leaners (80% right when unsure), as a check that
either side is found. Honest panels: everyone honest (`apprentice.quality.synthetic`, calibrated to
people's 66% agreement). For each seed a fresh panel of each kind; precision and recall of the flagged
set against the bad annotators, pooled over panels (and the worst panel), and the false flags on the
honest panels.

The detector was designed and compared on seeds 0-29; the default seeds (100 on) were not looked at
before its figures were reported. Seeds 100-119, 40 annotators, pooled precision / recall:

    judgments  panel      before (offset LRT, BH)    after (unsure-side sign-flip test, weighted, adaptive BH)
    50         mixed      0.962 / 0.892              0.962 / 0.945
    50         two-sided  0.976 / 0.830              0.956 / 0.823
    50         honest     4 of 20 panels flagged     3 of 20 (seeds 120-139: 3 before, 2 after)
    100        mixed      0.963 / 0.980              0.954 / 0.990
    100        two-sided  0.968 / 0.975              0.951 / 0.968
    100        honest     5 of 20 panels flagged     4 of 20

Benjamini-Hochberg holds the share of false flags among the flags; on an honest panel any flag is
false, and with two families and the adaptive variant about one honest panel in five got one. The
panel gate (`FlagSettings.panel_alpha` 0.05: Simes' test over all the panel's p-values first) holds
that chance at 0.05. It passes on every mixed and two-sided panel, so their figures do not move; the
line "without the panel gate" prints the flags it held back as well (the figures before it):

    seeds     judgments  panel      without the gate        with the gate (panel_alpha 0.05)
    100-119   50         mixed      0.962 / 0.945           0.962 / 0.945
    100-119   50         two-sided  0.956 / 0.823           0.956 / 0.823
    100-119   50         honest     3 of 20 panels flagged  0 of 20
    100-119   100        mixed      0.954 / 0.990           0.954 / 0.990
    100-119   100        two-sided  0.951 / 0.968           0.951 / 0.968
    100-119   100        honest     4 of 20                 1 of 20
    140-179   50         mixed      0.954 / 0.905           0.954 / 0.905
    140-179   50         two-sided  0.958 / 0.807           0.958 / 0.807
    140-179   50         honest     4 of 40                 0 of 40
    140-179   100        mixed      0.953 / 0.995           0.953 / 0.995
    140-179   100        two-sided  0.946 / 0.980           0.946 / 0.980
    140-179   100        honest     6 of 40                 0 of 40

(seeds 140-179 were not looked at before the gate was added.) Lowering `false_flag_rate` instead
trades recall for fewer false flags on honest panels (0.05: 1 of 30 design panels, recall 0.85 at 50
judgments). The gate can cost recall only where the panel as a whole shows little, e.g. one weakly
biased annotator among many honest ones; such panels are not measured here.

    python benchmarks/quality_detection.py [--first-seed 100] [--seeds 20] [--annotators 40] [--judgments 50 100]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from dataclasses import dataclass, field

from apprentice.quality.flags import check_annotators
from apprentice.quality.synthetic import make_panel_annotators, simulate_panel
from flag_scores import precision_recall


@dataclass
class Detection:
    """Flags against the truth, pooled over panels of one kind."""

    counts: Counter[str] = field(default_factory=Counter)
    missed_by_behaviour: Counter[str] = field(default_factory=Counter)
    worst_precision: float = 1.0
    worst_recall: float = 1.0
    panels: int = 0
    panels_flagged: int = 0

    def add(self, flagged: set[str], bad: set[str]) -> None:
        self.counts["true"] += len(flagged & bad)
        self.counts["false"] += len(flagged - bad)
        self.counts["missed"] += len(bad - flagged)
        for name in bad - flagged:
            self.missed_by_behaviour[name.split("-")[0]] += 1
        precision, recall = precision_recall(flagged, bad)
        self.worst_precision = min(self.worst_precision, precision)
        self.worst_recall = min(self.worst_recall, recall)
        self.panels += 1
        self.panels_flagged += int(bool(flagged))

    def summary(self) -> str:
        true, false, missed = self.counts["true"], self.counts["false"], self.counts["missed"]
        if true + missed == 0:  # honest panels: nothing to find
            return f"{false} false flags, in {self.panels_flagged} of {self.panels} panels"
        return (
            f"precision {true / max(1, true + false):.3f}, recall {true / (true + missed):.3f} "
            f"(worst panel {self.worst_precision:.2f} / {self.worst_recall:.2f}); "
            f"missed {dict(self.missed_by_behaviour)}"
        )


PANELS = {
    "mixed (20% clickers, 30% left-leaners)": {"clickers": 0.2, "left_leaners": 0.3},
    "two-sided (20% clickers, 15% left-, 15% right-leaners)": {
        "clickers": 0.2,
        "left_leaners": 0.15,
        "right_leaners": 0.15,
    },
    "honest": {},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--first-seed", type=int, default=100, help="seeds 0-29 were used to design the detector")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--annotators", type=int, default=40)
    parser.add_argument("--judgments", type=int, nargs="+", default=[50, 100])
    parser.add_argument("--overlap", type=int, default=5)
    arguments = parser.parse_args()
    seeds = range(arguments.first_seed, arguments.first_seed + arguments.seeds)
    print(f"{arguments.annotators} annotators, seeds {seeds.start}-{seeds.stop - 1}")
    for judgments in arguments.judgments:
        for label, shares in PANELS.items():
            started = time.perf_counter()
            detection, ungated = Detection(), Detection()
            for seed in seeds:
                annotators = make_panel_annotators(arguments.annotators, seed=seed, **shares)
                panel = simulate_panel(
                    annotators, judgments_per_annotator=judgments, overlap=arguments.overlap, seed=seed
                )
                checks = check_annotators(panel.judgments)
                detection.add(checks.flagged, panel.bad_annotators)
                # without the panel gate: the flags it held back are raised too (the figures before it)
                ungated.add(checks.flagged | {flag.annotator for flag in checks.held_back}, panel.bad_annotators)
            print(f"{judgments} judgments each, {label}: {detection.summary()} ({time.perf_counter() - started:.0f} s)")
            print(f"    without the panel gate: {ungated.summary()}")


if __name__ == "__main__":
    main()
