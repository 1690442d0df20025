"""The dashboard in a real browser: Debian's Chromium, driven by Playwright, against the app
served by uvicorn on 127.0.0.1. A screenshot of each page goes to test-artifacts/."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from standardwebhooks import Webhook

from .browsers import ARTIFACTS, chromium, playwright_api
from .conftest import ADMIN_TOKEN
from .harness import AppServer, Receiver, Reply, poll
from .test_delivery import attempts_of, deliveries_of, publish, settled, subscribe

expect = playwright_api.expect


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("chromium-profile")) as context:
        yield context


@pytest.fixture
def page(browser, engine):
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    yield page
    page.close()


def shot(page, engine: str, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"ui-{engine}-{name}.png"), full_page=True)


def log_in(page, base: str, target: str = "/ui") -> None:
    page.goto(base + target)
    expect(page).to_have_url(re.compile(r"/ui/login\?next="))
    page.fill("#key", ADMIN_TOKEN)
    page.click("button[type=submit]")
    expect(page).to_have_url(re.compile(re.escape(target) + "$"))


class Switch:
    """A receiver answer that fails until switched on."""

    def __init__(self) -> None:
        self.ok = threading.Event()

    def __call__(self, n, request) -> Reply:
        return Reply(200, b"thanks") if self.ok.is_set() else Reply(500, b"broken today")


def test_log_in_see_a_failed_delivery_retry_it_and_see_it_succeed(
        page, app_server: AppServer, admin, engine):
    base = app_server.url
    switch = Switch()
    with Receiver(switch) as receiver:
        sub = subscribe(admin, receiver.url, description="billing sync")
        event = publish(admin, "invoice.paid", {"id": "in_1", "amount": 4200})
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "failed" and delivery["attempts"] == 3

        # Not logged in: the login form, which brings us back where we were going.
        page.goto(base + "/ui/deliveries")
        expect(page).to_have_url(re.compile(r"/ui/login"))
        shot(page, engine, "login")
        page.fill("#key", "not-a-key-0123456789")
        page.click("button[type=submit]")
        expect(page.locator(".problem")).to_contain_text("Unknown or deleted API key")
        page.fill("#key", ADMIN_TOKEN)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/ui/deliveries$"))

        # The overview counts the failure and names the failing subscription.
        page.click("nav >> text=Overview")
        expect(page.locator("#failed-count")).to_have_text("1")
        expect(page.locator("#failing-subscriptions")).to_have_text("1")
        expect(page.locator("#unwell")).to_contain_text(sub["id"])
        expect(page.locator("svg.chart")).to_have_attribute("data-failed", "3")
        shot(page, engine, "overview")

        # The deliveries page, filtered to the failed ones.
        page.click("a.card[href='/ui/deliveries?status=failed']")
        expect(page).to_have_url(re.compile(r"/ui/deliveries\?status=failed"))
        row = page.locator("#deliveries tbody tr", has_text=delivery["id"])
        expect(row).to_contain_text("failed")
        shot(page, engine, "deliveries")

        # Its detail: every attempt with its status, duration and the response excerpt.
        row.locator(f"a[href='/ui/deliveries/{delivery['id']}']").click()
        expect(page.locator("#delivery-status")).to_contain_text("failed")
        attempts = page.locator("#attempts tbody tr.attempt")
        expect(attempts).to_have_count(3)
        expect(attempts.first).to_contain_text("500")
        expect(attempts.first).to_contain_text("broken today")
        shot(page, engine, "delivery-failed")

        # The receiver is mended; "Retry now", and the page shows the success by itself.
        switch.ok.set()
        page.click("#retry")
        expect(page.locator(".notice")).to_contain_text("One more attempt is scheduled")
        expect(page.locator("#delivery-status")).to_contain_text("succeeded", timeout=15_000)
        expect(attempts).to_have_count(4)
        expect(attempts.last).to_contain_text("manual")
        expect(attempts.last).to_contain_text("200")
        expect(attempts.last).to_contain_text("thanks")
        shot(page, engine, "delivery")

    done = admin.get(f"/v1/deliveries/{delivery['id']}").json()
    assert done["status"] == "succeeded" and done["attempts"] == 4
    assert [a["trigger"] for a in attempts_of(admin, delivery["id"])][-1] == "manual"


def test_bulk_replay_of_the_filtered_failed_deliveries(page, app_server: AppServer, admin,
                                                       engine):
    base = app_server.url
    switch = Switch()
    with Receiver(switch) as broken, Receiver() as healthy:
        failing = subscribe(admin, broken.url, event_types=["order.*"])
        subscribe(admin, healthy.url, event_types=["order.*"])
        other = subscribe(admin, broken.url, event_types=["user.*"])
        events = [publish(admin, "order.created", {"n": n}) for n in range(3)]
        user_event = publish(admin, "user.created", {"n": 9})
        for e in events:
            settled(admin, e["id"], 2)
        [left_alone] = settled(admin, user_event["id"])
        assert left_alone["status"] == "failed"

        log_in(page, base, f"/ui/deliveries?status=failed&subscription_id={failing['id']}")
        expect(page.locator("#deliveries tbody tr")).to_have_count(3)
        page.click("#replay-link")
        expect(page.locator("#replay-count")).to_contain_text("3")
        shot(page, engine, "replay-confirm")

        switch.ok.set()
        page.click("#confirm-replay")
        expect(page).to_have_url(re.compile(r"/ui/replay/rpl_"))
        expect(page.locator("progress")).to_have_attribute("value", "100")
        expect(page.locator("#replay-done")).to_contain_text("3 of 3")
        shot(page, engine, "replay-progress")

        def all_succeeded():
            found = [d for e in events for d in deliveries_of(admin, e["id"])
                     if d["subscription_id"] == failing["id"]]
            return all(d["status"] == "succeeded" for d in found) and found

        poll(all_succeeded, 15, message="replayed deliveries succeeded")
        for d in all_succeeded():
            assert [a["trigger"] for a in attempts_of(admin, d["id"])][-1] == "replay"
        # Another subscription's failed delivery was not part of the filter.
        assert admin.get(f"/v1/deliveries/{left_alone['id']}").json()["status"] == "failed"
        assert other["id"] != failing["id"]


def test_subscription_pages_disable_enable_rotate_and_test(page, app_server: AppServer,
                                                           admin, engine):
    base = app_server.url
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, description="crm sync", event_types=["user.*"])
        event = publish(admin, "user.created", {"id": "u_1"})
        settled(admin, event["id"])

        log_in(page, base, "/ui/subscriptions")
        row = page.locator("#subscriptions tbody tr", has_text=sub["id"])
        expect(row).to_contain_text("enabled")
        expect(row).to_contain_text("last success")
        shot(page, engine, "subscriptions")

        row.locator(f"a[href='/ui/subscriptions/{sub['id']}']").click()
        expect(page.locator("#recent tbody tr")).to_have_count(1)
        expect(page.locator("#recent")).to_contain_text("succeeded")

        page.click("text=Disable")
        expect(page.locator("#state")).to_contain_text("disabled (manual)")
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["enabled"] is False
        page.click("text=Enable and send held deliveries")
        expect(page.locator("#state")).to_contain_text("enabled")
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["enabled"] is True

        page.fill("#grace_hours", "0")
        page.click("text=Rotate secret")
        shown = page.locator("#new-secret code").inner_text().strip()
        assert shown.startswith("whsec_") and shown != sub["secret"]
        assert admin.get(f"/v1/subscriptions/{sub['id']}").json()["secret"] == shown

        page.fill("#type", "user.pinged")
        page.fill("#data", '{"hello": "world"}')
        page.click("text=Send test event")
        expect(page.locator("#test-result")).to_contain_text("succeeded")
        expect(page.locator("#test-result")).to_contain_text("200")
        shot(page, engine, "subscription")
        got = poll(lambda: [r for r in receiver.requests if b"user.pinged" in r.body], 10)
        # Signed with the new secret alone (no grace period), as a receiver checks it.
        Webhook(shown).verify(got[0].body, got[0].headers)
        assert len(deliveries_of(admin, event["id"])) == 1  # the test made no delivery


# ---- the dashboard as an operator uses it (issue 12, item 8) ----------------------------

def fits(page, table: str) -> dict:
    """How wide the table is against its box and the page against the window."""
    return page.evaluate("""(selector) => {
        const table = document.querySelector(selector);
        return {table: table.scrollWidth, box: table.parentElement.clientWidth,
                right: table.getBoundingClientRect().right,
                boxRight: table.parentElement.getBoundingClientRect().right,
                page: document.documentElement.scrollWidth, window: window.innerWidth};
    }""", table)


def test_the_deliveries_table_fits_its_box(page, app_server: AppServer, admin, engine):
    long_type = "inventory.warehouse_replenishment_requested_by_the_supplier_portal_v2"
    with Receiver(lambda n, r: Reply(400, b"no")) as failing, Receiver() as fine:
        subscribe(admin, failing.url, description="Warehouse replenishment (EU, legacy ERP)")
        subscribe(admin, fine.url)
        for n in range(3):
            settled(admin, publish(admin, long_type, {"n": n})["id"], 2)
    log_in(page, app_server.url, "/ui/deliveries")
    expect(page.locator("#deliveries tbody tr")).to_have_count(6)
    try:
        for width in (1280, 1024, 800):
            page.set_viewport_size({"width": width, "height": 900})
            page.reload()
            size = fits(page, "#deliveries")
            assert size["table"] <= size["box"], (width, size)
            assert size["right"] <= size["boxRight"] + 0.5, (width, size)
            assert size["page"] <= size["window"], (width, size)
            shot(page, engine, f"deliveries-{width}")
    finally:
        page.set_viewport_size({"width": 1280, "height": 900})


def test_the_overview_refreshes_itself(page, app_server: AppServer, admin, engine):
    with Receiver(lambda n, r: Reply(500, b"down")) as broken:
        sub = subscribe(admin, broken.url, description="payments relay")
        log_in(page, app_server.url, "/ui")
        expect(page.locator("#failed-count")).to_have_text("0")
        page.evaluate("window.stillTheSamePage = true")
        settled(admin, publish(admin, "invoice.paid", {"n": 1})["id"])
        # No reload: the script brings the new failure within its refresh period (10 s).
        expect(page.locator("#failed-count")).to_have_text("1", timeout=25_000)
        expect(page.locator("#unwell")).to_contain_text("payments relay")
        expect(page.locator("#unwell")).to_contain_text(sub["id"])
        expect(page.locator("#failing-subscriptions")).to_have_text("1")
        assert page.evaluate("window.stillTheSamePage") is True
        shot(page, engine, "overview-refreshed")


def test_date_filters_are_24_hour_utc_whatever_the_browser_locale(
        page, browser, app_server: AppServer, admin, engine):
    # A US browser far from UTC: a datetime-local input would show 12-hour AM/PM, local.
    cdp = browser.new_cdp_session(page)
    cdp.send("Emulation.setLocaleOverride", {"locale": "en-US"})
    cdp.send("Emulation.setTimezoneOverride", {"timezoneId": "America/New_York"})
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        [delivery] = settled(admin, publish(admin)["id"])
    created = datetime.fromisoformat(delivery["created_at"].replace("Z", "+00:00"))
    minute = created.replace(second=0, microsecond=0)
    log_in(page, app_server.url, "/ui/deliveries")
    since = page.locator("#filters input[name=since]")
    assert since.get_attribute("type") == "text"
    assert since.get_attribute("placeholder") == "YYYY-MM-DD HH:MM"
    expect(page.locator("#filters")).to_contain_text("UTC, 24-hour")

    # A 12-hour time does not pass the form's own check: nothing is sent.
    since.fill("2026-12-01 1:00 PM")
    assert since.evaluate("e => e.validity.valid") is False
    page.click("#filters button[type=submit]")
    expect(page).to_have_url(re.compile(r"/ui/deliveries$"))

    # The minute it was created, in UTC and 24 hours, finds it; the next minute does not.
    since.fill(f"{minute:%Y-%m-%d %H:%M}")
    page.click("#filters button[type=submit]")
    expect(page.locator("#deliveries tbody tr", has_text=delivery["id"])).to_have_count(1)
    expect(page.locator("#filters input[name=since]")).to_have_value(f"{minute:%Y-%m-%d %H:%M}")
    later = minute + timedelta(minutes=1)
    page.fill("#filters input[name=since]", f"{later:%Y-%m-%d %H:%M}")
    page.click("#filters button[type=submit]")
    expect(page.locator("#deliveries")).to_contain_text("No deliveries match")
    shot(page, engine, "deliveries-filtered")


# ---- tenants (issue 14) -----------------------------------------------------------------

def test_from_the_tenants_page_to_a_tenant_and_its_deliveries(page, app_server: AppServer,
                                                              admin, engine):
    for tenant_id, body in (("acme", {"name": "Acme <Corp>", "metadata": {"plan": "pro"}}),
                            ("globex", {"name": "Globex"})):
        assert admin.put(f"/v1/tenants/{tenant_id}", json=body).status_code == 201
    with Receiver(lambda n, r: Reply(400, b"no")) as refusing, Receiver() as fine:
        subscribe(admin, refusing.url, description="acme billing", tenant_id="acme")
        subscribe(admin, fine.url, description="acme crm", tenant_id="acme")
        subscribe(admin, refusing.url, description="globex erp", tenant_id="globex")
        found = {}
        for tenant_id, count in (("acme", 2), ("globex", 1)):
            answer = admin.post("/v1/events", json={"type": "invoice.paid", "data": {},
                                                    "tenant_id": tenant_id})
            assert answer.status_code == 202, answer.text
            found[tenant_id] = {d["id"] for d in settled(admin, answer.json()["id"], count)}

    log_in(page, app_server.url, "/ui/tenants")
    expect(page.locator("nav a[aria-current=page]")).to_have_text("Tenants")
    rows = page.locator("#tenants tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("globex")  # newest first
    acme = page.locator("#tenants tr[data-id=acme]")
    expect(acme.locator(".n-subscriptions")).to_have_text("2")
    expect(acme.locator(".n-failing")).to_have_text("1")
    expect(acme.locator(".n-failed")).to_have_text("1")
    shot(page, engine, "tenants")

    acme.locator("a.tenant").click()
    expect(page).to_have_url(re.compile(r"/ui/tenants/acme$"))
    expect(page.locator("#tenant-name")).to_have_text("Acme <Corp>")
    expect(page.locator("#metadata")).to_contain_text('"plan": "pro"')
    expect(page.locator("#subscriptions tbody tr")).to_have_count(2)
    expect(page.locator("#subscriptions")).to_contain_text("acme billing")
    expect(page.locator("#subscriptions")).not_to_contain_text("globex erp")
    shot(page, engine, "tenant")

    page.click("#deliveries-link")
    expect(page).to_have_url(re.compile(r"/ui/deliveries\?tenant_id=acme$"))
    expect(page.locator("#filters input[name=tenant_id]")).to_have_value("acme")
    expect(page.locator("#filtered-tenant")).to_contain_text("Acme <Corp>")
    listed = page.locator("#deliveries tbody tr")
    expect(listed).to_have_count(2)
    shown = {a.get_attribute("href").rsplit("/", 1)[1]
             for a in page.locator("#deliveries a.id").all()}
    assert shown == found["acme"] and not shown & found["globex"]
    shot(page, engine, "tenant-deliveries")
