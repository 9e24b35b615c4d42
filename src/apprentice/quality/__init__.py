"""Feedback quality: agreement, annotator reliability, bias detection and correction.

- `agreement`: Krippendorff's alpha (nominal, ordinal, interval, any distance such as rankings'),
  Cohen's kappa per pair of annotators, Fleiss' kappa, raw agreement, bootstrap intervals.
- `reliability`: Dawid-Skene, Noisy Bradley-Terry, Bradley-Terry with per-annotator skill and
  position offset, and the per-annotator likelihood-ratio tests.
- `bias`: position, length, rating harshness, coverage.
- `flags`: which annotators to look at and why; `correction`: weights and aggregated labels for training.
- `report`: the HTML + JSON report; `cli`: `apprentice quality ...`; `synthetic`: panels with a known truth.
"""
