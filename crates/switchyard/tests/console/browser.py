"""Drives the web console in a real headless Chromium (Debian's, through Playwright) for
crates/switchyard/tests/it/console.rs, which set up the server and check what this prints.

Environment: CHROMIUM (the browser's path), CONSOLE (the console's URL), SCENARIO (one of the
functions below), and per scenario BUS, SUBSCRIPTION, TOKEN; SCREENSHOTS, when set, is a
directory the scenario saves its page to (the pictures of docs/console.md). Each scenario prints
one JSON line of what it saw; any wait that runs out raises, failing the test with Playwright's
message. Every wait is bounded.
"""

import json
import os
import sys

from playwright.sync_api import sync_playwright

WAIT_MS = 30_000


def shot(page, name):
    directory = os.environ.get("SCREENSHOTS")
    if directory:
        # For the pictures only: two more samples (5 s apart), so charts and rates have lines.
        page.wait_for_timeout(11_000)
        page.screenshot(path=os.path.join(directory, f"{name}.png"), full_page=True)


def sign_in(page, console):
    page.goto(console)
    page.fill("#token", os.environ["TOKEN"])
    page.click("#sign-in")
    page.wait_for_selector("#who button", timeout=WAIT_MS)


def overview(page, console):
    """The failing subscription is listed first, with its pending count."""
    page.goto(console)
    wanted = f"{os.environ['BUS']}/{os.environ['SUBSCRIPTION']}"
    first = page.locator("#overview tbody tr").first
    first.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        """([wanted]) => {
            const row = document.querySelector('#overview tbody tr');
            return row && row.dataset.subscription === wanted &&
                row.querySelector('.badge.bad') && Number(row.querySelector('td.pending').textContent) > 0;
        }""",
        arg=[wanted],
        timeout=WAIT_MS,
    )
    shot(page, "overview")
    rows = page.locator("#overview tbody tr")
    return {
        "first": first.get_attribute("data-subscription"),
        "problem": first.locator(".badge.bad").first.inner_text(),
        "pending": int(first.locator("td.pending").inner_text()),
        "rows": [rows.nth(i).get_attribute("data-subscription") for i in range(rows.count())],
    }


def subscription_url(console):
    return f"{console}#/buses/{os.environ['BUS']}/subscriptions/{os.environ['SUBSCRIPTION']}"


def redrive(page, console):
    """A dead letter is selected and redriven, after a confirmation that is first declined (and
    after a purge was asked and dismissed with Esc)."""
    page.goto(subscription_url(console))
    box = page.locator("#dead-letters tbody tr input[type=checkbox]").first
    box.wait_for(timeout=WAIT_MS)
    page.wait_for_selector("svg.chart", timeout=WAIT_MS)
    shot(page, "subscription")
    box.check()
    page.click("#redrive-selected")
    page.wait_for_selector("dialog#confirm[open]", timeout=WAIT_MS)
    asked = page.inner_text("#confirm-text")
    page.click("#confirm-cancel")
    declined = page.inner_text("#dead-letter-status")
    # A purge asked and dismissed with Esc must not come back with the next confirmation.
    page.click("#purge")
    page.wait_for_selector("dialog#confirm[open]", timeout=WAIT_MS)
    page.keyboard.press("Escape")
    page.wait_for_selector("dialog#confirm:not([open])", state="attached", timeout=WAIT_MS)
    page.click("#redrive-selected")
    page.wait_for_selector("dialog#confirm[open]", timeout=WAIT_MS)
    page.click("#confirm-ok")
    page.wait_for_function(
        "() => document.querySelector('#dead-letter-status').textContent.includes('redriven')",
        timeout=WAIT_MS,
    )
    return {"asked": asked, "declined": declined, "status": page.inner_text("#dead-letter-status")}


def replay(page, console):
    """A replay of the last hour is started from the form and its progress shown to the end."""
    page.goto(f"{console}#/replays")
    page.wait_for_selector("#replay-targets input", timeout=WAIT_MS)
    name = page.input_value("#replay-name")
    page.click("#replay-start")
    page.wait_for_selector("dialog#confirm[open]", timeout=WAIT_MS)
    page.click("#confirm-ok")
    row = page.locator(f"#replays tr[data-replay='{name}']")
    row.wait_for(timeout=WAIT_MS)
    page.wait_for_function(
        """([name]) => {
            const row = document.querySelector(`#replays tr[data-replay='${name}']`);
            return row && row.querySelector('.replay-state').textContent === 'completed';
        }""",
        arg=[name],
        timeout=WAIT_MS,
    )
    shot(page, "replays")
    return {
        "name": name,
        "state": row.locator(".replay-state").inner_text(),
        "progress": row.locator("progress").get_attribute("value"),
        "text": row.inner_text(),
    }


def read_only(page, console):
    """A read token sees the subscription and its dead letters but is offered no redrive, and
    the API refuses one sent from the page anyway."""
    sign_in(page, console)
    page.goto(subscription_url(console))
    page.wait_for_selector("#dead-letters tbody tr", timeout=WAIT_MS)
    refused = page.evaluate(
        """async ([bus, name]) => {
            const r = await fetch(`/v1/buses/${bus}/subscriptions/${name}/dead-letters/redrive`,
                {method: 'POST', headers: {'switchyard-console': '1', 'content-type': 'application/json'}, body: '{}'});
            return {status: r.status, body: await r.json()};
        }""",
        [os.environ["BUS"], os.environ["SUBSCRIPTION"]],
    )
    return {
        "who": page.inner_text("#who"),
        "dead_letters": page.locator("#dead-letters tbody tr").count(),
        "redrive_buttons": page.locator("#redrive-selected, #redrive-all, #purge").count(),
        "refused": refused,
    }


def pattern_tester(page, console):
    """An event pasted into the tester lists the bus's subscriptions that take it."""
    page.goto(f"{console}#/test")
    page.wait_for_selector("#test-event", timeout=WAIT_MS)
    page.select_option("#test-bus", os.environ["BUS"])
    page.fill("#test-event", os.environ["EVENT"])
    page.click("#test-run")
    page.wait_for_selector("#test-result ul", timeout=WAIT_MS)
    shot(page, "pattern-tester")
    return {"matches": page.locator("#test-result li").all_inner_texts()}


def sources(page, console):
    page.goto(f"{console}#/sources")
    page.wait_for_selector("#sources tbody tr", timeout=WAIT_MS)
    shot(page, "sources")
    return {"rows": page.locator("#sources tbody tr").all_inner_texts()}


def main():
    scenario = globals()[os.environ["SCENARIO"]]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=os.environ["CHROMIUM"], args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        try:
            seen = scenario(page, os.environ["CONSOLE"])
        finally:
            browser.close()
        seen["page_errors"] = errors
        print(json.dumps(seen))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
