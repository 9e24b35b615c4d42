"""The judging page in a real browser on a phone-sized screen (Debian's Chromium driven by Playwright).

A poem keeps its lines and a response cut at the token limit says so; the page does not scroll sideways at
390x844; typing a reason without clicking its field fills the field instead of firing shortcuts; a ranking
cannot be sent before the annotator ranks; undo after its window says so; the history page corrects an
answer. Screenshots go to test-output/studio/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from apprentice.project import init_project, open_project
from apprentice.store.records import ComparisonPlan, GeneratedResponse, PromptRecord
from studio_fixtures import StudioServer, seed_comparisons
from test_studio_browser import CHROMIUM, SCREENSHOTS, launch, sign_in

POEM = "Roses are red,\nviolets are blue,\nthis line is a line,\nand so is this too."
CUT = (
    "Here is a list:\n\n1. first step\n2. second step\n\n```python\nprint('hello')\n```\n\nSee https://example.org/"
    + "x" * 120
)
NO_OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"


def _seed(project: Any) -> None:
    store = project.store
    store.import_prompts(
        [PromptRecord([{"role": "user", "content": "Write a short poem,\nfour lines."}])], [], source="t"
    )
    prompt_id = store.prompts()[-1].id
    policy = store.ensure_policy("base", kind="base", model_path=None)
    store.add_generation(
        policy.id,
        [GeneratedResponse(prompt_id, POEM, 20, True), GeneratedResponse(prompt_id, CUT, 96, False)],
        {},
        lambda prompt_id, ids: [ComparisonPlan("pair", prompt_id, ids, overlap=1)],
    )
    seed_comparisons(store, pairs=0, rankings=1, ratings=0, ranking_size=3)
    seed_comparisons(store, pairs=1, rankings=0, ratings=0)


def _live(page: Any) -> str:
    return str(page.inner_text("#live"))


def test_the_judging_page_on_a_phone_typing_rankings_undo_and_history(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install -y chromium); make test does"
    project = init_project(tmp_path / "project")
    settings = project.root / "apprentice.toml"
    settings.write_text(settings.read_text(encoding="utf-8").replace("undo_seconds = 30", "undo_seconds = 2"), "utf-8")
    _seed(project)
    account = project.store.add_studio_annotator("alice")
    from apprentice.studio.security import issue_signin_link

    link = issue_signin_link(project.store, account, public_url="http://x", valid_hours=1)
    root = project.store.add_studio_annotator("root", role="admin")
    admin_link = issue_signin_link(project.store, root, public_url="http://x", valid_hours=1)
    ranking_id = next(c.id for c in project.store.comparisons() if c.kind == "ranking")
    project.close()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    errors: list[str] = []

    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
        page = phone.new_page()
        page.set_default_timeout(90_000)
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        sign_in(page, server.base_url, link)

        # 1. The poem keeps its lines; the cut response says so; nothing scrolls sideways.
        assert page.get_attribute("#judge-form", "data-kind") == "pair"
        assert page.locator(".prose br").count() >= 3
        note = page.locator(".cut-off")
        assert note.count() == 1 and note.is_visible() and "length limit" in note.inner_text()
        assert page.locator(".prose ol li").count() == 2 and page.locator(".prose pre code").count() == 1
        assert page.evaluate(NO_OVERFLOW), page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        page.screenshot(path=str(SCREENSHOTS / "phone-pair.png"), full_page=True)
        page.screenshot(path=str(SCREENSHOTS / "phone-pair-viewport.png"))
        submit = page.locator("#judge-form button.primary").bounding_box()
        assert submit is not None and submit["x"] + submit["width"] <= 390 and submit["y"] + submit["height"] <= 844

        # 2. Typing a reason without clicking the field: the words go into the field, no shortcut fires.
        page.keyboard.type("this is the better poem, so be it", delay=40)
        assert page.input_value("#rationale") == "this is the better poem, so be it"
        assert page.locator("input[name=choice]:checked").count() == 0
        assert page.locator("#skip-dialog[open]").count() == 0
        page.keyboard.press("Escape")  # leave the field: shortcuts work again
        page.keyboard.press("1")
        assert page.locator("input[name=choice][value=A]").is_checked()
        with page.expect_navigation(url=re.compile(r"done=saved")):
            page.keyboard.press("Enter")

        # 3. A ranking starts unranked, and Enter alone sends nothing.
        assert page.get_attribute("#judge-form", "data-kind") == "ranking"
        assert page.eval_on_selector_all("input[name=rank]", "els => els.map(e => e.value)") == ["", "", ""]
        page.keyboard.press("Enter")
        page.wait_for_selector("#live:has-text('Rank every response')")
        assert "/judge" in page.url and page.get_attribute("#judge-form", "data-kind") == "ranking"
        assert page.evaluate(NO_OVERFLOW)
        page.screenshot(path=str(SCREENSHOTS / "phone-ranking-unranked.png"), full_page=True)
        for index, rank in enumerate(["2", "1", "3"]):
            page.select_option(f"select[data-rank-for='{index}']", rank)
        assert page.eval_on_selector_all("input[name=rank]", "els => els.map(e => e.value)") == ["2", "1", "3"]
        with page.expect_navigation(url=re.compile(r"done=saved")):
            page.click("#judge-form button.primary")

        # 4. Undo after its window: the button goes, and `u` says why instead of doing nothing.
        assert page.locator("#undo-button").count() == 1
        page.wait_for_selector("#undo-button", state="detached", timeout=10_000)
        page.goto(server.base_url + "/judge")
        assert page.locator("#undo-form").count() == 0
        page.keyboard.press("u")
        page.wait_for_selector("#live:has-text('Too late to undo')")

        # 5. A single letter alone is still a shortcut.
        assert page.get_attribute("#judge-form", "data-kind") == "pair"
        page.keyboard.press("t")
        page.wait_for_selector("input[name=choice][value=tie]:checked")
        with page.expect_navigation(url=re.compile(r"done=saved")):
            page.keyboard.press("Enter")
        assert "Nothing left for you" in page.content()

        # 6. The history page, and correcting the ranking.
        page.goto(server.base_url + "/history")
        assert page.locator("#history tbody tr").count() == 3
        assert page.evaluate(NO_OVERFLOW)
        page.screenshot(path=str(SCREENSHOTS / "phone-history.png"), full_page=True)
        ranking_row = page.locator("#history tbody tr", has_text="B > A > C")
        with page.expect_navigation(url=re.compile(r"/history/\d+$")):
            ranking_row.get_by_role("link", name=re.compile("Correct")).click()
        assert page.eval_on_selector_all("input[name=rank]", "els => els.map(e => e.value)") == ["2", "1", "3"]
        page.select_option("select[data-rank-for='0']", "1")
        page.select_option("select[data-rank-for='1']", "2")
        page.screenshot(path=str(SCREENSHOTS / "phone-correction.png"), full_page=True)
        with page.expect_navigation(url=re.compile(r"corrected=\d+")):
            page.click("#judge-form button.primary")
        assert "A > B > C" in page.inner_text("#history") and "(corrected)" in page.inner_text("#history")

        # 7. An admin gives the ranking a known answer on the Gold page.
        admin = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        admin.set_default_timeout(90_000)
        sign_in(admin, server.base_url, admin_link)
        admin.goto(f"{server.base_url}/admin/gold?comparison={ranking_id}")
        admin.fill("#gold-answer", "3,1,2")
        with admin.expect_navigation(url=re.compile(r"saved=")):
            admin.click("text=Make it a gold item")
        assert "B > C > A" in admin.inner_text(f"#gold-items tr[data-comparison='{ranking_id}']")
        admin.screenshot(path=str(SCREENSHOTS / "admin-gold.png"), full_page=True)
        browser.close()
    assert not errors, errors

    reopened = open_project(project.root)
    judgment_id = max(row.judgment_id for row in reopened.store.studio_judgments() if row.kind == "ranking")
    assert len(reopened.store.judgment_revisions(judgment_id)) == 1
    reopened.close()
