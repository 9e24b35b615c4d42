"""The studio refuses what it must: no session, someone else's work, admin pages, CSRF-less posts, disabled
accounts, forged cookies and submissions; and schemathesis finds no server error in the JSON API."""

from __future__ import annotations

import re
from typing import Any

import pytest

from apprentice.store import Store
from apprentice.studio.security import SESSION_COOKIE
from studio_fixtures import api_token, seed_comparisons, sign_in, studio_client

PUBLIC = {
    ("GET", "/signin/{token}"),
    ("POST", "/signin"),
    ("GET", "/signed-out"),
    ("GET", "/api/openapi.json"),
    # A study's entry link: its key and the start form's signed token stand in for a session
    # (test_studio_crowd.py checks their refusals).
    ("GET", "/study/{study_id}/{key}"),
    ("POST", "/study/{study_id}/{key}/start"),
}


def routes(client: Any) -> list[tuple[str, str]]:
    """Every (method, path) the app serves, through included routers (FastAPI keeps them nested)."""
    found = []
    pending = list(client.app.routes)
    while pending:
        route = pending.pop()
        if hasattr(route, "original_router"):
            pending.extend(route.original_router.routes)
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                found.append((method, route.path))
    return found


def concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "1", path)


def test_without_a_session_every_page_and_api_call_is_refused(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    client = studio_client(store)
    checked = 0
    for method, path in routes(client):
        if (method, path) in PUBLIC:
            continue
        response = client.request(method, concrete(path), json={} if path.startswith("/api/") else None)
        assert response.status_code == 401, f"{method} {path} answered {response.status_code} without a session"
        checked += 1
    assert checked >= 15
    # With a bogus token too, and the refusal tells what to send.
    refused = client.get("/api/v1/tasks/next", headers={"Authorization": "Bearer apt_1_not-the-token"})
    assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
    assert "Sign in with the link" in client.get("/judge").text


def test_public_routes_are_only_the_sign_in_and_the_api_schema(store: Store) -> None:
    client = studio_client(store)
    public = {(method, path) for method, path in routes(client) if (method, path) in PUBLIC}
    assert public <= PUBLIC
    assert client.get("/signin/1.not-a-secret").status_code == 400


def test_an_annotator_cannot_read_or_answer_anothers_assignment(store: Store) -> None:
    seed_comparisons(store, pairs=3, rankings=0, ratings=0)
    client = studio_client(store)
    alice_id, alice = api_token(store, "alice")
    _, bob = api_token(store, "bob")
    task = client.get("/api/v1/tasks/next", headers={"Authorization": f"Bearer {alice}"}).json()["task"]
    as_bob = {"Authorization": f"Bearer {bob}"}
    path = f"/api/v1/assignments/{task['assignment_id']}"
    assert client.get(path, headers=as_bob).status_code == 404
    body = {"answer": {"choice": "A"}, "idempotency_key": "steal"}
    assert client.post(f"{path}/judgment", json=body, headers=as_bob).status_code == 404
    assert client.post(f"{path}/skip", json={"reason": "x"}, headers=as_bob).status_code == 404
    # Nothing in a submission names the annotator: an extra field is refused, not obeyed.
    forged = {**body, "annotator_id": alice_id}
    assert client.post(f"{path}/judgment", json=forged, headers={"Authorization": f"Bearer {alice}"}).status_code == 422
    # Bob's own tasks never show alice's comparison while she holds it (overlap 1), nor her answer.
    bobs = client.get("/api/v1/tasks/next", headers=as_bob).json()["task"]
    assert bobs["assignment_id"] != task["assignment_id"]
    assert "answer" not in str(bobs) and "winner" not in str(bobs)
    assert store.studio_judgments() == []


def test_annotators_cannot_reach_admin_pages(store: Store) -> None:
    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    for path in ("/admin", "/admin/annotators", "/admin/export/preferences.jsonl"):
        assert client.get(path).status_code == 403, path
    add = client.post("/admin/annotators", data={"name": "mallory", "role": "admin", "csrf_token": csrf})
    assert add.status_code == 403
    assert store.annotator_account(name="mallory") is None


def test_posts_without_the_csrf_token_are_refused(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store)
    csrf = sign_in(client, store, "root", role="admin")
    page = client.get("/judge").text
    assignment_id = int(re.search(r'action="/judge/(\d+)"', page).group(1))  # type: ignore[union-attr]
    form = {"idempotency_key": "k1", "choice": "A"}
    assert client.post(f"/judge/{assignment_id}", data=form).status_code == 403
    assert client.post(f"/judge/{assignment_id}", data={**form, "csrf_token": "forged"}).status_code == 403
    assert client.post(f"/judge/{assignment_id}/skip", data={"reason": "x"}).status_code == 403
    assert client.post("/undo").status_code == 403
    assert client.post("/admin/annotators", data={"name": "eve"}).status_code == 403
    assert client.post("/account/token").status_code == 403
    # The JSON API with a session cookie needs the token in a header; with it, the same call goes through.
    body = {"answer": {"choice": "A"}, "idempotency_key": "k2"}
    assert client.post(f"/api/v1/assignments/{assignment_id}/judgment", json=body).status_code == 403
    ok = client.post(f"/api/v1/assignments/{assignment_id}/judgment", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 200
    assert store.annotator_account(name="eve") is None and len(store.studio_judgments()) == 1


def test_a_disabled_annotators_session_and_token_stop_at_once(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store)
    sign_in(client, store, "alice")
    _, token = api_token(store, "bob")
    assert client.get("/judge").status_code == 200
    assert client.get("/api/v1/progress", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    store.set_annotator_disabled("alice", True)
    store.set_annotator_disabled("bob", True)
    assert client.get("/judge").status_code == 401
    assert client.get("/api/v1/progress", headers={"Authorization": f"Bearer {token}"}).status_code == 401
    # Enabling again does not revive the old session: it needs a new link.
    store.set_annotator_disabled("alice", False)
    assert client.get("/judge").status_code == 401


def test_a_sign_in_link_works_once_and_cookies_cannot_be_forged(store: Store) -> None:
    from apprentice.studio.security import issue_signin_link

    client = studio_client(store)
    account = store.add_studio_annotator("alice")
    link = issue_signin_link(store, account, public_url="http://testserver", valid_hours=1).removeprefix(
        "http://testserver"
    )
    page = client.get(link).text
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    assert client.post("/signin", data={"token": token, "csrf_token": "x"}).status_code == 403
    signed = client.post("/signin", data={"token": token, "csrf_token": csrf})
    assert signed.status_code == 303
    cookie = signed.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert client.post("/signin", data={"token": token, "csrf_token": csrf}).status_code == 400
    assert client.get(link).status_code == 400
    # A cookie with a changed payload fails its signature.
    value = client.cookies.get(SESSION_COOKIE)
    assert client.get("/judge").status_code == 200
    client.cookies.clear()
    client.cookies.set(SESSION_COOKIE, "eyJhIjoyLCJ2IjowLCJjIjoieCJ9" + value[value.index(".") :])
    assert client.get("/judge").status_code == 401


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_schemathesis_finds_no_server_error(store: Store) -> None:
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis.checks import not_a_server_error

    seed_comparisons(store, pairs=20, rankings=5, ratings=5)
    client = studio_client(store)
    _, token = api_token(store, "fuzzer")
    schema = schemathesis.openapi.from_asgi("/api/openapi.json", client.app)
    headers = {"Authorization": f"Bearer {token}"}
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()

        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
        @given(case=operation.as_strategy())
        def run(case: Any) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            run()
        except Exception as error:  # collect all operations' failures before failing
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n".join(failures)


def _cookie_client(client: Any, cookie: str) -> Any:
    from fastapi.testclient import TestClient

    other = TestClient(client.app, base_url="http://testserver", follow_redirects=False)
    other.cookies.set(SESSION_COOKIE, cookie)
    return other


def _count_argon2(monkeypatch: Any) -> list[int]:
    from apprentice.studio import security

    verifications: list[int] = []
    real_verify = security.verify_secret
    monkeypatch.setattr(security, "verify_secret", lambda *args: verifications.append(1) or real_verify(*args))
    return verifications


def test_signing_out_ends_the_session_in_the_store(store: Store) -> None:
    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    copied = client.cookies.get(SESSION_COOKIE)
    assert client.post("/signout", data={"csrf_token": csrf}).status_code == 303
    # A copy of the cookie (a replay, another tab's jar) no longer works.
    assert _cookie_client(client, copied).get("/judge").status_code == 401


def test_signing_in_again_ends_older_sessions(store: Store) -> None:
    first = studio_client(store)
    sign_in(first, store, "alice")
    second = studio_client(store)
    sign_in(second, store, "alice")
    assert second.get("/judge").status_code == 200
    assert first.get("/judge").status_code == 401


def test_sign_out_everywhere_ends_every_session_and_the_api_token(store: Store) -> None:
    from apprentice.studio.security import issue_api_token

    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    account = store.annotator_account(name="alice")
    assert account is not None
    token = {"Authorization": f"Bearer {issue_api_token(store, account)}"}
    assert client.get("/api/v1/progress", headers=token).status_code == 200
    copied = client.cookies.get(SESSION_COOKIE)
    assert "/account/signout-everywhere" in client.get("/account").text
    assert client.post("/account/signout-everywhere").status_code == 403  # CSRF-less: refused
    assert client.post("/account/signout-everywhere", data={"csrf_token": csrf}).status_code == 303
    assert _cookie_client(client, copied).get("/judge").status_code == 401
    assert studio_client(store).get("/api/v1/progress", headers=token).status_code == 401


def test_guessed_secrets_are_refused_without_argon2_and_the_right_one_always_works(
    store: Store, monkeypatch: Any
) -> None:
    from apprentice.studio.security import issue_signin_link

    account_id, token = api_token(store, "alice")
    verifications = _count_argon2(monkeypatch)
    client = studio_client(store)
    guesses = [
        f"apt_{account_id}_wrong-guess",  # a real account, a wrong secret
        "apt_999_whatever",  # no such account
        "apt_1.5_x",  # malformed
    ]
    for guess in guesses:
        refused = client.get("/api/v1/progress", headers={"Authorization": f"Bearer {guess}"})
        assert refused.status_code == 401
    account = store.annotator_account(annotator_id=account_id)
    assert account is not None
    link = issue_signin_link(store, account, public_url="", valid_hours=1)
    assert client.get(f"/signin/{account_id}.wrong-secret").status_code == 400  # a pending link, a wrong guess
    assert verifications == []
    # The right credentials right after the wrong ones (formerly refused for a second), from the same client.
    assert client.get("/api/v1/progress", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    assert client.get(link).status_code == 200
    assert len(verifications) == 2


def test_failed_attempts_are_limited_per_client_in_the_store_and_never_lock_out_the_right_token(
    store: Store, monkeypatch: Any
) -> None:
    from fastapi.testclient import TestClient

    from apprentice.studio import attempts

    account_id, token = api_token(store, "alice")
    # Two apps on one store stand for two server processes: they share the counts.
    workers = [studio_client(store), studio_client(store)]
    for attempt in range(attempts.CLIENT_LIMIT):
        guess = {"Authorization": f"Bearer apt_{account_id}_guess-{attempt}"}
        assert workers[attempt % 2].get("/api/v1/progress", headers=guess).status_code == 401
    for worker in workers:
        limited = worker.get("/api/v1/progress", headers={"Authorization": f"Bearer apt_{account_id}_guess"})
        assert limited.status_code == 429 and limited.headers["retry-after"]
        assert worker.get("/signin/1.guess").status_code == 429
        # The right token still works, even from the client that guessed.
        assert worker.get("/api/v1/progress", headers={"Authorization": f"Bearer {token}"}).status_code == 200
    elsewhere = TestClient(workers[0].app, client=("192.0.2.7", 4000))
    assert elsewhere.get("/api/v1/progress", headers={"Authorization": "Bearer apt_1_guess"}).status_code == 401


def test_a_credential_without_a_fast_check_is_verified_only_under_the_limits(store: Store, monkeypatch: Any) -> None:
    """A token issued before fast checks existed: any guess costs argon2, so the account's count gates it."""
    from fastapi.testclient import TestClient

    from apprentice.studio import attempts
    from apprentice.studio.security import hash_secret

    account_id, _ = api_token(store, "alice")
    store.set_credential_hash(account_id, hash_secret("old-secret"))  # no check stored
    verifications = _count_argon2(monkeypatch)
    app = studio_client(store).app
    for attempt in range(attempts.ACCOUNT_LIMIT + 5):  # from many addresses: the account's limit holds
        guesser = TestClient(app, client=(f"198.51.100.{attempt}", 4000))
        guesser.get("/api/v1/progress", headers={"Authorization": f"Bearer apt_{account_id}_guess-{attempt}"})
    assert len(verifications) == attempts.ACCOUNT_LIMIT
    # Once the token is used (here after the window), its check is stored: the account's count no longer
    # gates it, and guesses cost no argon2.
    monkeypatch.setattr(app.state.studio.attempts, "window_seconds", 0.0)
    old = {"Authorization": f"Bearer apt_{account_id}_old-secret"}
    assert TestClient(app).get("/api/v1/progress", headers=old).status_code == 200
    monkeypatch.setattr(app.state.studio.attempts, "window_seconds", attempts.WINDOW_SECONDS)
    for attempt in range(attempts.ACCOUNT_LIMIT):
        guesser = TestClient(app, client=(f"203.0.113.{attempt}", 4000))
        guesser.get("/api/v1/progress", headers={"Authorization": f"Bearer apt_{account_id}_guess-{attempt}"})
    assert len(verifications) == attempts.ACCOUNT_LIMIT + 1
    assert studio_client(store).get("/api/v1/progress", headers=old).status_code == 200


def test_request_bodies_are_capped(store: Store) -> None:
    from apprentice.studio.app import MAX_BODY_BYTES

    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    client = studio_client(store)
    _, token = api_token(store, "alice")
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    big = b'{"answer": {"choice": "A"}, "idempotency_key": "k", "rationale": "' + b"x" * MAX_BODY_BYTES + b'"}'
    assert client.post("/api/v1/assignments/1/judgment", content=big, headers=headers).status_code == 413

    def chunks() -> Any:  # no Content-Length: only counting the bytes can tell
        yield big[: len(big) // 2]
        yield big[len(big) // 2 :]

    streamed = client.post("/api/v1/assignments/1/judgment", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    page = client.post("/signin", content=chunks(), headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert page.status_code == 413
    assert store.studio_judgments() == []


def test_odd_digits_and_non_finite_json_get_a_clear_4xx(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    client = studio_client(store)
    _, token = api_token(store, "alice")
    superscript = "Bearer apt_\u00b2_x".encode("latin-1")  # headers are read as latin-1: b"\xb2" is '²'
    assert client.get("/api/v1/progress", headers={"Authorization": superscript}).status_code == 401  # type: ignore[dict-item]
    assert client.get("/signin/%C2%B2.x").status_code == 400
    task = client.get("/api/v1/tasks/next", headers={"Authorization": f"Bearer {token}"}).json()["task"]
    for value in ("NaN", "Infinity", "-Infinity"):
        body = '{"answer": {"choice": "A"}, "idempotency_key": "k", "duration_ms": ' + value + "}"
        reply = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment",
            content=body,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        assert reply.status_code == 422, reply.text
        assert reply.json()["detail"][0]["loc"] == ["body", "duration_ms"]


def test_the_sign_in_form_works_only_in_the_browser_that_opened_the_link(store: Store) -> None:
    """Login CSRF: a page elsewhere posting the attacker's own link and form token signs no one in."""
    from apprentice.studio.security import issue_signin_link

    attacker = studio_client(store)
    account = store.add_studio_annotator("mallory")
    link = issue_signin_link(store, account, public_url="", valid_hours=1)
    page = attacker.get(link)
    assert page.headers["cache-control"] == "no-store"
    token = re.search(r'name="token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    victim = studio_client(store)
    assert victim.post("/signin", data={"token": token, "csrf_token": csrf}).status_code == 403
    victim.get(issue_signin_link(store, store.add_studio_annotator("victim"), public_url="", valid_hours=1))
    assert victim.post("/signin", data={"token": token, "csrf_token": csrf}).status_code == 403  # other nonce
    assert SESSION_COOKIE not in victim.cookies
    assert attacker.post("/signin", data={"token": token, "csrf_token": csrf}).status_code == 303


def test_a_re_enabled_annotators_old_api_token_stays_dead(store: Store) -> None:
    _, token = api_token(store, "alice")
    client = studio_client(store)
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/api/v1/progress", headers=headers).status_code == 200
    store.set_annotator_disabled("alice", True)
    store.set_annotator_disabled("alice", False)
    assert studio_client(store).get("/api/v1/progress", headers=headers).status_code == 401
    assert client.get("/api/v1/progress", headers=headers).status_code == 401  # nor from the memory of one


def test_with_gold_feedback_an_answer_to_a_gold_item_cannot_be_undone(store: Store) -> None:
    seed_comparisons(store, pairs=0, rankings=0, ratings=0, gold_pairs=2)
    client = studio_client(store, gold_rate=1.0, gold_feedback=True)
    _, token = api_token(store, "alice")
    headers = {"Authorization": f"Bearer {token}"}
    task = client.get("/api/v1/tasks/next", headers=headers).json()["task"]
    body = {"answer": {"choice": "A"}, "idempotency_key": "gold-1"}
    reply = client.post(f"/api/v1/assignments/{task['assignment_id']}/judgment", json=body, headers=headers)
    assert reply.json()["gold_correct"] is not None
    assert client.post("/api/v1/undo", headers=headers).status_code == 409
    assert len(store.studio_judgments()) == 1
    # The judging page says so instead of taking it back.
    csrf = sign_in(client, store, "bob")
    page = client.get("/judge").text
    assignment_id = int(re.search(r'action="/judge/(\d+)"', page).group(1))  # type: ignore[union-attr]
    client.post(f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": "g2", "choice": "A"})
    undone = client.post("/undo", data={"csrf_token": csrf})
    assert undone.headers["location"] == "/judge?done=gold-final"
    assert len(store.studio_judgments()) == 2
    # Without feedback shown, undo works on gold items as on any other.
    quiet = studio_client(store, gold_rate=1.0, gold_feedback=False)
    assert quiet.post("/api/v1/undo", headers=headers).json()["undone"] is True


def test_a_form_answer_without_an_idempotency_key_does_not_block_the_next(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    for _ in range(2):
        page = client.get("/judge").text
        assignment_id = int(re.search(r'action="/judge/(\d+)"', page).group(1))  # type: ignore[union-attr]
        saved = client.post(f"/judge/{assignment_id}", data={"csrf_token": csrf, "choice": "A"})
        assert saved.status_code == 303, saved.text
    assert len(store.studio_judgments()) == 2


@pytest.mark.parametrize("store_url", ["postgres"], indirect=True)
@pytest.mark.postgres
def test_one_annotator_holds_one_lease_under_concurrent_requests(store: Store) -> None:
    """Several workers serving one annotator at once (PostgreSQL): the database lets only one lease through."""
    import threading

    seed_comparisons(store, pairs=40, rankings=0, ratings=0)
    for round_number in range(5):
        account = store.add_studio_annotator(f"racer-{round_number}")
        barrier = threading.Barrier(8)

        def lease(annotator_id: int = account.id, barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            store.next_task(annotator_id, lease_seconds=600)

        threads = [threading.Thread(target=lease) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with store.engine.connect() as connection:
            held = connection.exec_driver_sql(
                f"SELECT count(*) FROM assignments WHERE annotator_id = {account.id} AND status = 'leased'"
            ).scalar()
        assert held == 1, f"annotator {account.id} holds {held} leases"


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_sqlite_commits_are_durable_across_a_power_cut(store: Store) -> None:
    with store.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
