"""The studio in a real browser (Debian's Chromium driven by Playwright) against a real uvicorn server.

An admin adds an annotator, who signs in with the link, judges five comparisons of each kind by keyboard
only, skips one and undoes one; the dashboard then shows the right counts. Screenshots go to
test-output/studio/ for a person to look at.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from apprentice.cli import app as cli_app
from apprentice.project import init_project
from studio_fixtures import StudioServer, seed_comparisons

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-output" / "studio"


def launch(playwright: Any) -> Any:
    # Debian's Chromium, never a browser that Playwright downloads.
    return playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        headless=True,
        args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
    )


def path_of(link: str) -> str:
    return re.sub(r"^https?://[^/]+", "", link.strip())


def sign_in(page: Any, base_url: str, link: str) -> None:
    page.goto(base_url + path_of(link))
    # The button takes the focus by `autofocus`, which a busy browser may apply a moment after the load.
    page.wait_for_function("document.activeElement && document.activeElement.type === 'submit'")
    with page.expect_navigation(url=re.compile(r"/(judge|admin)")):
        page.keyboard.press("Enter")  # the Sign in button has the focus


def test_an_annotator_judges_every_kind_by_keyboard_and_the_dashboard_counts(tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "install Debian's chromium (apt-get install -y chromium); make test does"
    project = init_project(tmp_path / "project")
    (project.root / "guidelines.md").write_text(
        "# How to judge\n\nPrefer the **more helpful** answer.\n", encoding="utf-8"
    )
    seed_comparisons(project.store, pairs=6, rankings=5, ratings=5, ranking_size=3)  # one pair gets skipped
    project.close()
    added = CliRunner().invoke(cli_app, ["annotators", "add", "root", "--admin", "-p", str(project.root)])
    assert added.exit_code == 0, added.output
    admin_link = added.output.split()[-1]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    console_errors: list[str] = []

    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        admin = browser.new_context().new_page()
        admin.set_default_timeout(90_000)  # generous: CI machines can be busy
        sign_in(admin, server.base_url, admin_link)
        admin.goto(server.base_url + "/admin/annotators")
        admin.fill("#new-name", "alice")
        with admin.expect_navigation():
            admin.keyboard.press("Enter")
        alice_link = admin.input_value("#new-link")

        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.set_default_timeout(90_000)
        page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
        page.on("request", lambda request: _assert_local(request.url, server.base_url))
        sign_in(page, server.base_url, alice_link)
        judged = {"pair": 0, "ranking": 0, "rating": 0}
        skipped = undone = 0
        shots: set[str] = set()
        while True:
            form = page.query_selector("#judge-form")
            if form is None:
                break
            kind = form.get_attribute("data-kind")
            assert kind in judged
            if kind == "pair" and skipped == 0:
                page.keyboard.press("s")
                page.wait_for_selector("#skip-dialog[open]")
                page.keyboard.type("I do not know this topic")
                _shot(page, "skip-dialog", shots)
                with page.expect_navigation(url=re.compile(r"done=skipped")):
                    page.keyboard.press("Enter")
                skipped += 1
                continue
            if kind == "pair":
                page.keyboard.press(["1", "2", "t", "b", "1"][judged["pair"]])
            elif kind == "ranking" and judged["ranking"] == 1:
                items = page.locator(".rank-item")
                dragged = items.nth(2).get_attribute("data-index")
                items.nth(2).drag_to(items.nth(0))  # the mouse way: drop the third on top of the first
                ranks = page.eval_on_selector_all("input[name=rank]", "els => els.map(e => Number(e.value))")
                assert sorted(ranks) == [1, 2, 3] and ranks[int(dragged or 0)] == 1, ranks
            elif kind == "ranking":
                page.keyboard.press("ArrowDown")  # focus the first response (A); nothing is ranked yet
                page.keyboard.press("3")  # rank A 3rd
                page.keyboard.press("ArrowDown")  # B
                page.keyboard.press("1")  # rank B 1st: the list becomes B, A, C
                page.keyboard.press("ArrowDown")  # A
                page.keyboard.press("ArrowDown")  # C
                page.keyboard.press("3")  # C 3rd too, tied with A
                ranks = page.eval_on_selector_all("input[name=rank]", "els => els.map(e => Number(e.value))")
                assert ranks == [3, 1, 3], ranks
                page.keyboard.press("Alt+ArrowUp")  # move C above A: B 1, C 2, A 3
                ranks = page.eval_on_selector_all("input[name=rank]", "els => els.map(e => Number(e.value))")
                assert ranks == [3, 1, 2], ranks
            else:
                page.keyboard.press("6")
                page.keyboard.press("r")
                page.keyboard.type("Clear and correct")
            _shot(page, f"judge-{kind}", shots)
            if kind == "pair" and judged["pair"] == 0:
                page.keyboard.press("?")
                page.wait_for_selector("#help-dialog[open]")
                _shot(page, "keys-dialog", shots)
                page.keyboard.press("Escape")
            with page.expect_navigation(url=re.compile(r"done=(saved|gold)")):
                page.keyboard.press("Enter")
            judged[kind] += 1
            if undone == 0 and kind == "ranking":
                with page.expect_navigation(url=re.compile(r"done=undone")):
                    page.keyboard.press("u")
                assert "taken back" in page.inner_text("#live")
                _shot(page, "after-undo", shots)
                judged[kind] -= 1
                undone += 1
        assert "Nothing left for you" in page.content()
        assert judged == {"pair": 5, "ranking": 5, "rating": 5} and skipped == 1 and undone == 1

        with page.expect_navigation(url=re.compile(r"/guidelines")):
            page.keyboard.press("g")
        assert "How to judge" in page.inner_text("main")

        admin.goto(server.base_url + "/admin")
        row = admin.locator("tr[data-annotator=alice]")
        assert row.locator(".judgments").inner_text() == "15"
        assert row.locator(".skips").inner_text() == "1"
        assert admin.inner_text("#total-judgments") == "15"
        admin.set_viewport_size({"width": 1280, "height": 1000})
        admin.screenshot(path=str(SCREENSHOTS / "dashboard.png"), full_page=True)
        browser.close()
    assert not console_errors, console_errors

    from apprentice.project import open_project

    reopened = open_project(project.root)
    rows = reopened.store.studio_judgments()
    assert len(rows) == 15 and all(row.duration_ms is not None and row.duration_ms >= 0 for row in rows)
    reopened.close()


def _assert_local(url: str, base_url: str) -> None:
    if not (url.startswith(base_url) or url.startswith("data:")):
        pytest.fail(f"the page tried to load {url} from outside the studio")


def _shot(page: Any, name: str, taken: set[str]) -> None:
    if name not in taken:
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
        taken.add(name)


def test_sign_out_everywhere_ends_a_copied_session_and_a_link_opened_elsewhere_signs_no_one_in(
    tmp_path: Path,
) -> None:
    """In the browser: a copy of the session cookie dies with "Sign out everywhere"; a sign-in form whose
    link was opened in another browser (login CSRF) is refused."""
    from playwright.sync_api import sync_playwright

    project = init_project(tmp_path / "project")
    seed_comparisons(project.store, pairs=2, rankings=0, ratings=0)
    project.close()
    links = []
    for name in ("alice", "mallory"):
        added = CliRunner().invoke(cli_app, ["annotators", "add", name, "-p", str(project.root)])
        assert added.exit_code == 0, added.output
        links.append(path_of(added.output.split()[-1]))
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    with StudioServer(project.root) as server, sync_playwright() as playwright:
        browser = launch(playwright)
        first = browser.new_context()
        page = first.new_page()
        page.set_default_timeout(90_000)
        sign_in(page, server.base_url, links[0])
        copy = browser.new_context(storage_state=first.storage_state()).new_page()
        copy.set_default_timeout(90_000)
        copy.goto(server.base_url + "/judge")
        assert copy.query_selector("#judge-form") is not None  # the copied cookie works so far
        page.goto(server.base_url + "/account")
        page.screenshot(path=str(SCREENSHOTS / "account.png"), full_page=True)
        with page.expect_navigation(url=re.compile(r"/signed-out")):
            page.click("form[action='/account/signout-everywhere'] button")
        copy.goto(server.base_url + "/judge")
        assert "Sign in with the link" in copy.inner_text("main")

        # Mallory opens her own link and plants its form on a page of hers; alice's browser posts it.
        attacker = browser.new_context().new_page()
        attacker.set_default_timeout(90_000)
        attacker.goto(server.base_url + links[1])
        form = attacker.inner_html("form")
        victim = browser.new_context().new_page()
        victim.set_default_timeout(90_000)
        victim.goto(server.base_url + "/signed-out")
        victim.set_content(f'<form method="post" action="{server.base_url}/signin">{form}</form>')
        with victim.expect_navigation():
            victim.click("button")
        assert "stale or came from elsewhere" in victim.content()
        assert not any(cookie["name"] == "apprentice_session" for cookie in victim.context.cookies())
        browser.close()
