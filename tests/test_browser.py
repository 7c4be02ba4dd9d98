"""The approvals page in real headless Chromium (Debian's, through Playwright), against the live service.

Set AGENTOPS_UPDATE_SCREENSHOT=1 to refresh docs/approvals-page.png from this run.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx
import pytest
from fakes import needs

from agentops.settings import PROJECT_ROOT

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a container without a GPU, a sandbox or a network (docs: ../shared/ARCHITECTURE.md, "Browser").
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
PROD_INTENT = "deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%"
TIMEOUT_MS = 20_000


@pytest.fixture
def browser():
    needs(CHROMIUM.exists(), "Chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


def submit(url: str, key: str, intent: str, env: str = "prod") -> dict:
    response = httpx.post(f"{url}/plans", json={"intent": intent, "env": env}, headers={"Authorization": f"Bearer {key}"}, timeout=60)
    assert response.status_code in (201, 202), response.text
    return response.json()


def sign_in(page, key: str) -> None:
    field = page.get_by_label("API key")
    field.focus()
    page.keyboard.type(key)
    page.keyboard.press("Enter")


def test_sign_in_see_a_pending_prod_plan_approve_it_and_see_it_deployed(start_service, browser, tmp_path):
    from playwright.sync_api import expect

    url, keys = start_service()
    plan = submit(url, keys["alice@example.com"], PROD_INTENT)
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(url)

    # A wrong key is refused on the page itself.
    sign_in(page, "ak_wrong")
    expect(page.get_by_role("alert")).to_have_text("That key was not accepted.")

    # The requester sees their plan and cannot approve it.
    sign_in(page, keys["alice@example.com"])
    card = page.locator("article.plan", has_text="fraud-detector-prod")
    expect(card).to_be_visible()
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_contain_text("Refused: alice@example.com has requester; this needs the approver role")

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_label("API key")).to_be_focused()

    # The approver, with the keyboard alone.
    sign_in(page, keys["bob@example.com"])
    expect(page.locator("#who-name")).to_have_text("bob@example.com")
    expect(card.locator('[data-f="peak"]')).to_have_text("$2.82/h")
    expect(card.locator('[data-f="approvals"]')).to_have_text("0 of 1")
    expect(card).to_contain_text("every prod deployment needs human approval")  # why it needs approval
    expect(card.locator(".warnings")).to_contain_text("no artifact named")  # the planner's warning
    expect(card.locator('[data-f="changes-note"]')).to_contain_text("fraud-detector-prod")  # against what runs now
    expect(card.locator("table.kv").first).to_contain_text("ml.g5.xlarge")
    card.locator("summary").focus()
    page.keyboard.press("Enter")  # open the policy evidence
    expect(card.locator(".evidence .passage").first).to_be_visible()

    card.get_by_label("Reason").focus()
    page.keyboard.type("capacity and cost reviewed")
    page.keyboard.press("Tab")
    expect(card.get_by_role("button", name="Approve")).to_be_focused()
    page.keyboard.press("Enter")

    # Without a reload: the plan leaves the queue and shows up deployed among recent plans.
    expect(page.get_by_text("Nothing is waiting for a decision.")).to_be_visible()
    row = page.locator("#recent tbody tr", has_text="fraud-detector-prod")
    expect(row.locator(".status")).to_have_text("deployed")
    expect(row).to_contain_text("bob@example.com")

    # A new request appears by itself; rejecting it needs a reason.
    second = submit(url, keys["alice@example.com"], "deploy churn-predictor to prod on 2 ml.m5.xlarge, canary 10%")
    new_card = page.locator("article.plan", has_text="churn-predictor")
    expect(new_card).to_be_visible()
    shot = PROJECT_ROOT / "docs" / "approvals-page.png" if os.environ.get("AGENTOPS_UPDATE_SCREENSHOT") == "1" else tmp_path / "page.png"
    page.screenshot(path=str(shot), full_page=True)
    new_card.get_by_role("button", name="Reject").click()
    expect(new_card.get_by_role("status")).to_have_text("Say why you reject it.")
    new_card.get_by_label("Reason").fill("not during the freeze")
    new_card.get_by_role("button", name="Reject").click()
    expect(page.locator("#recent tbody tr", has_text="churn-predictor").locator(".status")).to_have_text("rejected")

    status = httpx.get(f"{url}/plans/{plan['plan_id']}", headers={"Authorization": f"Bearer {keys['victor@example.com']}"}).json()
    assert status["status"] == "deployed" and status["decision"]["approver"] == "bob@example.com"
    assert status["decision"]["reason"] == "capacity and cost reviewed"
    assert second["plan_id"] != plan["plan_id"]
    assert not [e for e in console_errors if not re.search(r"status of 40[13]", e)], console_errors


@pytest.mark.parametrize("width", [1280, 420])
def test_a_300_character_word_wraps_inside_its_card(start_service, browser, width):
    """A long unbroken word in an intent must not widen its card and push the cost and buttons out of view;
    and the page runs under its Content-Security-Policy with nothing refused."""
    from playwright.sync_api import expect

    url, keys = start_service()
    word = "x" * 300
    submit(url, keys["alice@example.com"], f"deploy fraud-detector v3 to prod on 2 ml.g5.xlarge, canary 10%, note {word}")
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    console_errors = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(url)
    sign_in(page, keys["bob@example.com"])
    card = page.locator("article.plan", has_text="fraud-detector-prod")
    expect(card).to_be_visible()
    expect(card.locator('[data-f="intent"]')).to_contain_text(word)

    page_width = page.evaluate("document.documentElement.clientWidth")
    assert page.evaluate("document.documentElement.scrollWidth") <= page_width, "the page scrolls sideways"
    for part in (card, card.locator('[data-f="intent"]'), card.locator('[data-f="peak"]'), card.get_by_role("button", name="Approve")):
        box = part.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= page_width + 0.5, (part, box, page_width)
    assert not [e for e in console_errors if "Content Security Policy" in e or "Refused" in e], console_errors


def test_the_api_docs_render_under_the_content_security_policy(start_service, browser):
    from playwright.sync_api import expect

    url, _ = start_service()
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    console_errors, requests = [], []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("request", lambda request: requests.append(request.url))
    page.goto(f"{url}/docs")
    expect(page.get_by_text("/plans/{plan_id}/decisions").first).to_be_visible()
    assert all(r.startswith(url) or r.startswith("data:") for r in requests), [r for r in requests if not r.startswith(url)]
    assert not [e for e in console_errors if "Content Security Policy" in e], console_errors
