"""Failed sign-in and API-token attempts, counted per client address and per account in the store.

The counts live in the store, so every server process sees the same ones. What they decide:

- A request that cannot be valid (malformed, unknown or disabled account, no token or no pending link, a
  secret that misses its fast check) is refused without argon2 and counted against its client.
- A secret that passes its fast check is always verified with argon2, whatever the counts: only someone
  who holds the credential gets there, so a valid credential is never locked out.
- A credential stored before fast checks existed (no check to pass) costs argon2 for any guess: it is
  verified only while neither its client nor its account is over its limit; otherwise 429.
- A client over its limit is answered 429 before anything is counted, so a flood costs reads, not writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from apprentice.store import Store

CLIENT_LIMIT = 30  # failed attempts per client address per window
ACCOUNT_LIMIT = 10  # failed attempts per account per window (what gates argon2 for unchecked credentials)
WINDOW_SECONDS = 900.0
Verdict = Literal["valid", "invalid", "too-many"]


def client_scope(address: str) -> str:
    return f"client:{address}"


def account_scope(account_id: int) -> str:
    return f"account:{account_id}"


@dataclass
class FailedAttempts:
    store: Store
    client_limit: int = CLIENT_LIMIT
    account_limit: int = ACCOUNT_LIMIT
    window_seconds: float = WINDOW_SECONDS

    def client_blocked(self, client: str) -> bool:
        scope = client_scope(client)
        counts = self.store.auth_failures([scope], window_seconds=self.window_seconds)
        return counts.get(scope, 0) >= self.client_limit

    def guessing_allowed(self, client: str, account_id: int) -> bool:
        """Whether a slow verification that could be a guess may run now: both under their limits."""
        scopes = [client_scope(client), account_scope(account_id)]
        counts = self.store.auth_failures(scopes, window_seconds=self.window_seconds)
        return counts.get(scopes[0], 0) < self.client_limit and counts.get(scopes[1], 0) < self.account_limit

    def record(self, client: str, account_id: int | None) -> None:
        scopes = [client_scope(client)] + ([account_scope(account_id)] if account_id is not None else [])
        self.store.record_auth_failure(scopes, window_seconds=self.window_seconds)

    def verify(
        self, client: str, account_id: int | None, check: bool | None, slow_verify: Callable[[], bool]
    ) -> Verdict:
        """Decide a credential: `check` is the fast check's answer (None: none stored, False: cannot be valid,
        also for an unknown account, whose `account_id` is None); `slow_verify` runs argon2 when worth it."""
        if check is False or account_id is None:
            if self.client_blocked(client):
                return "too-many"
            self.record(client, account_id)
            return "invalid"
        if check is None and not self.guessing_allowed(client, account_id):
            return "too-many"
        if slow_verify():
            return "valid"
        self.record(client, account_id)
        return "invalid"
