"""Give back the memory each training step freed, so the resident size follows what the process holds.

PyTorch on the CPU allocates every tensor with the C library's malloc. glibc serves requests under its
mmap threshold from heaps it keeps, and raises that threshold on its own (up to 32 MiB) each time a
larger block is freed, so after the first steps nearly every activation and gradient lives in the heaps.
Freed blocks stay there, scattered between live ones, and the next step asks for more. Measured in the
demo's LoRA policy step (default model, 2 cores): 0.73 GiB of live tensors at the start of the second
step, 2.65 GiB resident; `malloc_trim` afterwards gave 1.3 GiB back.

`malloc_trim(0)` at the end of each training step and after each evaluation batch hands those pages back:
the second step then started at 1.36 GiB instead of 2.65. A step's own peak is its live tensors plus what
it allocates (the update's is one micro-batch's activations, hence `micro_batch_size` 4). Trimming costs
milliseconds, but every page handed back is faulted in again, zeroed, when next used: trimming after each
phase of a step (generation, log-probabilities, the update) rather than once a step made the demo's LoRA
step about a tenth slower (35.6 against 31.8 s on the 2-core AMD EPYC) for no lower peak (2.32 against
2.21 GiB). A fixed, low mmap threshold (`mallopt`) would also return each block as it is freed, but mapping
every activation anew made the step about half again as slow. Where the C library is not glibc nothing
changes.

Blocks above glibc's own ceiling for that threshold (32 MiB) are mapped anew at every request and unmapped
when freed, so their pages are faulted in, zeroed, at each use. A training step makes several such blocks,
each the size of the vocabulary times the hidden width (113 MB in float32 for the default model): the tied
embedding's gradient, the output layer's bf16 copy and its gradient, the logits.
`large_blocks_in_heap` raises the threshold above them while a training run steps, so a step's later
blocks reuse the space its earlier ones freed. Measured on the default model's GRPO update (8 completions,
bf16, 2-core AMD EPYC): 2.85 s against 2.02 s, the same peak (3.86 and 3.90 GiB); the two zero-filled
embedding gradients alone had taken 380 ms (one per forward pass, before both passes shared one lookup:
`rollout._embedded_together`).

oneDNN, which runs PyTorch's CPU matrix products, keeps every kernel it builds, one per shape, in two caches
of 1,024 entries each (its own primitive cache and ideep's, in front of it). Training meets new shapes at
every step, since the completions' lengths change, and each new one added about 7 MB to each cache: the
demo's LoRA GRPO step held 33 MB more of the C heap after each step (mallinfo2, 484 to 580 MB over four
steps, live tensors unchanged), so by the demo's second round its steps started about half a GiB higher.
`bound_kernel_caches` keeps them to 128 and 16 entries, more than a step uses at once: the heap then stayed
flat over the steps, and neither the step nor generation was slower (20.2 s a step either way; 348 against
310 tokens/s, within the noise).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache


@cache
def _glibc() -> ctypes.CDLL | None:
    library = ctypes.util.find_library("c")
    if library is None:
        return None
    libc = ctypes.CDLL(library)
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "gnu_get_libc_version"):
        return None  # musl and others: no malloc_trim
    return libc


# Above the largest block a step of the default model makes (113 MB), below any whole model's weights.
LARGE_BLOCK_BYTES = 512 << 20
# glibc trims the heap's top on its own once this much is free there; `release_freed_memory` does it instead,
# once a step, so that a step does not hand back and fault in again the same pages.
AUTOMATIC_TRIM_BYTES = 1 << 30
# Where glibc's own raising of the mmap threshold stops (DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems).
GLIBC_MMAP_CEILING = 32 << 20
M_TRIM_THRESHOLD = -1  # mallopt's parameter numbers, from glibc's malloc.h
M_MMAP_THRESHOLD = -3


@contextmanager
def large_blocks_in_heap() -> Iterator[bool]:
    """Within the block, blocks up to LARGE_BLOCK_BYTES come from the heap, where freed space is reused (module
    docstring); yields True when glibc took the settings.

    The settings are process-wide. On leaving the outermost block they go back to where glibc's own adjustment
    leaves them after a few large frees (mmap threshold 32 MiB, automatic trim at twice that), so that the
    phases between training runs (evaluation, reward training, collecting) map their large blocks and hand
    them back as they free them, instead of growing a heap that is trimmed only once a training step."""
    global _heap_blocks_depth
    libc = _glibc()
    if libc is None:
        yield False
        return
    outermost = _heap_blocks_depth == 0
    kept = _set_thresholds(libc, LARGE_BLOCK_BYTES, AUTOMATIC_TRIM_BYTES) if outermost else True
    _heap_blocks_depth += 1
    try:
        yield kept
    finally:
        _heap_blocks_depth -= 1
        if outermost:
            _set_thresholds(libc, GLIBC_MMAP_CEILING, 2 * GLIBC_MMAP_CEILING)


_heap_blocks_depth = 0


def _set_thresholds(libc: ctypes.CDLL, mmap_bytes: int, trim_bytes: int) -> bool:
    return bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_bytes)) and bool(libc.mallopt(M_TRIM_THRESHOLD, trim_bytes))


# Entries of oneDNN's primitive cache and of ideep's cache in front of it (their defaults: 1,024 each).
KERNEL_CACHE_ENTRIES = {"ONEDNN_PRIMITIVE_CACHE_CAPACITY": "128", "LRU_CACHE_CAPACITY": "16"}


def bound_kernel_caches() -> None:
    """Keep oneDNN's kernel caches small (module docstring), unless the environment already sets them.

    oneDNN reads these once, when it builds its first kernel: this must run before the first matrix product."""
    for name, entries in KERNEL_CACHE_ENTRIES.items():
        os.environ.setdefault(name, entries)


def release_freed_memory() -> bool:
    """Return the C heap's free pages to the system; True when glibc did it."""
    libc = _glibc()
    if libc is None:
        return False
    libc.malloc_trim(0)
    return True
