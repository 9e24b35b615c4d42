"""How well the annotator flags find the annotators a synthetic panel made bad: for the quality benchmarks.

Only a simulation knows who is bad, so this lives beside the benchmarks that build such panels
(`quality_detection.py`, `quality_correction.py`), not in the package.
"""

from __future__ import annotations


def precision_recall(flagged: set[str], bad: set[str]) -> tuple[float, float]:
    """Precision and recall of a flag set against the annotators known to be bad (1.0 when there is nothing to find)."""
    true_positives = len(flagged & bad)
    precision = true_positives / len(flagged) if flagged else 1.0
    recall = true_positives / len(bad) if bad else 1.0
    return precision, recall
