"""Where the real data the benchmarks and tests read lies: `shared/` beside the repository.

`APPRENTICE_HH_RLHF` points elsewhere when the repository is checked out on its own.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[1]
RESULTS = REPOSITORY / "benchmarks" / "results"
HH_RLHF_HARMLESS = Path(
    os.environ.get(
        "APPRENTICE_HH_RLHF", REPOSITORY.parent / "shared" / "data" / "hh-rlhf" / "harmless-base-test.jsonl.gz"
    )
)
