"""The demo page in a real browser: Debian's Chromium, headless, driven by Playwright.

Only 127.0.0.1 is reachable from the page: the browser resolves no other host, and
any request elsewhere is aborted and fails the test. A screenshot of the page is
saved for people to look at; the test prints where.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest
from space_process import app_env, running_app

from profile_rec.recommender import ProfileRecommender

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
]
READ_TABLE = """() => Array.from(
    document.querySelectorAll('#results .virtual-row'),
    row => Array.from(
        row.querySelectorAll('[role=gridcell]'), cell => cell.innerText.trim()))"""


def shown_rows(model: ProfileRecommender, person: dict, k: int) -> list[list[str]]:
    """The table rows as the page displays them (JavaScript number formatting)."""
    result = model.recommend(**person, k=k)
    return [
        [
            str(rank),
            row.title,
            "" if pd.isna(row.year) else str(int(row.year)),
            ", ".join(row.genres),
            format(round(float(row.predicted_rating), 2), "g"),
        ]
        for rank, row in enumerate(result.itertuples(), start=1)
    ]


@pytest.fixture
def browser_page(tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(
            "needs Debian's Chromium at /usr/bin/chromium: "
            "apt-get update && apt-get install -y chromium"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 1000},
        )
        external: list[str] = []

        def only_local(route):
            host = urlsplit(route.request.url).hostname
            if host == "127.0.0.1":
                route.continue_()
            else:
                external.append(route.request.url)
                route.abort()

        context.route("**/*", only_local)
        page = context.new_page()
        page.set_default_timeout(60_000)
        try:
            yield page
        finally:
            context.close()
        assert external == [], f"the page tried to reach other hosts: {external}"


@pytest.fixture
def screenshots(tmp_path) -> Path:
    folder = Path(os.environ.get("PROFILE_REC_SCREENSHOTS", tmp_path / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    print(f"\nScreenshots of the demo page: {folder}")
    return folder


def wait_for_rows(page, rows: list[list[str]]) -> None:
    """Wait until the table lists exactly the titles of ``rows``, in order."""
    page.wait_for_function(
        f"""titles => {{
            const shown = ({READ_TABLE})().map(row => row[1]);
            return shown.length === titles.length
                && shown.every((title, i) => title === titles[i]);
        }}""",
        arg=[row[1] for row in rows],
    )


def pick(page, field: str, option: str) -> None:
    page.locator(f"#{field} input[role=combobox]").click()
    page.get_by_role("option", name=option, exact=True).click()


def test_person_chooses_inputs_and_reads_recommendations(
    artifacts_dir, browser_page, screenshots, tmp_path
):
    model = ProfileRecommender.from_pretrained(artifacts_dir)
    page = browser_page
    env = app_env(tmp_path, MODEL_REPO=str(artifacts_dir), HF_HUB_OFFLINE="1")
    command = [sys.executable, str(ROOT / "space_app" / "app.py")]
    with running_app(command, cwd=tmp_path, env=env) as app:
        page.goto(app.url)

        # On load the page recommends for its default person.
        default = {
            "age": "25-34",
            "gender": "F",
            "occupation": "programmer",
            "genres": ["Comedy", "Romance"],
        }
        wait_for_rows(page, shown_rows(model, default, 10))

        # A 56+ retired man who likes drama asks for five movies.
        pick(page, "age", "56+")
        page.locator("#gender").get_by_role("radio", name="Male", exact=True).check()
        page.locator("#occupation input[role=combobox]").fill("retired")
        page.get_by_role("option", name="retired", exact=True).click()
        page.locator("#genres [title=Clear]").click()
        pick(page, "genres", "Drama")
        page.locator("#count input[type=number]").fill("5")
        page.locator("#count input[type=number]").press("Tab")
        page.get_by_role("button", name="Recommend", exact=True).click()
        person = {"age": 56, "gender": "M", "occupation": "retired", "genres": "Drama"}
        expected = shown_rows(model, person, 5)
        wait_for_rows(page, expected)
        assert page.evaluate(READ_TABLE) == expected

        profile = model.assign_profile(**person)
        explanation = page.locator("#profile")
        assert f"You were matched with profile {profile}" in explanation.inner_text()
        bars = page.locator("#leanings [aria-roledescription=bar]")
        bars.first.wait_for(state="attached")
        assert bars.count() == len(model.config["vocabulary"]["genres"])
        page.screenshot(path=screenshots / "space-page.png", full_page=True)

        # No genre: a friendly message, and the table stays as it was.
        page.locator("#genres [title=Clear]").click()
        page.get_by_role("button", name="Recommend", exact=True).click()
        message = page.get_by_text("Choose at least one favourite genre")
        message.first.wait_for()
        page.wait_for_timeout(1000)  # Let the toast finish fading in for the picture.
        page.screenshot(path=screenshots / "space-no-genre.png")
        assert page.evaluate(READ_TABLE) == expected

        # An example fills in the inputs and recommends at once.
        page.get_by_text("Animation, Children's, Adventure", exact=True).click()
        child = {
            "age": "Under 18",
            "gender": "M",
            "occupation": "K-12 student",
            "genres": ["Animation", "Children's", "Adventure"],
        }
        wait_for_rows(page, shown_rows(model, child, 10))
        assert page.locator("#age input[role=combobox]").input_value() == "Under 18"
    assert not any("Traceback" in line for line in app.output), app.output
