"""Any OpenAI-compatible chat-completions server as a judge (vLLM, llama.cpp's server, a hosted API).

One request per chat, one token of answer, at temperature 0. Where the server returns log-probabilities
(`logprobs` with `top_logprobs`), P("A") is renormalized from those of "A" and "B"; otherwise the one
letter it answered counts as certain. The API key is read from an environment variable named by the
judge's settings when a request is made: it is never stored in the project, the store, logs or reports.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from apprentice.errors import ApprenticeError
from apprentice.judges.verdict import two_way_probability
from apprentice.store.records import Message

# The most log-probabilities OpenAI's API returns per token; "A" and "B" are nearly always among them.
TOP_LOGPROBS = 20
# Without log-probabilities an answer is taken as near-certain, but not as exactly 0 or 1.
ANSWER_ONLY_PROBABILITY = 0.99


def probability_from_choice(choice: dict[str, Any]) -> float | None:
    """P("A") from one chat-completion choice; None when it answered neither letter."""
    content = (choice.get("message") or {}).get("content") or ""
    logprobs = ((choice.get("logprobs") or {}).get("content") or [None])[0]
    if logprobs:
        candidates = logprobs.get("top_logprobs") or [logprobs]
        found: dict[str, float] = {}
        for candidate in candidates:
            letter = str(candidate.get("token", "")).strip().upper()
            if letter in ("A", "B") and letter not in found:
                found[letter] = float(candidate["logprob"])
        if found:
            # A letter missing from the top log-probabilities is at most as likely as the least of them.
            floor = min(float(candidate["logprob"]) for candidate in candidates)
            return two_way_probability(found.get("A", floor), found.get("B", floor))
    letter = content.strip()[:1].upper()
    if letter == "A":
        return ANSWER_ONLY_PROBABILITY
    if letter == "B":
        return 1.0 - ANSWER_ONLY_PROBABILITY
    return None


class EndpointJudge:
    """A model behind `POST {url}/chat/completions`, named `model_name` there."""

    def __init__(
        self,
        url: str,
        model_name: str,
        *,
        api_key_env: str | None = None,
        timeout: float = 60.0,
        top_logprobs: int = TOP_LOGPROBS,
    ) -> None:
        self.url = url.rstrip("/")
        self.top_logprobs = top_logprobs
        self.model_name = model_name
        self.api_key_env = api_key_env
        self.timeout = timeout
        self.description = f"endpoint {self.url} model {model_name}"

    def _headers(self) -> dict[str, str]:
        if not self.api_key_env:
            return {}
        key = os.environ.get(self.api_key_env)
        if not key:
            raise ApprenticeError(f"the judge's API key variable {self.api_key_env} is not set")
        return {"Authorization": f"Bearer {key}"}

    def probabilities_of_a(self, chats: Sequence[list[Message]]) -> list[float]:
        import httpx

        probabilities = []
        with httpx.Client(timeout=self.timeout, headers=self._headers()) as client:
            for chat in chats:
                body = {
                    "model": self.model_name,
                    "messages": chat,
                    "max_tokens": 1,
                    "temperature": 0,
                    "logprobs": True,
                    "top_logprobs": self.top_logprobs,
                }
                try:
                    response = client.post(f"{self.url}/chat/completions", json=body)
                except httpx.TransportError as error:
                    raise ApprenticeError(f"the judge endpoint {self.url} did not answer: {error}") from None
                if response.status_code != 200:
                    raise ApprenticeError(
                        f"the judge endpoint {self.url} answered {response.status_code}: {response.text[:200]}"
                    )
                choices = response.json().get("choices") or []
                probability = probability_from_choice(choices[0]) if choices else None
                probabilities.append(0.5 if probability is None else probability)  # neither letter: a coin
        return probabilities
