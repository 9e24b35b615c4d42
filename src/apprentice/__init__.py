"""Apprentice: reinforcement learning from human feedback as one working loop."""

from apprentice.process_memory import bound_kernel_caches

__version__ = "0.1.0"

# Before torch creates its first oneDNN kernel, which reads these settings once (process_memory says why).
bound_kernel_caches()
