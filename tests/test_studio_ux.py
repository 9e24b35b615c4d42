"""What the annotator sees and what annotators and admins meet in the studio, through the test client.

Line breaks and cut-off responses, rankings that start unranked, the history page and corrections, gold
items from the CLI and the admin page, the address in sign-in links, the guidelines' missing file and the
dashboard's Wanted figure. The browser behaviours are in test_studio_ux_browser.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apprentice.cli import app as cli_app
from apprentice.project import init_project, open_project
from apprentice.store import Store
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from apprentice.studio.rendering import render_document, render_markdown
from studio_fixtures import seed_comparisons, sign_in, studio_client

runner = CliRunner()


def _current(client: Any) -> tuple[str, int, str]:
    page = client.get("/judge")
    assert page.status_code == 200, page.text
    action = re.search(r'id="judge-form" method="post" action="/judge/(\d+)" data-kind="(\w+)"', page.text)
    assert action is not None, page.text
    key = re.search(r'name="idempotency_key" value="(\w+)"', page.text).group(1)  # type: ignore[union-attr]
    return action.group(2), int(action.group(1)), key


def _seed_pair(store: Store, texts: list[str], finished: list[bool], prompt: str = "Write a poem.") -> int:
    store.import_prompts([PromptRecord([{"role": "user", "content": prompt}])], [], source="t")
    prompt_id = store.prompts()[-1].id
    policy = store.ensure_policy("base", kind="base", model_path=None)
    store.add_generation(
        policy.id,
        [GeneratedResponse(prompt_id, text, 7, done) for text, done in zip(texts, finished, strict=True)],
        {},
        lambda prompt_id, ids: [ComparisonPlan("pair", prompt_id, ids, overlap=1)],
    )
    return store.comparisons()[-1].id


# -- what the annotator sees -------------------------------------------------------------------------


def test_line_breaks_lists_and_code_render_readably() -> None:
    poem = render_markdown("Roses are red,\nviolets are blue.\n\n10 Downing Street\nLondon")
    assert poem.count("<br") == 2 and "<p>10 Downing Street<br" in poem
    listed = render_markdown("Steps:\n\n1. boil\n2. serve\n\n- salt\n- pepper\n\n```\nx = 1\ny = 2\n```")
    assert "<ol>" in listed and "<ul>" in listed and "<pre><code>x = 1\ny = 2" in listed
    assert "<script" not in render_markdown("a\n<script>alert(1)</script>")
    # Guidelines are written by people, often wrapped at a fixed width: there a single newline joins lines.
    assert "<br" not in render_document("Prefer the answer that\nhelps most.")


def test_a_response_cut_off_at_the_token_limit_is_marked(store: Store) -> None:
    _seed_pair(store, ["A short answer.", "A long answer that stops in the mid"], [True, False])
    client = studio_client(store)
    sign_in(client, store, "alice")
    page = client.get("/judge").text
    assert page.count('class="cut-off"') == 1 and "length limit" in page
    labels = re.findall(
        r'<h2 id="label-\d" class="label">Response (\w)</h2>\s*<div class="prose">(.*?)</div>', page, re.S
    )
    cut_label = next(label for label, body in labels if "stops in the mid" in body)
    note_after = page.index("stops in the mid")
    assert page.index('class="cut-off"') > note_after  # the note sits under the cut response
    task = client.get("/api/v1/tasks/next").json()["task"]
    assert {response["label"]: response["cut_off"] for response in task["responses"]}[cut_label] is True


def test_a_ranking_starts_unranked_and_a_blank_rank_is_refused(store: Store) -> None:
    seed_comparisons(store, pairs=0, rankings=1, ratings=0, ranking_size=3)
    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    page = client.get("/judge").text
    assert re.findall(r'name="rank" id="rank-\d" value="([^"]*)"', page) == ["", "", ""]
    assert len(re.findall(r'<option value="" selected>', page)) == 3 and 'value="1" selected' not in page
    _, assignment_id, key = _current(client)
    blank = client.post(
        f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "rank": ["", "", ""]}
    )
    assert blank.status_code == 422 and "rank every response" in blank.text
    partly = client.post(
        f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "rank": ["1", ""]}
    )
    assert partly.status_code == 422
    assert store.studio_judgments() == []
    ranked = client.post(
        f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "rank": ["2", "1", "3"]}
    )
    assert ranked.status_code == 303


# -- history and corrections -------------------------------------------------------------------------


def test_history_lists_my_answers_and_a_correction_keeps_the_old_one(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store)
    csrf = sign_in(client, store, "alice")
    for _ in range(2):
        _, assignment_id, key = _current(client)
        data = {"csrf_token": csrf, "idempotency_key": key, "choice": "A", "rationale": "first thought"}
        assert client.post(f"/judge/{assignment_id}", data=data).status_code == 303
    history = client.get("/history").text
    rows = re.findall(r'<tr data-judgment="(\d+)">', history)
    assert len(rows) == 2 and history.count("A is better") == 2 and "2 answers" in history
    judgment_id = int(rows[0])

    form = client.get(f"/history/{judgment_id}").text
    assert f'action="/history/{judgment_id}"' in form and 'value="A" required checked' in form
    assert 'value="first thought"' in form and "skip-dialog" not in form
    corrected = client.post(
        f"/history/{judgment_id}", data={"csrf_token": csrf, "choice": "B", "rationale": "on reflection"}
    )
    assert corrected.status_code == 303 and corrected.headers["location"] == f"/history?corrected={judgment_id}"

    rows_now = {row.judgment_id: row for row in store.studio_judgments()}
    assert len(rows_now) == 2  # the correction replaced the answer: still one judgment per comparison
    past = store.past_judgment(store.annotator_account(name="alice").id, judgment_id)  # type: ignore[union-attr]
    shown_b = past.task.order_shown[1]
    assert rows_now[judgment_id].answer["winner"] == shown_b and past.rationale == "on reflection"
    revisions = store.judgment_revisions(judgment_id)
    assert len(revisions) == 1 and revisions[0]["answer"]["winner"] == past.task.order_shown[0]
    assert revisions[0]["rationale"] == "first thought"
    after = client.get(f"/history?corrected={judgment_id}").text
    assert "B is better" in after and "(corrected)" in after and "Corrected." in after

    # Undo takes back the latest answer only while it has no correction: corrections stay on record.
    assert client.post("/undo", data={"csrf_token": csrf}).headers["location"] == "/judge?done=nothing-to-undo"
    assert len(store.studio_judgments()) == 2

    sign_in(client, store, "bob")
    assert client.get(f"/history/{judgment_id}").status_code == 404  # someone else's answer
    assert client.get("/history").text.count("<tr data-judgment") == 0


def test_with_gold_feedback_a_check_item_cannot_be_corrected(store: Store) -> None:
    seed_comparisons(store, pairs=0, rankings=0, ratings=0, gold_pairs=1)
    client = studio_client(store, gold_rate=1.0, gold_feedback=True)
    csrf = sign_in(client, store, "alice")
    _, assignment_id, key = _current(client)
    client.post(f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "choice": "B"})
    judgment_id = int(re.findall(r'<tr data-judgment="(\d+)">', client.get("/history").text)[0])
    refused = client.post(f"/history/{judgment_id}", data={"csrf_token": csrf, "choice": "A"})
    assert refused.status_code == 409 and store.judgment_revisions(judgment_id) == []


def test_undo_after_its_window_says_so(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store, undo_seconds=0)
    csrf = sign_in(client, store, "alice")
    _, assignment_id, key = _current(client)
    client.post(f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "choice": "A"})
    late = client.post("/undo", data={"csrf_token": csrf})
    assert late.headers["location"] == "/judge?done=nothing-to-undo"
    page = client.get(late.headers["location"]).text
    assert "Too late to undo" in page and "Your answers" in page
    assert 'data-undo-seconds-left="0"' in page and 'id="undo-form"' not in page


# -- gold items ----------------------------------------------------------------------------------------


def test_gold_set_and_import_from_the_cli_with_clear_errors(tmp_path: Path) -> None:
    root = tmp_path / "project"
    project = init_project(root)
    ids = seed_comparisons(project.store, pairs=2, rankings=1, ratings=1)
    project.close()
    pair, other_pair, ranking, rating = ids["pair"][0], ids["pair"][1], ids["ranking"][0], ids["rating"][0]

    done = runner.invoke(cli_app, ["gold", "set", str(pair), "B", "-p", str(root)])
    assert done.exit_code == 0 and f"Comparison {pair} (pair) is a gold item: B is better" in done.output
    bad = runner.invoke(cli_app, ["gold", "set", str(ranking), "1,1,x", "-p", str(root)])
    assert bad.exit_code == 1 and "2,1,3" in bad.output and "Traceback" not in bad.output
    missing = runner.invoke(cli_app, ["gold", "set", "99999", "A", "-p", str(root)])
    assert missing.exit_code == 1 and "no comparison with id 99999" in missing.output

    broken = tmp_path / "gold.jsonl"
    broken.write_text(
        "\n".join(
            [
                json.dumps({"comparison_id": other_pair, "answer": "tie"}),
                "{not json",
                json.dumps({"comparison_id": rating, "answer": 9}),
                json.dumps({"comparison_id": 99999, "answer": "A"}),
                json.dumps({"comparison": ranking, "answer": "1,2,3"}),
            ]
        ),
        encoding="utf-8",
    )
    failed = runner.invoke(cli_app, ["gold", "import", str(broken), "-p", str(root)])
    assert failed.exit_code == 1 and "4 bad lines, nothing imported" in failed.output
    output = " ".join(failed.output.split())  # rich wraps long lines
    assert "line 2: not valid JSON" in output
    assert "line 3: field 'answer'" in output and "from 1 to 7, got 9" in output
    assert "line 4: field 'comparison_id': no comparison with id 99999" in output
    assert "line 5: unknown field 'comparison'" in output
    project = open_project(root)
    gold = {shape.comparison_id: shape.gold for shape in project.store.gold_items()}
    assert set(gold) == {pair}  # nothing of the broken file was written
    project.close()

    good = tmp_path / "good.jsonl"
    good.write_text(
        json.dumps({"comparison_id": other_pair, "answer": "tie"})
        + "\n\n"
        + json.dumps({"comparison_id": ranking, "answer": [2, 1, 3]})
        + "\n"
        + json.dumps({"comparison_id": rating, "answer": "6"})
        + "\n",
        encoding="utf-8",
    )
    imported = runner.invoke(cli_app, ["gold", "import", str(good), "-p", str(root)])
    assert imported.exit_code == 0 and "3 gold items set" in imported.output
    project = open_project(root)
    gold = {shape.comparison_id: shape.gold for shape in project.store.gold_items()}
    assert gold[pair] == {"winner": 1, "tie": False, "both_bad": False}
    assert gold[other_pair] == {"winner": None, "tie": True, "both_bad": False}
    assert gold[ranking] == {"ranks": [2, 1, 3]} and gold[rating] == {"score": 6, "criteria": {}}
    project.close()


def test_an_admin_sets_a_known_answer_and_annotators_then_meet_it_as_gold(store: Store) -> None:
    ids = seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    target = ids["pair"][1]
    client = studio_client(store, gold_rate=1.0, gold_feedback=True)
    admin_csrf = sign_in(client, store, "root", role="admin")
    listed = client.get("/admin/gold").text
    assert f'<a href="/admin/gold?comparison={target}">{target}</a>' in listed  # pick one without knowing ids
    view = client.get(f"/admin/gold?comparison={target}")
    assert view.status_code == 200 and f"Comparison {target} (pair, open)" in view.text
    assert client.get("/admin/gold?comparison=99999").status_code == 404
    wrong = client.post(f"/admin/gold/{target}", data={"csrf_token": admin_csrf, "answer": "C"})
    assert wrong.status_code == 422 and "choice must be one of" in wrong.text
    saved = client.post(f"/admin/gold/{target}", data={"csrf_token": admin_csrf, "answer": "A"})
    assert saved.status_code == 303
    listing = client.get(saved.headers["location"]).text
    assert f'<tr data-comparison="{target}">' in listing and "A is better" in listing
    assert f'<a href="/admin/gold?comparison={target}">{target}</a></td><td>pair</td><td>open' not in listing

    csrf = sign_in(client, store, "alice")
    assert client.get("/admin/gold").status_code == 403
    assert client.post(f"/admin/gold/{target}", data={"csrf_token": csrf, "answer": "B"}).status_code == 403
    _, assignment_id, key = _current(client)  # gold_rate 1: the gold item comes first
    task = store.task_for(store.annotator_account(name="alice").id, assignment_id)  # type: ignore[union-attr]
    assert task.comparison_id == target and task.is_gold
    right = "AB"[task.order_shown.index(0)]
    answered = client.post(
        f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "choice": right}
    )
    assert answered.headers["location"] == "/judge?done=gold-right"


# -- addresses, guidelines, the dashboard --------------------------------------------------------------


def test_sign_in_links_name_the_served_port(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    from apprentice.studio.server import PROJECT_ENV, serve

    root = tmp_path / "project"
    project = init_project(root)
    client = studio_client(project.store)
    client.base_url = "http://127.0.0.1:8765"  # type: ignore[attr-defined]
    sign_in(client, project.store, "root", role="admin")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/admin/annotators").text).group(1)  # type: ignore[union-attr]
    page = client.post("/admin/annotators", data={"csrf_token": csrf, "name": "alice"}).text
    assert 'value="http://127.0.0.1:8765/signin/' in page
    stale = studio_client(project.store, public_url="http://127.0.0.1:8000")  # written out by an older project
    stale.base_url = "http://127.0.0.1:8765"  # type: ignore[attr-defined]
    sign_in(stale, project.store, "root")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', stale.get("/admin/annotators").text).group(1)  # type: ignore[union-attr]
    relinked = stale.post("/admin/annotators/2/link", data={"csrf_token": csrf}).text
    assert 'value="http://127.0.0.1:8765/signin/' in relinked
    project.close()

    monkeypatch.setattr(uvicorn, "run", lambda *args, **kwargs: None)
    monkeypatch.setenv(PROJECT_ENV, "")  # serve() sets it; restored after the test
    serve(root, host="127.0.0.1", port=8765, workers=1)  # `apprentice studio --port 8765`, stopped at once
    added = runner.invoke(cli_app, ["annotators", "add", "bob", "-p", str(root)])
    assert added.exit_code == 0 and added.output.split()[-1].startswith("http://127.0.0.1:8765/signin/")
    settings_file = root / "apprentice.toml"
    text = settings_file.read_text(encoding="utf-8")
    assert 'public_url = ""' in text  # the default: the served address
    # A project made before the setting's default became empty names port 8000: the CLI says it disagrees.
    settings_file.write_text(text.replace('public_url = ""', 'public_url = "http://127.0.0.1:8000"'), "utf-8")
    old_default = runner.invoke(cli_app, ["annotators", "link", "bob", "-p", str(root)])
    assert old_default.exit_code == 0 and "last served on http://127.0.0.1:8765" in old_default.output
    settings_file.write_text(text.replace('public_url = ""', 'public_url = "https://judge.example.org"'), "utf-8")
    linked = runner.invoke(cli_app, ["annotators", "link", "bob", "-p", str(root)])
    assert linked.exit_code == 0 and linked.output.split()[-1].startswith("https://judge.example.org/signin/")


def test_a_missing_guidelines_file_is_named(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from apprentice.studio import create_app

    project = init_project(tmp_path / "project")
    client = TestClient(create_app(project, secret_key="k"), follow_redirects=False)
    sign_in(client, project.store, "alice")
    page = client.get("/guidelines").text
    assert "<code>guidelines.md</code> is missing from the project folder" in page
    assert str(tmp_path) not in page  # annotators are not shown the server's folders
    project.close()


def test_the_dashboard_wants_what_the_comparisons_overlap_asks(store: Store) -> None:
    seed_comparisons(store, pairs=3, rankings=0, ratings=0, overlap=3, round_number=1)
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, overlap=1, round_number=1, gold_pairs=1)
    client = studio_client(store)
    sign_in(client, store, "root", role="admin")
    board = client.get("/admin").text
    row = re.search(r"<tr><td>1</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td><td>(\d+)</td>", board)
    assert row is not None and row.groups() == ("5", "0", "0", "11")  # 3 x 3 + 2 x 1; the gold item apart


def test_a_gold_answer_set_by_another_process_reaches_a_running_studio(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apprentice.store import assignments

    studio_store = Store.open(store_url)
    cli_store = Store.open(store_url)
    try:
        ids = seed_comparisons(studio_store, pairs=1, rankings=0, ratings=0)
        alice = studio_store.add_studio_annotator("alice")
        task = studio_store.next_task(alice.id, lease_seconds=60)
        assert task is not None and not task.is_gold  # its content is cached by the studio's store now
        cli_store.set_gold_answers({ids["pair"][0]: {"winner": 0, "tie": False, "both_bad": False}})
        monkeypatch.setattr(assignments, "_CONTENT_TTL_SECONDS", 0.0)  # as if a minute had passed
        outcome = studio_store.submit_judgment(
            alice.id,
            task.assignment_id,
            canonical_answer=lambda kind, order: {"winner": 0, "tie": False, "both_bad": False},
            idempotency_key="k1",
            source="studio",
        )
        assert outcome.gold == {"winner": 0, "tie": False, "both_bad": False}
    finally:
        cli_store.close()
        studio_store.close()
