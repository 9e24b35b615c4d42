"""The names of what a reward ensemble's heads can read. They live below both `settings.py` and `reward/`
so the settings name them without depending on the reward package (which pulls in torch and
transformers)."""

from __future__ import annotations

from typing import Literal, get_args

FeatureKind = Literal["head-input", "mean", "prompt-aware", "summary-first"]
FEATURE_KINDS: tuple[str, ...] = get_args(FeatureKind)
