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


def test_wrong_tokens_cannot_keep_the_server_verifying(store: Store, monkeypatch: Any) -> None:
    from apprentice.studio import security

    account_id, token = api_token(store, "alice")
    account = store.annotator_account(annotator_id=account_id)
    assert account is not None
    verifications = []
    real_verify = security.verify_secret
    monkeypatch.setattr(security, "verify_secret", lambda *args: verifications.append(1) or real_verify(*args))
    cache = security.TokenCache(failure_pause=60)
    assert not cache.check(account, "guess-1") and not cache.check(account, "guess-2")
    assert len(verifications) == 1  # the second guess was refused without an argon2 verification
    assert not cache.check(account, token.split("_", 2)[2])  # even the right one waits out the pause
    patient = security.TokenCache(failure_pause=0)
    assert not patient.check(account, "guess") and patient.check(account, token.split("_", 2)[2])
    assert patient.known(account, token.split("_", 2)[2])
