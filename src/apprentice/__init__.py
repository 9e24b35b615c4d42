"""Apprentice: reinforcement learning from human feedback as one working loop."""

__version__ = "0.1.0"
