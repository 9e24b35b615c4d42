"""The studio killed with SIGKILL under load and started again: nothing acknowledged is lost, nothing is
stored twice, no comparison gets more judgments than its overlap."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from apprentice.project import init_project, open_project
from apprentice.studio.security import parse_api_token
from studio_fixtures import StudioServer
from studio_harness import LoadResult, make_tokens, run_load, seed_pairs


def test_sigkill_under_load_keeps_every_acknowledged_judgment_once(tmp_path: Path, store_url: str) -> None:
    """On SQLite with one server process; on PostgreSQL with two workers racing for the same comparisons."""
    project = init_project(tmp_path / "project", store_url=None if store_url.startswith("sqlite") else store_url)
    workers = 1 if project.store.is_sqlite else 2
    # Enough work that an idle machine (about a thousand judgments a second on SQLite) is still busy at the
    # kill and after the restart: with 3,000 pairs and a kill at 3 s a fast run had finished before it.
    seed_pairs(project.store, 8000, overlap=1, prefix="single")
    seed_pairs(project.store, 300, overlap=3, prefix="triple")  # several annotators race for these
    tokens = make_tokens(project.store, 8)
    project.close()

    server = StudioServer(project.root, workers=workers).start()
    outcome: dict[str, LoadResult] = {}
    stop = threading.Event()
    load = threading.Thread(
        target=lambda: outcome.update(
            result=run_load(server.base_url, tokens, seconds=300, retry_seconds=0.1, stop=stop)
        )
    )
    load.start()
    time.sleep(1.5)
    server.kill()  # mid-load: requests in flight get no answer, whatever the server had committed stays
    restarted = StudioServer(project.root, workers=workers, port=server.port).start()
    restarted_at = datetime.now(UTC)
    time.sleep(3)  # the clients retry what failed, then go on
    stop.set()
    load.join(timeout=120)
    restarted.stop()
    assert not load.is_alive()
    result = outcome["result"]

    reopened = open_project(project.root)
    store = reopened.store
    acknowledged_total = 0
    for token in tokens:
        parsed = parse_api_token(token)
        assert parsed is not None
        stored = store.judgment_keys(parsed[0])
        acknowledged = result.acknowledged[token]
        acknowledged_total += len(acknowledged)
        missing = acknowledged - set(stored)
        assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"
        assert len(stored) == len(set(stored)), "a submission was stored twice"
    counts = store.judgment_counts_by_comparison()
    over = {cid: pair for cid, pair in counts.items() if pair[0] > pair[1]}
    assert not over, f"comparisons over their overlap: {over}"
    judged = sum(count for count, _ in counts.values())
    rows = store.studio_judgments()
    assert judged == len(rows) >= acknowledged_total > 0
    # The crash really happened during the load, and work went on after the restart.
    assert result.errors > 0, "no request failed: the server was not killed under load"
    assert any(row.created_at < restarted_at for row in rows), "nothing was judged before the crash"
    assert any(row.created_at > restarted_at for row in rows), "nothing was judged after the restart"
    reopened.close()
