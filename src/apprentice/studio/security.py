"""Credentials and sessions for the studio.

- A one-time sign-in link carries `ANNOTATOR_ID.SECRET`; the store keeps only an argon2 hash of the secret,
  and using the link clears it. The sign-in form's CSRF token is bound to the link and to a cookie that
  opening the link set in this browser, so a page elsewhere cannot sign a visitor in as someone else.
- A signed-in browser holds a session cookie signed with itsdangerous (HttpOnly, SameSite=Lax): the
  annotator id, their session version and a CSRF token that every form post and every cookie-authenticated
  API write must echo. The version lives in the store and is bumped by signing in (older sessions end),
  signing out, "sign out everywhere" and disabling: a replayed cookie then stops working in every process.
- Scripts use a per-annotator API token `apt_ID_SECRET`, stored as an argon2 hash. Verifying argon2 costs tens
  of milliseconds and 64 MiB by design, so a verified token is remembered in memory by its SHA-256 together
  with the stored hash it matched: a new token or a disabled account invalidates it at the next request.
- Beside each argon2 hash the store keeps a 64-bit SHA-256 prefix of the secret (`secret_check`): a guess
  that misses it is refused without running argon2. The secrets have 256 random bits, so the prefix leaves
  192 unknown. Guessing is further limited per client and per account (`attempts.FailedAttempts`).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from argon2.profiles import CHEAPEST
from itsdangerous import BadSignature, URLSafeTimedSerializer
from starlette.responses import Response

from apprentice.store import Store
from apprentice.store.assignments import AnnotatorAccount
from apprentice.store.tables import utc_now

API_TOKEN_PREFIX = "apt"
SESSION_COOKIE = "apprentice_session"
SIGNIN_COOKIE = "apprentice_signin"  # a random nonce that binds the sign-in form to the browser that opened it
SIGNIN_FORM_SECONDS = 3600
# argon2id with the library's defaults (RFC 9106's low-memory profile). Tests may set
# APPRENTICE_TEST_CHEAP_HASHES=1 for argon2's cheapest profile, which is for tests only.
CHEAP_HASHES_ENV = "APPRENTICE_TEST_CHEAP_HASHES"
_HASHER = PasswordHasher()
_CHEAP_HASHER = PasswordHasher.from_parameters(CHEAPEST)
_TOKEN_CACHE_SIZE = 10_000
_ACCOUNT_ID = re.compile(r"[0-9]{1,12}")  # ASCII digits only: str.isdigit also takes '²', which int() refuses
_CHECK_CHARS = 16  # hex characters of SHA-256 kept as a secret's fast check: 64 bits


def _hasher() -> PasswordHasher:
    return _CHEAP_HASHER if os.environ.get(CHEAP_HASHES_ENV) == "1" else _HASHER


def hash_secret(secret: str) -> str:
    return _hasher().hash(secret)


def verify_secret(stored_hash: str | None, secret: str) -> bool:
    if not stored_hash:
        return False
    try:
        return _hasher().verify(stored_hash, secret)
    except (VerificationError, InvalidHashError):
        return False


def secret_check(account_id: int, secret: str) -> str:
    """The fast check kept beside a secret's argon2 hash (see the module's docstring)."""
    return hashlib.sha256(f"{account_id}:{secret}".encode()).hexdigest()[:_CHECK_CHARS]


def passes_check(stored_check: str | None, account_id: int, secret: str) -> bool | None:
    """Whether `secret` matches the stored fast check; None when none is stored (only argon2 can tell)."""
    if stored_check is None:
        return None
    return hmac.compare_digest(stored_check, secret_check(account_id, secret))


def _split_id(text: str, separator: str) -> tuple[int, str] | None:
    head, found, secret = text.partition(separator)
    if not found or not _ACCOUNT_ID.fullmatch(head) or not secret or len(secret) > 200:
        return None
    return int(head), secret


def issue_signin_link(store: Store, account: AnnotatorAccount, *, public_url: str, valid_hours: int) -> str:
    """A fresh one-time sign-in link for `account` (an earlier unused link stops working)."""
    secret = secrets.token_urlsafe(32)
    expires = utc_now() + timedelta(hours=valid_hours)
    store.set_signin_hash(account.id, hash_secret(secret), expires, signin_check=secret_check(account.id, secret))
    return f"{public_url.rstrip('/')}/signin/{account.id}.{secret}"


def parse_signin_token(token: str) -> tuple[int, str] | None:
    return _split_id(token, ".")


def signin_link_pending(account: AnnotatorAccount | None, now: datetime | None = None) -> bool:
    """Whether `account` has an unused, unexpired link (cheap: no hashing)."""
    if account is None or account.disabled or account.signin_expires_at is None or not account.signin_hash:
        return False
    return account.signin_expires_at > (now or utc_now())


def signin_token_valid(account: AnnotatorAccount | None, secret: str, now: datetime | None = None) -> bool:
    if account is None or not signin_link_pending(account, now):
        return False
    if passes_check(account.signin_check, account.id, secret) is False:
        return False
    return verify_secret(account.signin_hash, secret)


def issue_api_token(store: Store, account: AnnotatorAccount) -> str:
    """A new API token for `account`; the previous one stops working."""
    secret = secrets.token_urlsafe(32)
    store.set_credential_hash(account.id, hash_secret(secret), credential_check=secret_check(account.id, secret))
    return f"{API_TOKEN_PREFIX}_{account.id}_{secret}"


def parse_api_token(token: str) -> tuple[int, str] | None:
    prefix, found, rest = token.partition("_")
    if prefix != API_TOKEN_PREFIX or not found:
        return None
    return _split_id(rest, "_")


class TokenCache:
    """Tokens verified already: SHA-256 of the token -> the stored hash that it matched (per process)."""

    def __init__(self) -> None:
        self._verified: dict[str, str] = {}

    @staticmethod
    def _digest(account: AnnotatorAccount, secret: str) -> str:
        return hashlib.sha256(f"{account.id}:{secret}".encode()).hexdigest()

    def known(self, account: AnnotatorAccount, secret: str) -> bool:
        """Verified before against the hash the account holds now (cheap: no argon2)."""
        remembered = self._verified.get(self._digest(account, secret))
        stored = account.credential_hash
        return remembered is not None and stored is not None and hmac.compare_digest(remembered, stored)

    def check(self, account: AnnotatorAccount, secret: str) -> bool:
        """Verify with argon2 (slow: callers decide first whether it is worth it) and remember a match."""
        if self.known(account, secret):
            return True
        stored = account.credential_hash
        if stored is None or not verify_secret(stored, secret):
            return False
        if len(self._verified) >= _TOKEN_CACHE_SIZE:
            self._verified.clear()
        self._verified[self._digest(account, secret)] = stored
        return True


@dataclass(frozen=True)
class SessionData:
    annotator_id: int
    version: int
    csrf: str


class SessionCodec:
    """Signs and reads the session cookie; also signs the sign-in form's CSRF token."""

    def __init__(self, secret_key: str, *, max_age_seconds: int) -> None:
        self._sessions = URLSafeTimedSerializer(secret_key, salt="apprentice.studio.session")
        self._signin = URLSafeTimedSerializer(secret_key, salt="apprentice.studio.signin-form")
        self.max_age_seconds = max_age_seconds

    def dump(self, account: AnnotatorAccount) -> str:
        payload = {"a": account.id, "v": account.session_version, "c": secrets.token_urlsafe(24)}
        return self._sessions.dumps(payload)

    def load(self, cookie: str | None) -> SessionData | None:
        if not cookie or len(cookie) > 4096:
            return None
        try:
            payload = self._sessions.loads(cookie, max_age=self.max_age_seconds)
        except BadSignature:
            return None
        try:
            return SessionData(int(payload["a"]), int(payload["v"]), str(payload["c"]))
        except (KeyError, TypeError, ValueError):
            return None

    def signin_csrf(self, token: str, browser_nonce: str) -> str:
        """The sign-in form's CSRF token: for this link, in the browser holding `browser_nonce` (a cookie)."""
        return self._signin.dumps(_sign_in_binding(token, browser_nonce))

    def signin_csrf_valid(self, token: str, csrf: str, browser_nonce: str | None) -> bool:
        if not browser_nonce:
            return False
        try:
            expected = self._signin.loads(csrf, max_age=SIGNIN_FORM_SECONDS)
        except BadSignature:
            return False
        return hmac.compare_digest(str(expected), _sign_in_binding(token, browser_nonce))


def browser_nonce(cookies: Mapping[str, str]) -> str:
    """The nonce that binds a sign-in (or study start) form to this browser: its cookie's, or a new one."""
    return cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)


def bind_form_to_browser(response: Response, nonce: str, *, path: str, secure: bool) -> Response:
    """Set the nonce cookie that only this browser holds, for the form posted under `path`."""
    response.set_cookie(
        SIGNIN_COOKIE, nonce, max_age=SIGNIN_FORM_SECONDS, httponly=True, samesite="strict", secure=secure, path=path
    )
    return response


def _sign_in_binding(token: str, browser_nonce: str) -> str:
    return hashlib.sha256(f"{token}\n{browser_nonce}".encode()).hexdigest()


def same_token(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def load_or_create_secret_key(location: Path) -> str:
    """The key that signs sessions, kept beside the project so that restarts and workers share it."""
    if not location.exists():
        partial = location.with_name(f"{location.name}.{secrets.token_hex(4)}.partial")
        partial.write_text(secrets.token_urlsafe(48), encoding="utf-8")
        partial.chmod(0o600)
        try:
            os.link(partial, location)  # atomic: if another worker won the race, its key stays
        except FileExistsError:
            pass
        finally:
            partial.unlink(missing_ok=True)
    return location.read_text(encoding="utf-8").strip()
