"""Factories for the studio tests: a store with comparisons of each kind, annotators, tokens."""

from __future__ import annotations

import os
from typing import Any

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.process import StudioServer, free_port

__all__ = ["StudioServer", "api_token", "free_port", "seed_comparisons", "sign_in", "studio_client"]

# argon2's cheapest profile: the real one costs most of a second per hash on a busy test machine.
os.environ["APPRENTICE_TEST_CHEAP_HASHES"] = "1"

PAIR_GOLD = {"winner": 0, "tie": False, "both_bad": False}


def seed_comparisons(
    store: Store,
    *,
    pairs: int = 5,
    rankings: int = 5,
    ratings: int = 5,
    overlap: int = 1,
    gold_pairs: int = 0,
    ranking_size: int = 3,
    round_number: int = 0,
) -> dict[str, list[int]]:
    """Comparisons of every kind on distinct prompts; returns their ids by kind ('gold' for gold pairs)."""
    wanted = [("pair", pairs), ("ranking", rankings), ("rating", ratings), ("gold", gold_pairs)]
    total = sum(count for _, count in wanted)
    existing = len(store.prompts())
    records = [
        PromptRecord([{"role": "user", "content": f"Question {existing + index}: explain **item** {index}."}])
        for index in range(total)
    ]
    store.import_prompts(records, [], source="studio-test")
    prompts = store.prompts()[existing:]
    policy = store.ensure_policy("base", kind="base", model_path=None)
    ids: dict[str, list[int]] = {kind: [] for kind, _ in wanted}
    cursor = 0
    for kind, count in wanted:
        for _ in range(count):
            prompt = prompts[cursor]
            cursor += 1
            size = {"pair": 2, "gold": 2, "ranking": ranking_size, "rating": 1}[kind]
            generated = [
                GeneratedResponse(prompt.id, f"Answer {letter} to prompt {prompt.id}: `code {letter}`", 5, True)
                for letter in "ABCDEFGH"[:size]
            ]

            def plans(prompt_id: int, response_ids: list[int], kind: str = kind) -> list[ComparisonPlan]:
                gold: dict[str, Any] | None = PAIR_GOLD if kind == "gold" else None
                return [
                    ComparisonPlan(
                        "pair" if kind == "gold" else kind,
                        prompt_id,
                        response_ids,
                        overlap=overlap,
                        round=round_number,
                        gold=gold,
                    )
                ]

            store.add_generation(policy.id, generated, {}, plans)
            ids[kind].append(store.comparisons()[-1].id)
    return ids


def studio_client(store: Store, **settings: Any) -> Any:
    """A TestClient on a studio app over `store`, with the given [studio] settings."""
    from fastapi.testclient import TestClient

    from apprentice.settings import StudioSection
    from apprentice.studio import create_app

    app = create_app(store, settings=StudioSection(**settings), secret_key="test-secret-key")
    return TestClient(app, base_url="http://testserver", follow_redirects=False)


def api_token(store: Store, name: str, *, role: str = "annotator") -> tuple[int, str]:
    """A new annotator and their API token."""
    from apprentice.studio.security import issue_api_token

    account = store.add_studio_annotator(name, role=role)
    return account.id, issue_api_token(store, account)


def sign_in(client: Any, store: Store, name: str, *, role: str = "annotator") -> str:
    """Create `name`, sign the client in through a one-time link; returns the session's CSRF token."""
    import re

    from apprentice.studio.security import issue_signin_link

    account = store.annotator_account(name=name) or store.add_studio_annotator(name, role=role)
    link = issue_signin_link(store, account, public_url="http://testserver", valid_hours=1)
    page = client.get(link.removeprefix("http://testserver"))
    assert page.status_code == 200, page.text
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    response = client.post("/signin", data={"token": token, "csrf_token": csrf})
    assert response.status_code == 303, response.text
    judge = client.get("/account")
    assert judge.status_code == 200, judge.text
    return re.search(r'name="csrf_token" value="([^"]+)"', judge.text).group(1)  # type: ignore[union-attr]
