"""Crowd work in the studio: qualification, attention checks, adjudication, and Prolific-style studies."""

from __future__ import annotations

import csv
import io
import re
from typing import Any

import pytest

from apprentice.preferences import preference_pairs
from apprentice.quality.flags import check_annotators
from apprentice.settings import StudioSection
from apprentice.store import Store
from apprentice.studio.answers import canonical_answer
from apprentice.studio.crowd import create_study, disagreement_rule, entry_link
from studio_fixtures import api_token, seed_comparisons, sign_in, studio_client


def answer_with(display: dict[str, Any]) -> Any:
    return lambda kind, order: canonical_answer(kind, display, order)


def pair_choice(order_shown: list[int], canonical_winner: int) -> str:
    """The display label (A or B) of the response in canonical position `canonical_winner`."""
    return "AB"[order_shown.index(canonical_winner)]


def judge_page_task(client: Any, store: Store, annotator_id: int) -> tuple[int, Any]:
    page = client.get("/judge")
    assert page.status_code == 200, page.text
    assignment_id = int(re.search(r'action="/judge/(\d+)"', page.text).group(1))  # type: ignore[union-attr]
    return assignment_id, store.task_for(annotator_id, assignment_id)


def submit_pair(client: Any, csrf: str, assignment_id: int, choice: str, key: str) -> Any:
    return client.post(f"/judge/{assignment_id}", data={"csrf_token": csrf, "idempotency_key": key, "choice": choice})


# -- qualification --------------------------------------------------------------------------------


def test_qualification_gives_gold_items_with_feedback_and_guidelines_then_real_tasks_or_none(store: Store) -> None:
    seed_comparisons(store, pairs=3, rankings=0, ratings=0, gold_pairs=3)
    client = studio_client(store, qualification_items=3, qualification_threshold=0.6)
    csrf = sign_in(client, store, "alice")
    alice = store.annotator_account(name="alice")
    assert alice is not None
    for index in range(3):
        page = client.get("/judge")
        assert 'id="qualification"' in page.text and "Guidelines" in page.text
        assert f"item {index + 1} of 3" in page.text
        assignment_id, task = judge_page_task(client, store, alice.id)
        assert task.is_gold, "a qualifying annotator is given only gold items"
        wrong = index == 0  # one wrong of three: 2/3 >= 0.6 passes
        choice = pair_choice(task.order_shown, 1 if wrong else 0)
        response = submit_pair(client, csrf, assignment_id, choice, f"q{index}")
        # feedback on every qualification item, although gold_feedback is off
        assert response.headers["location"] == ("/judge?done=gold-wrong" if wrong else "/judge?done=gold-right")
    page = client.get("/judge")
    assert 'id="qualification"' not in page.text
    # A check item's answer is final: undoing it would let her answer again, knowing the right answer.
    assert 'form="undo-form"' not in page.text
    assert client.post("/undo", data={"csrf_token": csrf}).headers["location"] == "/judge?done=check-final"
    assert store.annotator_progress(alice.id).judged == 3
    _, task = judge_page_task(client, store, alice.id)
    assert not task.is_gold, "after passing, real tasks"

    bob_client = studio_client(store, qualification_items=3, qualification_threshold=0.6)
    bob_csrf = sign_in(bob_client, store, "bob")
    bob = store.annotator_account(name="bob")
    assert bob is not None
    for index in range(3):
        assignment_id, task = judge_page_task(bob_client, store, bob.id)
        assert task.is_gold
        submit_pair(bob_client, bob_csrf, assignment_id, pair_choice(task.order_shown, 1), f"b{index}")
    assert bob_client.get("/judge").headers["location"] == "/qualification"
    failed = bob_client.get("/qualification")
    assert "Qualification not passed" in failed.text and "0 of 3" in failed.text
    assert store.annotator_progress(bob.id).judged == 3  # nothing but the test

    admin_client = studio_client(store, qualification_items=3, qualification_threshold=0.6)
    sign_in(admin_client, store, "root", role="admin")
    board = admin_client.get("/admin").text
    assert re.search(r'data-annotator="alice".*?passed: 2 of 3 right', board, re.S)
    assert re.search(r'data-annotator="bob".*?failed: 0 of 3 right', board, re.S)
    carol = store.add_studio_annotator("carol")
    assert carol.id
    assert re.search(r'data-annotator="carol".*?qualifying: not started', admin_client.get("/admin").text, re.S)


def test_the_api_gates_on_qualification_too(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, gold_pairs=1)
    client = studio_client(store, qualification_items=1, qualification_threshold=1.0)
    _, token = api_token(store, "scripted")
    headers = {"Authorization": f"Bearer {token}"}
    task = client.get("/api/v1/tasks/next", headers=headers).json()["task"]
    account = store.annotator_account(name="scripted")
    assert task is not None and account is not None
    held = store.task_for(account.id, task["assignment_id"])
    assert held.is_gold  # the one gold item first, though two real tasks are open
    order = held.order_shown
    wrong = pair_choice(order, 1)
    body = {"answer": {"choice": wrong}, "idempotency_key": "w1", "include_next": True}
    submitted = client.post(f"/api/v1/assignments/{task['assignment_id']}/judgment", headers=headers, json=body)
    assert submitted.status_code == 200, submitted.text
    assert submitted.json()["next"] is None  # failed: no further task, although two real ones are open
    assert client.get("/api/v1/tasks/next", headers=headers).json()["task"] is None


def test_qualification_without_gold_items_says_so_instead_of_looping(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0)
    client = studio_client(store, qualification_items=3)
    sign_in(client, store, "alice")
    assert client.get("/judge").headers["location"] == "/qualification"
    assert "no check items yet" in client.get("/qualification").text


# -- attention checks -----------------------------------------------------------------------------


def test_attention_checks_are_drawn_at_their_rate_scored_flagged_and_kept_out_of_training(store: Store) -> None:
    seed_comparisons(store, pairs=4, rankings=0, ratings=0)
    created = store.add_attention_checks(2, seed=1)
    assert len(created) == 2
    client = studio_client(store, attention_rate=1.0)
    csrf = sign_in(client, store, "careless")
    careless = store.annotator_account(name="careless")
    assert careless is not None
    for index in range(2):
        assignment_id, task = judge_page_task(client, store, careless.id)
        assert task.comparison_id in created and task.is_gold
        assert any("attention check" in text for text in task.responses)
        canned = next(i for i, text in enumerate(task.responses) if "attention check" in text)
        response = submit_pair(client, csrf, assignment_id, "AB"[canned], f"a{index}")
        assert response.headers["location"] == "/judge?done=saved"  # no feedback: it looks like any task
    # The checks are used up: real tasks follow.
    _, task = judge_page_task(client, store, careless.id)
    assert task.comparison_id not in created

    checks = check_annotators(store.quality_judgments())
    assert [flag.kind for flag in checks.flags_for("careless")] == ["attention_failed"]
    assert "failed 2 of 2 attention checks" in checks.flags_for("careless")[0].message
    assert "careless" not in checks.gold_accuracy  # attention checks are not gold accuracy
    from apprentice.quality.report import analyse

    reported = analyse(store.quality_judgments(), resamples=10)["reliability"]["annotators"]["careless"]
    assert reported["attention_checks"] == {"failed": 2, "answered": 2} and "attention_failed" in reported["flags"]
    assert all(judged.comparison_id not in created for judged in store.judged_comparisons())

    admin = studio_client(store)
    sign_in(admin, store, "root", role="admin")
    board = admin.get("/admin").text
    assert re.search(r'data-annotator="careless".*?2 failed of 2', board, re.S)
    assert re.search(r'id="attention-failed">2<', board)


def test_one_failed_attention_check_is_not_a_flag_and_a_passed_one_counts(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    store.add_attention_checks(1)
    person = store.add_studio_annotator("person").id
    task = store.next_task(person, lease_seconds=60, attention_rate=1.0)
    assert task is not None
    canned = next(i for i, text in enumerate(task.responses) if "attention check" in text)
    store.submit_judgment(
        person,
        task.assignment_id,
        canonical_answer=answer_with({"choice": "AB"[canned]}),
        idempotency_key="k",
        source="studio",
    )
    checks = check_annotators(store.quality_judgments())
    assert checks.flags == [] and checks.attention == {"person": (1, 1)}


def test_attention_checks_need_prompts_with_responses(store: Store) -> None:
    from apprentice.errors import ApprenticeError

    with pytest.raises(ApprenticeError, match="only 0 prompts have a response"):
        store.add_attention_checks(1)


# -- adjudication ---------------------------------------------------------------------------------


def judge_pair(store: Store, annotator_id: int, canonical_winner: int, key: str, settings: StudioSection) -> int:
    task = store.next_task(annotator_id, lease_seconds=60)
    assert task is not None
    store.submit_judgment(
        annotator_id,
        task.assignment_id,
        canonical_answer=answer_with({"choice": pair_choice(task.order_shown, canonical_winner)}),
        idempotency_key=key,
        source="studio",
        review=disagreement_rule(settings),
    )
    return task.comparison_id


def test_a_disagreement_gets_a_third_judgment_and_the_majority_is_what_training_uses(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0, overlap=2)
    settings = StudioSection(adjudicate_below=0.6, adjudication="overlap", adjudication_max_overlap=3)
    people = [store.add_studio_annotator(f"p{index}").id for index in range(3)]
    comparison_id = judge_pair(store, people[0], 0, "a", settings)
    judge_pair(store, people[1], 1, "b", settings)
    comparison = store.comparisons()[0]
    assert (comparison.status, comparison.overlap, comparison.escalations) == ("open", 3, 1)
    assert judge_pair(store, people[2], 1, "c", settings) == comparison_id
    comparison = store.comparisons()[0]
    assert comparison.status == "complete" and comparison.resolved_by == "majority"
    assert comparison.resolution == {"winner": 1, "tie": False, "both_bad": False}
    assert store.judgment_counts_by_comparison()[comparison_id] == (3, 3)  # the record keeps every judgment
    judged = store.judged_comparisons()
    assert [(j.answer["winner"], j.annotator) for j in judged] == [(1, "adjudicated")]
    pairs = preference_pairs(judged)
    assert len(pairs) == 1 and pairs[0].chosen.startswith("Answer B")


def test_agreeing_judgments_are_not_adjudicated(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0, overlap=2)
    settings = StudioSection(adjudicate_below=0.6)
    for index in range(2):
        judge_pair(store, store.add_studio_annotator(f"p{index}").id, 0, f"k{index}", settings)
    comparison = store.comparisons()[0]
    assert (comparison.status, comparison.overlap, comparison.resolution) == ("complete", 2, None)
    assert len(store.judged_comparisons()) == 2


def test_a_disagreement_goes_to_the_admin_who_resolves_it_in_the_adjudication_view(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0, overlap=2)
    settings = StudioSection(adjudicate_below=0.6, adjudication="admin")
    judge_pair(store, store.add_studio_annotator("p0").id, 0, "a", settings)
    comparison_id = judge_pair(store, store.add_studio_annotator("p1").id, 1, "b", settings)
    assert store.comparisons()[0].status == "disputed"
    assert store.judged_comparisons() == []  # nothing for training until it is resolved
    assert store.next_task(store.add_studio_annotator("p2").id, lease_seconds=60) is None

    client = studio_client(store, adjudicate_below=0.6, adjudication="admin")
    csrf = sign_in(client, store, "root", role="admin")
    page = client.get("/admin/adjudication")
    assert f'id="dispute-{comparison_id}"' in page.text
    assert "p0</strong>: response 1 is better" in page.text and "p1</strong>: response 2 is better" in page.text
    assert re.search(r'id="disputed">1<', client.get("/admin").text)  # the dashboard's tile
    refused = client.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": csrf, "verdict": "left"})
    assert refused.status_code == 422
    done = client.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": csrf, "verdict": "both_bad"})
    assert done.status_code == 303
    comparison = store.comparisons()[0]
    assert comparison.status == "complete" and comparison.resolved_by == "root"
    judged = store.judged_comparisons()
    assert len(judged) == 1 and judged[0].answer["both_bad"] is True
    page = client.get("/admin/adjudication").text
    assert "Nothing to adjudicate" in page and "both bad" in page
    again = client.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": csrf, "verdict": "0"})
    assert again.status_code == 404
    export = client.get("/admin/export/preferences.jsonl")
    assert export.text == ""  # both bad: no preference pair


def test_the_adjudication_view_can_take_a_judgments_answer_and_refuses_foreign_ones(store: Store) -> None:
    seed_comparisons(store, pairs=2, rankings=0, ratings=0, overlap=2)
    settings = StudioSection(adjudicate_below=0.6, adjudication="admin")
    first, second = store.add_studio_annotator("p0").id, store.add_studio_annotator("p1").id
    judge_pair(store, first, 0, "a", settings)
    comparison_id = judge_pair(store, second, 1, "b", settings)
    client = studio_client(store)
    csrf = sign_in(client, store, "root", role="admin")
    item = store.adjudication_items()[0]
    wrong = client.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": csrf, "judgment_id": 999})
    assert wrong.status_code == 422
    taken = item.judgments[1]
    client.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": csrf, "judgment_id": taken.judgment_id})
    assert store.comparisons()[0].resolution == taken.answer
    annotator = studio_client(store)
    annotator_csrf = sign_in(annotator, store, "p0")
    forbidden = annotator.post(f"/admin/adjudication/{comparison_id}", data={"csrf_token": annotator_csrf})
    assert forbidden.status_code == 403


# -- crowd studies --------------------------------------------------------------------------------


def test_a_study_link_makes_and_resumes_a_participant_with_a_quota_and_a_completion_code(store: Store) -> None:
    seed_comparisons(store, pairs=4, rankings=0, ratings=0)
    study, link = create_study(
        store,
        "pilot",
        quota=1,
        items=2,
        completion_code="C0DE42",
        completion_url="https://app.prolific.com/submissions/complete?cc=C0DE42",
        public_url="http://testserver",
    )
    assert "PROLIFIC_PID={{%PROLIFIC_PID%}}" in link
    path = link.removeprefix("http://testserver").split("?")[0]
    client = studio_client(store)
    entry = f"{path}?PROLIFIC_PID=5f0c0ffee0000000000000aa&STUDY_ID=st1&SESSION_ID=se1"
    page = client.get(entry)
    assert page.status_code == 200 and "Welcome to the study" in page.text
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', page.text))
    started = client.post(f"{path}/start", data=form)
    assert started.status_code == 303 and started.headers["location"] == "/judge"
    account = store.annotator_account(name="pilot/5f0c0ffee0000000000000aa")
    assert account is not None
    assert client.get("/study/done").headers["location"] == "/judge"  # no code before the work is done
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/judge").text).group(1)  # type: ignore[union-attr]
    for index in range(2):
        assignment_id, _ = judge_page_task(client, store, account.id)
        submit_pair(client, csrf, assignment_id, "A", f"s{index}")
    assert client.get("/judge").headers["location"] == "/study/done"
    done = client.get("/study/done")
    assert "C0DE42" in done.text and "app.prolific.com/submissions/complete?cc=C0DE42" in done.text

    # The same participant again (a new tab, a new session): the same account, no second place taken.
    again = studio_client(store)
    form["session"] = "se2"
    form["csrf_token"] = dict(re.findall(r'name="(\w+)" value="([^"]*)"', again.get(entry).text))["csrf_token"]
    assert again.post(f"{path}/start", data=form).status_code == 303
    assert again.get("/judge").headers["location"] == "/study/done"
    assert store.study(study_id=study.id).participants == 1  # type: ignore[union-attr]

    # A new participant after the quota: refused, no account made.
    other = studio_client(store)
    other_entry = f"{path}?PROLIFIC_PID=other1&STUDY_ID=st1&SESSION_ID=se3"
    other_form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', other.get(other_entry).text))
    full = other.post(f"{path}/start", data=other_form)
    assert full.status_code == 409 and "all its 1 participants" in full.text
    assert store.annotator_account(name="pilot/other1") is None

    admin = studio_client(store)
    sign_in(admin, store, "root", role="admin")
    assert "1 of 1" in admin.get("/admin/studies").text
    exported = admin.get(f"/admin/studies/{study.id}/payments.csv")
    assert exported.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert len(rows) == 1
    assert rows[0]["participant_id"] == "5f0c0ffee0000000000000aa" and rows[0]["session_id"] == "se2"
    assert rows[0]["judgments"] == "2" and rows[0]["completed_at"] and float(rows[0]["elapsed_seconds"]) >= 0


def test_study_links_refuse_wrong_keys_missing_or_odd_ids_and_forged_forms(store: Store) -> None:
    study, link = create_study(
        store, "s1", quota=5, items=1, completion_code="X", completion_url=None, public_url="http://testserver"
    )
    path = link.removeprefix("http://testserver").split("?")[0]
    client = studio_client(store)
    assert client.get(f"/study/{study.id}/wrongkey?PROLIFIC_PID=abc").status_code == 404
    assert client.get(f"/study/999/{path.rsplit('/', 1)[1]}?PROLIFIC_PID=abc").status_code == 404
    assert client.get(path).status_code == 400  # no participant id
    odd = client.get(f"{path}?PROLIFIC_PID=%3Cscript%3E")
    assert odd.status_code == 400 and "<script>" not in odd.text
    forged = client.post(f"{path}/start", data={"participant": "abc", "csrf_token": "forged"})
    assert forged.status_code == 403
    assert store.study(study_id=study.id).participants == 0  # type: ignore[union-attr]
    assert client.get("/study/done").status_code == 401
    plain = studio_client(store)
    sign_in(plain, store, "alice")
    assert plain.get("/study/done").status_code == 404  # not a participant: no code


def test_a_participant_with_nothing_left_gets_the_code_early(store: Store) -> None:
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)
    _, link = create_study(
        store, "s2", quota=2, items=5, completion_code="EARLY", completion_url=None, public_url="http://testserver"
    )
    path = link.removeprefix("http://testserver").split("?")[0]
    client = studio_client(store)
    form = dict(re.findall(r'name="(\w+)" value="([^"]*)"', client.get(f"{path}?PROLIFIC_PID=p1").text))
    client.post(f"{path}/start", data=form)
    account = store.annotator_account(name="s2/p1")
    assert account is not None
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/judge").text).group(1)  # type: ignore[union-attr]
    assignment_id, _ = judge_page_task(client, store, account.id)
    submit_pair(client, csrf, assignment_id, "A", "only")
    assert client.get("/judge").headers["location"] == "/study/done"
    assert "EARLY" in client.get("/study/done").text


def test_study_create_and_export_on_the_command_line(tmp_path: Any) -> None:
    from typer.testing import CliRunner

    from apprentice.cli import app as cli_app
    from apprentice.project import init_project

    project = init_project(tmp_path / "project")
    project.close()
    runner = CliRunner()
    made = runner.invoke(
        cli_app,
        ["studio", "study", "create", "wave1", "--quota", "3", "--completion-code", "ABC", "-p", str(project.root)],
    )
    assert made.exit_code == 0, made.output
    assert "/study/1/" in made.output and "PROLIFIC_PID={{%PROLIFIC_PID%}}" in made.output
    dup = runner.invoke(
        cli_app,
        ["studio", "study", "create", "wave1", "--quota", "3", "--completion-code", "A", "-p", str(project.root)],
    )
    assert dup.exit_code != 0 and "exists already" in dup.output
    listed = runner.invoke(cli_app, ["studio", "study", "list", "-p", str(project.root)])
    assert "wave1" in listed.output and "0 of 3 started" in listed.output
    exported = runner.invoke(cli_app, ["studio", "study", "export", "wave1", "-p", str(project.root)])
    assert exported.exit_code == 0 and exported.output.startswith("participant_id,study_id,session_id")
    scripted = runner.invoke(
        cli_app,
        [
            "studio",
            "study",
            "create",
            "w2",
            "--quota",
            "1",
            "--completion-code",
            "A",
            "--completion-url",
            "javascript:alert(1)",
            "-p",
            str(project.root),
        ],
    )
    assert scripted.exit_code != 0 and "must start with https://" in scripted.output
    missing = runner.invoke(cli_app, ["studio", "study", "export", "nope", "-p", str(project.root)])
    assert missing.exit_code != 0 and "no study named 'nope'" in missing.output
    no_prompts = runner.invoke(cli_app, ["studio", "attention", "add", "--count", "2", "-p", str(project.root)])
    assert no_prompts.exit_code != 0 and "prompts have a response" in no_prompts.output


def test_entry_link_carries_prolifics_placeholders() -> None:
    link = entry_link("https://studio.example/", 7, "k3y")
    assert link == (
        "https://studio.example/study/7/k3y?PROLIFIC_PID={{%PROLIFIC_PID%}}&STUDY_ID={{%STUDY_ID%}}"
        "&SESSION_ID={{%SESSION_ID%}}"
    )


def test_qualification_needs_every_gold_item_when_there_are_fewer_than_asked() -> None:
    from apprentice.studio.crowd import qualification_from

    right = ("pair", {"winner": 0}, {"winner": 0})
    wrong = ("pair", {"winner": 1}, {"winner": 0})
    assert qualification_from([right], items=5, threshold=0.8, pool=2).state == "qualifying"
    decided = qualification_from([right, wrong], items=5, threshold=0.5, pool=2)
    assert (decided.state, decided.correct, decided.needed) == ("passed", 1, 2)
    assert qualification_from([right, wrong], items=2, threshold=0.6, pool=9).state == "failed"
    # Later gold answers (ordinary gold checks after passing) do not change the result.
    assert qualification_from([right, right, wrong, wrong], items=2, threshold=1.0, pool=9).state == "passed"
    assert qualification_from([], items=3, threshold=0.8, pool=0).state == "no-items"


def test_ratings_are_not_adjudicated_and_rankings_are(store: Store) -> None:
    seed_comparisons(store, pairs=0, rankings=1, ratings=1, overlap=2)
    settings = StudioSection(adjudicate_below=0.6, adjudication="admin")
    rule = disagreement_rule(settings)
    for index in range(2):
        person = store.add_studio_annotator(f"p{index}").id
        for _ in range(2):
            task = store.next_task(person, lease_seconds=60)
            assert task is not None
            display: dict[str, Any] = {"score": 1 + 5 * index}
            if task.kind == "ranking":  # each annotator puts a different response first
                best = task.order_shown.index(index)
                display = {"ranks": [1 if shown == best else 2 for shown in range(3)]}
            store.submit_judgment(
                person,
                task.assignment_id,
                canonical_answer=answer_with(display),
                idempotency_key=f"{index}-{task.kind}",
                source="studio",
                review=rule,
            )
    statuses = {comparison.kind: comparison.status for comparison in store.comparisons()}
    assert statuses == {"ranking": "disputed", "rating": "complete"}


def test_a_participant_whose_account_name_is_taken_gets_a_free_one(store: Store) -> None:
    study, _ = create_study(
        store, "pilot", quota=2, items=2, completion_code="C0DE42", completion_url=None, public_url="http://x"
    )
    store.ensure_annotator("pilot/p1")  # an annotator who happens to have the name a participant would get
    account = store.enter_study(study.id, "p1", platform_study_id=None, session_id=None)
    assert account.name == "pilot/p1#2"
    again = store.enter_study(study.id, "p1", platform_study_id=None, session_id="s2")
    assert again.id == account.id  # the participant resumes their own account
