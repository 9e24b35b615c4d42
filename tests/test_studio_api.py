"""The studio's JSON API and pages through FastAPI's test client: the flows an annotator and an admin go through."""

from __future__ import annotations

import re
from typing import Any

from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from studio_fixtures import api_token, seed_comparisons, sign_in, studio_client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def display_answer(task: dict[str, Any]) -> dict[str, Any]:
    return {
        "pair": {"choice": "B"},
        "ranking": {"ranks": [1] + [2] * (len(task["responses"]) - 1)},
        "rating": {"score": 6, "criteria": {"helpful": 7}},
    }[task["kind"]]


def test_an_annotator_works_through_every_kind_by_api(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=2, ratings=2)
    client = studio_client(store)
    _, token = api_token(store, "bot")
    first = client.get("/api/v1/tasks/next", params={"include_progress": True}, headers=bearer(token)).json()
    assert first["progress"] == {"judged": 0, "skipped": 0, "left": 6}
    task = first["task"]
    kinds = []
    while task is not None:
        kinds.append(task["kind"])
        assert [response["label"] for response in task["responses"]] == [
            chr(65 + i) for i in range(len(task["responses"]))
        ]
        body = {"answer": display_answer(task), "idempotency_key": f"key-{task['assignment_id']}", "include_next": True}
        response = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment", json=body, headers=bearer(token)
        )
        assert response.status_code == 200, response.text
        assert response.json()["created"] is True
        # A retry of the same submission (a lost acknowledgement) is stored once.
        retry = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment",
            json={**body, "include_next": False},
            headers=bearer(token),
        )
        assert retry.status_code == 200 and retry.json()["created"] is False
        assert retry.json()["judgment_id"] == response.json()["judgment_id"]
        task = response.json()["next"]
    assert sorted(kinds) == ["pair", "pair", "ranking", "ranking", "rating", "rating"]
    assert client.get("/api/v1/progress", headers=bearer(token)).json() == {"judged": 6, "skipped": 0, "left": 0}
    stored = store.studio_judgments()
    assert len(stored) == 6
    ratings = [row.answer for row in stored if row.kind == "rating"]
    assert ratings == [{"score": 6, "criteria": {"helpful": 7}}] * 2


def test_skip_undo_and_errors_by_api(store: Store) -> None:
    seed_comparisons(store, pairs=3, rankings=0, ratings=0)
    client = studio_client(store, undo_seconds=60)
    _, token = api_token(store, "bot")
    task = client.get("/api/v1/tasks/next", headers=bearer(token)).json()["task"]
    wrong_kind = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/judgment",
        json={"answer": {"score": 3}, "idempotency_key": "k"},
        headers=bearer(token),
    )
    assert wrong_kind.status_code == 422 and "choice must be one of" in wrong_kind.json()["detail"]
    skipped = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/skip",
        json={"reason": "not my\nlanguage", "include_next": True},
        headers=bearer(token),
    )
    assert skipped.status_code == 200
    assert store.annotator_progress(store.annotator_account(name="bot").id).skipped == 1  # type: ignore[union-attr]
    again = client.post(
        f"/api/v1/assignments/{task['assignment_id']}/skip", json={"reason": "again"}, headers=bearer(token)
    )
    assert again.status_code == 409
    nxt = skipped.json()["next"]
    client.post(
        f"/api/v1/assignments/{nxt['assignment_id']}/judgment",
        json={"answer": {"choice": "A"}, "idempotency_key": "a1"},
        headers=bearer(token),
    )
    undone = client.post("/api/v1/undo", headers=bearer(token)).json()
    assert undone == {"undone": True, "assignment_id": nxt["assignment_id"]}
    assert client.post("/api/v1/undo", headers=bearer(token)).json()["undone"] is False
    back = client.get("/api/v1/tasks/next", headers=bearer(token)).json()["task"]
    assert back["assignment_id"] == nxt["assignment_id"]
    assert client.get("/api/v1/assignments/999999", headers=bearer(token)).status_code == 404


def test_gold_feedback_is_given_only_when_configured(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0, gold_pairs=2)
    client = studio_client(store, gold_rate=1.0, gold_feedback=True)
    _, token = api_token(store, "trainee")
    results = []
    for index in range(2):
        task = client.get("/api/v1/tasks/next", headers=bearer(token)).json()["task"]
        # The gold answer is canonical position 0; the trainee answers "A" whatever was shown first.
        response = client.post(
            f"/api/v1/assignments/{task['assignment_id']}/judgment",
            json={"answer": {"choice": "A"}, "idempotency_key": f"g{index}"},
            headers=bearer(token),
        )
        results.append(response.json()["gold_correct"])
    assert all(result in (True, False) for result in results)
    gold_rows = [row for row in store.studio_judgments() if row.gold is not None]
    assert [row.answer["winner"] == 0 for row in gold_rows] == results
    quiet = studio_client(store, gold_rate=1.0, gold_feedback=False)
    _, other = api_token(store, "veteran")
    task = quiet.get("/api/v1/tasks/next", headers=bearer(other)).json()["task"]
    reply = quiet.post(
        f"/api/v1/assignments/{task['assignment_id']}/judgment",
        json={"answer": {"choice": "A"}, "idempotency_key": "x"},
        headers=bearer(other),
    )
    assert reply.json()["gold_correct"] is None


def test_pages_judge_skip_undo_and_the_dashboard_counts(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=1, ratings=1, gold_pairs=1)
    client = studio_client(store, undo_seconds=60)
    csrf = sign_in(client, store, "alice")

    def current() -> tuple[str, int, str]:
        page = client.get("/judge")
        assert page.status_code == 200
        action = re.search(r'id="judge-form" method="post" action="/judge/(\d+)" data-kind="(\w+)"', page.text)
        assert action is not None, page.text
        key = re.search(r'name="idempotency_key" value="(\w+)"', page.text).group(1)  # type: ignore[union-attr]
        return action.group(2), int(action.group(1)), key

    fields = {"pair": {"choice": "A"}, "ranking": {"rank": ["2", "1", "3"]}, "rating": {"score": "5", "honest": "6"}}
    kind, assignment_id, key = current()
    skipped = client.post(f"/judge/{assignment_id}/skip", data={"csrf_token": csrf, "reason": "unsure"})
    assert skipped.status_code == 303 and skipped.headers["location"] == "/judge?done=skipped"
    submitted = 0
    while "Nothing left for you" not in client.get("/judge").text:
        kind, assignment_id, key = current()
        data = {"csrf_token": csrf, "idempotency_key": key, "duration_ms": "1500", "rationale": "clear", **fields[kind]}
        response = client.post(f"/judge/{assignment_id}", data=data)
        assert response.status_code == 303, response.text
        submitted += 1
    assert submitted == 3  # four comparisons, one skipped (the gold item is not mixed in at rate 0)
    assert client.post("/undo", data={"csrf_token": csrf}).headers["location"] == "/judge?done=undone"
    assert "Your last answer was taken back" in client.get("/judge?done=undone").text
    sign_in(client, store, "root", role="admin")
    board = client.get("/admin").text
    row = re.search(r'data-annotator="alice">.*?class="judgments">(\d+)<.*?class="skips">(\d+)<', board, re.S)
    assert row is not None and row.groups() == ("2", "1")  # three judged, one taken back; one skipped
    assert re.search(r'id="total-judgments">2<', board)
    export = client.get("/admin/export/preferences.jsonl")
    assert export.status_code == 200 and export.headers["content-type"].startswith("application/x-ndjson")


def test_markdown_and_code_are_rendered_and_html_is_not(store: Store) -> None:
    store.import_prompts(
        [PromptRecord([{"role": "user", "content": "Show **code** <img src=x onerror=alert(1)>"}])], [], source="t"
    )
    prompt = store.prompts()[0]
    policy = store.ensure_policy("base", kind="base", model_path=None)
    texts = ["```python\nprint('<b>')\n```", "<script>alert('x')</script> ![remote](https://example.com/a.png)"]
    store.add_generation(
        policy.id,
        [GeneratedResponse(prompt.id, text, 3, True) for text in texts],
        {},
        lambda prompt_id, ids: [ComparisonPlan("pair", prompt_id, ids, overlap=1)],
    )
    client = studio_client(store)
    sign_in(client, store, "alice")
    page = client.get("/judge").text
    assert "<strong>code</strong>" in page
    assert '<code class="language-python">print(&#39;&lt;b&gt;&#39;)' in page or "print('&lt;b&gt;')" in page
    assert "<script>alert" not in page and "onerror" not in page.replace("&lt;img src=x onerror", "")
    assert "example.com" not in page  # images are dropped: nothing loads from elsewhere
    assert "default-src 'self'" in client.get("/judge").headers["content-security-policy"]


def test_guidelines_page_renders_the_project_file(store: Store, tmp_path: Any) -> None:
    from fastapi.testclient import TestClient

    from apprentice.settings import StudioSection
    from apprentice.studio import create_app

    guidelines = tmp_path / "guide.md"
    guidelines.write_text("# Our rules\n\nPrefer *short* answers.", encoding="utf-8")
    client = TestClient(
        create_app(store, settings=StudioSection(), secret_key="k", guidelines=guidelines), follow_redirects=False
    )
    sign_in(client, store, "alice")
    page = client.get("/guidelines").text
    assert "<h1>Our rules</h1>" in page and "<em>short</em>" in page
