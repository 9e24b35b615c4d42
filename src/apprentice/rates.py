"""Rates as a person should read them: the share, its 95% interval and the count it rests on.

Every rate Apprentice prints (reward accuracy, agreement, win rates, bias shares) goes through
`describe_rate`, so that none appears without its count, and a rate on fewer than `MIN_ITEMS` items reads
"too little data (n=N)" instead of a confident "100%".
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Hashable, Sequence

from scipy.stats import norm

MIN_ITEMS = 20  # below this a share's 95% interval is wider than about +-0.2: not a figure to act on
BOOTSTRAP_DRAWS = 2000  # the 2.5% and 97.5% percentiles each rest on 50 draws beyond them


def wilson_interval(successes: float, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (NaN, NaN without trials).

    Clamped so that low <= share <= high holds exactly: in floating point the formula lands about 1e-16 on
    the wrong side of 0/n and n/n, and plots drawing the interval as error bars refuse negative lengths.
    """
    if trials == 0:
        return float("nan"), float("nan")
    z = float(norm.ppf(0.5 + confidence / 2))
    share = successes / trials
    centre = (share + z**2 / (2 * trials)) / (1 + z**2 / trials)
    half = z * math.sqrt(max(share * (1 - share), 0.0) / trials + z**2 / (4 * trials**2)) / (1 + z**2 / trials)
    return max(0.0, min(centre - half, share)), min(1.0, max(centre + half, share))


def cluster_bootstrap_mean(
    cluster_values: Sequence[float], *, draws: int = BOOTSTRAP_DRAWS, seed: int = 0
) -> tuple[float, float, float]:
    """Mean of one value per cluster, with a 95% percentile bootstrap interval that resamples the clusters.

    For samples that come in clusters, such as several answers to one prompt: they share the prompt, so they
    are not independent, and an interval over samples (Wilson's) treats them as if they were and comes out
    too narrow. Reduce each cluster to one value first (its share of wins, its mean gain), then pass those
    here: the interval draws whole clusters with replacement. Seeded, so the same values give the same
    interval. Raises ValueError without values.
    """
    if not cluster_values:
        raise ValueError("no values to average")
    rng = random.Random(seed)
    values, count = list(cluster_values), len(cluster_values)
    means = sorted(statistics.fmean(rng.choices(values, k=count)) for _ in range(draws))
    return statistics.fmean(values), means[int(0.025 * draws)], means[int(0.975 * draws) - 1]


def per_prompt_means(values: Sequence[float], prompts: Sequence[Hashable]) -> list[float]:
    """The mean of each prompt's values, prompts in the order they first appear; `prompts[i]` is the prompt
    (or any key equal for the answers to one prompt) that `values[i]` belongs to."""
    if len(values) != len(prompts):
        raise ValueError(f"one prompt per value needed, got {len(prompts)} prompts for {len(values)} values")
    grouped: dict[Hashable, list[float]] = {}
    for value, prompt in zip(values, prompts, strict=True):
        grouped.setdefault(prompt, []).append(value)
    return [statistics.fmean(group) for group in grouped.values()]


def trustworthy(count: int | None) -> bool:
    return count is not None and count >= MIN_ITEMS


def describe_rate(
    rate: float | None,
    count: int | None,
    *,
    low: float | None = None,
    high: float | None = None,
    digits: int = 2,
    prompts: int | None = None,
) -> str:
    """'0.62 (95% CI 0.48-0.74, n=40)', or 'too little data (n=3)' under MIN_ITEMS items.

    Without `low` and `high` the interval is Wilson's for the rate as a share of `count` items (ties counted
    half round to the nearest whole item); pass them for intervals computed otherwise (a bootstrap). With
    `prompts`, the items were drawn from that many prompts (the unit a bootstrap over prompts resamples),
    and the count says so: 'n=96 on 48 prompts'; fewer than MIN_ITEMS prompts are too little data too.
    """
    shown_count = 0 if count is None else count
    drawn_from = "" if prompts is None or prompts == shown_count else f" on {prompts} prompts"
    enough = trustworthy(count) and (prompts is None or trustworthy(prompts))
    if rate is None or not math.isfinite(rate) or not enough:
        return f"too little data (n={shown_count}{drawn_from})"
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)):
        low, high = wilson_interval(round(rate * shown_count), shown_count)
    return f"{rate:.{digits}f} (95% CI {low:.{digits}f}-{high:.{digits}f}, n={shown_count}{drawn_from})"
