"""Crowd work in a real browser (Debian's Chromium via Playwright) against a real uvicorn server.

Qualification, an attention check, adjudication and a Prolific-style entry link through to the completion
code. Screenshots go to test-output/studio/crowd-*.png for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from apprentice.cli import app as cli_app
from apprentice.project import Project, init_project, open_project
from apprentice.settings import StudioSection
from apprentice.studio.answers import canonical_answer
from apprentice.studio.crowd import disagreement_rule
from studio_fixtures import StudioServer, seed_comparisons
from test_studio_browser import CHROMIUM, SCREENSHOTS, launch, sign_in


def make_project(tmp_path: Path, **studio: object) -> Project:
    project = init_project(tmp_path / "project")
    (project.root / "guidelines.md").write_text(
        "# How to judge\n\nPrefer the **more helpful** answer. Answer A is always right in this test.\n",
        encoding="utf-8",
    )
    toml = project.root / "apprentice.toml"
    text = toml.read_text(encoding="utf-8")
    for name, value in studio.items():
        text, found = re.subn(rf"(?m)^{name} = .*$", f"{name} = {value!r}".replace("'", '"'), text)
        assert found == 1, name
    toml.write_text(text, encoding="utf-8")
    return project


def add_annotator(project: Project, name: str, *admin: str) -> str:
    added = CliRunner().invoke(cli_app, ["annotators", "add", name, *admin, "-p", str(project.root)])
    assert added.exit_code == 0, added.output
    return added.output.split()[-1]


def page_for(browser: Any, errors: list[str]) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(90_000)
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    return page


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"crowd-{name}.png"), full_page=True)


def key_for(page: Any, text: str) -> str:
    """The key (1 or 2) of the shown response that contains `text`."""
    responses = page.locator(".pair .response .prose").all_inner_texts()
    return "1" if text in responses[0] else "2"


def submit_by_keyboard(page: Any, key: str, expected: str) -> None:
    page.keyboard.press(key)
    with page.expect_navigation(url=re.compile(expected)):
        page.keyboard.press("Enter")


def test_qualification_in_the_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists()
    project = make_project(tmp_path, qualification_items=2, qualification_threshold=0.5)
    seed_comparisons(project.store, pairs=2, rankings=0, ratings=0, gold_pairs=2)
    project.close()
    link = add_annotator(project, "newcomer")
    errors: list[str] = []
    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        page = page_for(browser, errors)
        sign_in(page, server.base_url, link)
        assert "Qualification: item 1 of 2" in page.inner_text("#qualification")
        assert "Answer A is always right" in page.inner_text("#qualification")  # the guidelines beside
        shot(page, "qualification-item")
        submit_by_keyboard(page, key_for(page, "Answer B"), r"done=gold-wrong")
        assert "expected answer was different" in page.inner_text("#live")
        assert "item 2 of 2" in page.inner_text("#qualification")
        shot(page, "qualification-feedback")
        submit_by_keyboard(page, key_for(page, "Answer A"), r"done=gold-right")
        assert page.query_selector("#qualification") is None  # passed at 1 of 2: real tasks now
        assert "you got it right" in page.inner_text("#live")
        shot(page, "qualification-passed")
        browser.close()
    assert not errors, errors


def test_an_attention_check_in_the_browser_counts_on_the_dashboard(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    project = make_project(tmp_path, attention_rate=1.0)
    seed_comparisons(project.store, pairs=2, rankings=0, ratings=0)
    project.close()
    made = CliRunner().invoke(cli_app, ["studio", "attention", "add", "--count", "1", "-p", str(project.root)])
    assert made.exit_code == 0, made.output
    admin_link = add_annotator(project, "root", "--admin")
    link = add_annotator(project, "hasty")
    errors: list[str] = []
    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        page = page_for(browser, errors)
        sign_in(page, server.base_url, link)
        assert "attention check" in page.inner_text("#judge-form")
        shot(page, "attention-check")
        submit_by_keyboard(page, key_for(page, "attention check"), r"done=saved")  # the canned text: a failure
        assert "attention check" not in page.inner_text("#judge-form")  # one check, then real tasks

        admin = page_for(browser, errors)
        sign_in(admin, server.base_url, admin_link)
        admin.goto(server.base_url + "/admin")
        assert admin.inner_text("tr[data-annotator=hasty] .attention") == "1 failed of 1"
        assert admin.inner_text("#attention-failed") == "1"
        shot(admin, "attention-dashboard")
        browser.close()
    assert not errors, errors


def test_adjudication_in_the_browser(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    project = make_project(tmp_path, adjudicate_below=0.6, adjudication="admin")
    seed_comparisons(project.store, pairs=1, rankings=0, ratings=0, overlap=2)
    rule = disagreement_rule(StudioSection(adjudicate_below=0.6, adjudication="admin"))
    for index in range(2):  # judge0 prefers the response in canonical position 0, judge1 the other
        person = project.store.add_studio_annotator(f"judge{index}").id
        task = project.store.next_task(person, lease_seconds=60)
        assert task is not None
        choice = "AB"[task.order_shown.index(index)]
        project.store.submit_judgment(
            person,
            task.assignment_id,
            canonical_answer=lambda kind, order, choice=choice: canonical_answer(kind, {"choice": choice}, order),
            idempotency_key=f"k{index}",
            source="studio",
            rationale=f"I prefer response {index + 1}",
            review=rule,
        )
    assert project.store.comparisons()[0].status == "disputed"
    project.close()
    admin_link = add_annotator(project, "root", "--admin")
    errors: list[str] = []
    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        admin = page_for(browser, errors)
        sign_in(admin, server.base_url, admin_link)
        assert admin.inner_text("#disputed") == "1"
        admin.click("text=disputed comparisons")
        admin.wait_for_selector(".adjudication")
        assert "I prefer response 1" in admin.inner_text(".adjudication")
        assert "I prefer response 2" in admin.inner_text(".adjudication")
        shot(admin, "adjudication")
        with admin.expect_navigation():
            admin.click("button[name=verdict][value='0']")
        assert admin.inner_text("#no-disputes") == "Nothing to adjudicate."
        assert "response 1 is better" in admin.inner_text("#resolved") and "root" in admin.inner_text("#resolved")
        shot(admin, "adjudication-resolved")
        browser.close()
    assert not errors, errors
    reopened = open_project(project.root)
    judged = reopened.store.judged_comparisons()
    assert [(j.annotator, j.answer["winner"]) for j in judged] == [("adjudicated", 0)]
    reopened.close()


def test_a_crowd_entry_link_leads_to_the_completion_code(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    project = make_project(tmp_path)
    seed_comparisons(project.store, pairs=4, rankings=0, ratings=0)
    project.close()
    made = CliRunner().invoke(
        cli_app,
        [
            "studio",
            "study",
            "create",
            "pilot",
            "--quota",
            "10",
            "--items",
            "2",
            "--completion-code",
            "CX7Q2",
            "--completion-url",
            "https://app.prolific.com/submissions/complete?cc=CX7Q2",
            "-p",
            str(project.root),
        ],
    )
    assert made.exit_code == 0, made.output
    link = made.output.split()[-1]
    errors: list[str] = []
    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        page = page_for(browser, errors)
        entry = (
            re.sub(r"^https?://[^/]+", server.base_url, link)
            .replace("{{%PROLIFIC_PID%}}", "60f1c0ffee00000000000001")
            .replace("{{%STUDY_ID%}}", "study42")
            .replace("{{%SESSION_ID%}}", "sess1")
        )
        page.goto(entry)
        assert "Welcome to the study" in page.inner_text("main")
        shot(page, "study-start")
        with page.expect_navigation(url=re.compile(r"/judge")):
            page.click("button[type=submit]")
        submit_by_keyboard(page, "1", r"done=saved")
        page.keyboard.press("2")
        with page.expect_navigation(url=re.compile(r"/study/done")):
            page.keyboard.press("Enter")
        assert page.inner_text("#completion-code") == "CX7Q2"
        assert (
            page.get_attribute("#completion-link", "href") == "https://app.prolific.com/submissions/complete?cc=CX7Q2"
        )
        shot(page, "study-done")
        browser.close()
    assert not errors, errors
    exported = CliRunner().invoke(cli_app, ["studio", "study", "export", "pilot", "-p", str(project.root)])
    assert exported.exit_code == 0, exported.output
    lines = exported.output.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("60f1c0ffee00000000000001,study42,sess1,pilot/")
    assert ",2,0," in lines[1]  # two judgments, no skips
