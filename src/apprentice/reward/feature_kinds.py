"""The names of what a reward ensemble's heads can read, in a module light enough for the settings to import
(the ensemble itself pulls in torch and transformers)."""

from __future__ import annotations

from typing import Literal, get_args

FeatureKind = Literal["head-input", "mean", "prompt-aware"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
