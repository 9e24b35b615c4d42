"""A toy reward and prompts for the RL tests: importable as `rl_toy:letter_fraction` (tests/ is on sys.path)."""

from __future__ import annotations

import time

LETTERS = set("abcdefghijklmnopqrstuvwxyz")

PROMPTS = [
    [{"role": "user", "content": text}]
    for text in (
        "write a poem",
        "hello",
        "explain why the sun is good",
        "tell a story about a cat",
        "what is python",
        "help me sort a list",
        "why is the moon sad",
        "love or hate ?",
    )
]


def letter_fraction(prompts: list[str], completions: list[str]) -> list[float]:
    """Share of the completion's words that are single letters: about 0.2 for the random tiny model."""
    scores = []
    for completion in completions:
        words = completion.split()
        scores.append(sum(word in LETTERS for word in words) / max(len(words), 1))
    return scores


def slow_letter_fraction(prompts: list[str], completions: list[str]) -> list[float]:
    """The same reward, slowed down so a test can kill the run between checkpoints."""
    time.sleep(0.4)
    return letter_fraction(prompts, completions)
