"""A script that judges through the studio's JSON API, as a person's script would: the one client that
simulated annotators (`apprentice.simulate`) and machine judges (`apprentice.judges.runner`) share.

`ApiAnnotator.run` asks for the next task, lets `respond(task)` decide (an answer or a skip), posts that
together with the request for the next task, and repeats until the studio has nothing left or `limit`
tasks were handled. A post that loses its connection is sent again: the answer's idempotency key makes a
retry safe, so it is stored once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRIES = 5


@dataclass(frozen=True)
class Answer:
    """An answer to the task as shown (`{"choice": "A"}`, `{"ranks": [...]}` or `{"score": 5}`)."""

    answer: dict[str, Any]
    rationale: str | None = None
    duration_ms: int | None = None


@dataclass(frozen=True)
class Skip:
    reason: str


@dataclass
class ClientStats:
    answered: int = 0
    skipped: int = 0
    retries: int = 0
    extra: dict[str, int] = field(default_factory=dict)


class ApiAnnotator:
    """One annotator's API session; subclasses say how to respond to a task."""

    def __init__(self, name: str, client: httpx.Client, token: str) -> None:
        self.name = name
        self.client = client  # its base URL is the studio; the caller owns and closes it
        self.headers = {"Authorization": f"Bearer {token}"}
        self.counts = ClientStats()

    def respond(self, task: dict[str, Any]) -> Answer | Skip:
        raise NotImplementedError

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        for attempt in range(RETRIES):
            try:
                response = self.client.post(path, json=body, headers=self.headers)
            except httpx.TransportError:
                self.counts.retries += 1
                time.sleep(0.2 * (attempt + 1))
                continue
            response.raise_for_status()
            result: dict[str, Any] = response.json()
            return result
        raise ConnectionError(f"{self.name}: the studio did not answer after {RETRIES} tries")

    def _send(self, task: dict[str, Any], response: Answer | Skip) -> dict[str, Any]:
        assignment = task["assignment_id"]
        if isinstance(response, Skip):
            self.counts.skipped += 1
            body: dict[str, Any] = {"reason": response.reason, "include_next": True}
            return self._post(f"/api/v1/assignments/{assignment}/skip", body)
        self.counts.answered += 1
        body = {"answer": response.answer, "idempotency_key": f"{self.name}-{assignment}", "include_next": True}
        if response.rationale is not None:
            body["rationale"] = response.rationale
        if response.duration_ms is not None:
            body["duration_ms"] = response.duration_ms
        return self._post(f"/api/v1/assignments/{assignment}/judgment", body)

    def run(self, *, limit: int | None = None) -> ClientStats:
        """Work until the studio has nothing left for this annotator, or `limit` tasks were handled."""
        response = self.client.get("/api/v1/tasks/next", headers=self.headers)
        response.raise_for_status()
        task = response.json()["task"]
        while task is not None and (limit is None or self.counts.answered + self.counts.skipped < limit):
            task = self._send(task, self.respond(task)).get("next")
        return self.counts
