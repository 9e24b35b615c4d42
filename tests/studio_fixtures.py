"""Factories for the studio tests: a store with comparisons of each kind, annotators, tokens."""

from __future__ import annotations

import os
from typing import Any

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord

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


def free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class StudioServer:
    """`uvicorn` serving a project's studio in a child process on a free loopback port."""

    def __init__(self, project_dir: Any, *, workers: int = 1, port: int | None = None) -> None:
        self.project_dir = project_dir
        self.workers = workers
        self.port = port or free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.process: Any = None

    def start(self, timeout: float = 60.0) -> StudioServer:
        import subprocess
        import sys
        import time

        import httpx

        env = {**os.environ, "APPRENTICE_PROJECT": str(self.project_dir), "APPRENTICE_TEST_CHEAP_HASHES": "1"}
        command = [sys.executable, "-m", "uvicorn", "apprentice.studio.server:app_from_environment", "--factory"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", str(self.workers)]
        command += ["--log-level", "warning", "--no-access-log"]
        self.process = subprocess.Popen(command, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the studio server exited with {self.process.returncode}")
            try:
                if httpx.get(f"{self.base_url}/api/openapi.json", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"the studio server did not answer within {timeout} s")

    def kill(self) -> None:
        """SIGKILL: no shutdown, no flushing; what was committed must survive on its own."""
        import signal

        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except Exception:
                self.kill()

    def __enter__(self) -> StudioServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
