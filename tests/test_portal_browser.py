"""The tenant portal in a real browser: Debian's Chromium, driven by Playwright, against the
app on 127.0.0.1 and real receivers. An admin makes a tenant and a portal link over the API;
the customer opens the link and does the rest in the page. A screenshot of every page goes
to test-artifacts/portal-*.png; with DISPATCHER_WRITE_SCREENSHOTS=1 the README's two portal
screenshots are written to docs/screenshots/ as well.

One engine (SQLite) is enough here: the portal's HTTP tests run on both.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook

from dispatcher.store.rows import hash_key

from .browsers import ARTIFACTS, chromium, playwright_api
from .conftest import ADMIN_TOKEN
from .harness import AppServer, Receiver, Reply, ServeProcess, poll
from .test_delivery import attempts_of, deliveries_of, settled, subscribe

expect = playwright_api.expect
pytestmark = pytest.mark.parametrize("engine", ["sqlite"], indirect=True)

SCREENSHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
WRITE_SCREENSHOTS = os.environ.get("DISPATCHER_WRITE_SCREENSHOTS") == "1"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with chromium(tmp_path_factory.mktemp("chromium-portal-profile")) as context:
        yield context


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    browser.clear_cookies()
    page = browser.new_page()
    page.set_default_timeout(15_000)
    yield page
    page.close()


class Shots:
    """Screenshots of one test's pages, numbered in the order they were visited."""

    def __init__(self, page: Any, test: str) -> None:
        self.page, self.test, self.taken = page, test, 0

    def __call__(self, name: str) -> None:
        self.taken += 1
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"portal-{self.test}-{self.taken:02d}-"
                                                  f"{name}.png"), full_page=True)


class Switch:
    """A receiver's answer: 500 until switched on, then 200."""

    def __init__(self) -> None:
        self.ok = threading.Event()

    def __call__(self, n: int, request: Any) -> Reply:
        return Reply(200, b"thanks") if self.ok.is_set() else Reply(500, b"broken today")


@contextmanager
def portal_app(make_settings: Callable[..., Any], **overrides: object
               ) -> Iterator[tuple[AppServer, httpx.Client]]:
    """The app and an admin client for it; its portal links name the port it listens on."""
    settings = make_settings(**overrides)
    with AppServer(settings) as server, httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30) as admin:
        settings.public_url = server.url  # read per request; the port is known only now
        yield server, admin


def make_tenant(admin: httpx.Client, tenant_id: str, name: str) -> None:
    answer = admin.put(f"/v1/tenants/{tenant_id}", json={"name": name})
    assert answer.status_code == 201, answer.text


def portal_link(admin: httpx.Client, tenant_id: str, **body: object) -> str:
    answer = admin.post(f"/v1/tenants/{tenant_id}/portal-links", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()["url"]


def publish_for(admin: httpx.Client, tenant_id: str, event_type: str, data: dict) -> dict:
    answer = admin.post("/v1/events", json={"type": event_type, "data": data,
                                            "tenant_id": tenant_id})
    assert answer.status_code == 202, answer.text
    return answer.json()


def open_link(page: Any, link: str) -> None:
    """The customer follows the link: the gate page trades its secret for a session."""
    page.goto(link)
    expect(page.locator("#endpoints")).to_be_visible()
    # The secret left the address bar (and the history entry, which was replaced).
    assert "#" not in page.url and "ptk_" not in page.url, page.url
    assert page.evaluate("location.hash") == ""


def csrf_of(page: Any) -> str:
    return page.locator("form.logout input[name=csrf]").get_attribute("value")


def forged_post(page: Any, path: str, fields: dict[str, str]) -> dict:
    """A POST made by script from the page, with the session's own CSRF token: status, text."""
    return page.evaluate("""async ([path, fields]) => {
        const answer = await fetch(path, {method: "POST", credentials: "same-origin",
                                          body: new URLSearchParams(fields)});
        return {status: answer.status, text: await answer.text()};
    }""", [path, fields])


def utc_minute_text(when: datetime) -> str:
    return f"{when:%Y-%m-%d %H:%M:%S}"


def requests_for(receiver: Receiver, event_id: str) -> list[Any]:
    """The requests the receiver got for ``event_id``, oldest first."""
    return [r for r in list(receiver.requests) if r.headers.get("webhook-id") == event_id]


def delivery_of(admin: httpx.Client, event_id: str) -> dict:
    [delivery] = deliveries_of(admin, event_id)
    return delivery


# ---- 1. the customer's whole flow -------------------------------------------------------

def test_a_customer_adds_an_endpoint_sees_it_fail_and_recovers(page, make_settings):
    shot = Shots(page, "flow")
    switch = Switch()
    with Receiver(switch) as receiver, portal_app(make_settings) as (server, admin):
        make_tenant(admin, "acme", "Acme Corp")
        link = portal_link(admin, "acme")
        assert link.startswith(f"{server.url}/portal#ptk_"), link

        open_link(page, link)
        expect(page.locator("#endpoints")).to_contain_text("No endpoints yet")
        shot("endpoints-empty")

        # A new endpoint, through the form.
        page.click("#new-endpoint")
        expect(page).to_have_url(re.compile(r"/portal/endpoints/new$"))
        shot("endpoint-new")
        page.fill("#url", receiver.url)
        page.fill("#event_types", "invoice.paid, invoice.refunded")
        page.fill("#description", "billing sync")
        page.fill("#headers", "X-Team: billing")
        page.click("#save")
        expect(page.locator("#new-secret")).to_be_visible()
        secret = page.locator("#new-secret code").inner_text().strip()
        assert secret.startswith("whsec_")
        sub_id = page.locator("code.id").first.inner_text().strip()
        assert sub_id.startswith("sub_")
        shot("endpoint-created")
        sub = admin.get(f"/v1/subscriptions/{sub_id}").json()
        assert sub["tenant_id"] == "acme" and sub["url"] == receiver.url
        assert sub["event_types"] == ["invoice.paid", "invoice.refunded"]
        assert sub["headers"] == {"X-Team": "billing"} and sub["secret"] == secret

        # Shown once: the endpoint's page, seen again, no longer holds it.
        page.goto(f"{server.url}/portal/endpoints/{sub_id}")
        expect(page.locator("#new-secret")).to_have_count(0)
        assert secret not in page.content()
        shot("endpoint")

        # A test send: the receiver's answer (500) is shown; it was signed with the secret.
        page.fill("#type", "invoice.test")
        page.fill("#data", '{"hello": "world"}')
        page.click("#send-test")
        expect(page.locator("#test-result")).to_contain_text("500")
        expect(page.locator("#test-result")).to_contain_text("broken today")
        shot("test-sent-500")
        [probe] = receiver.requests
        assert Webhook(secret).verify(probe.body, probe.headers)["data"] == {"hello": "world"}
        assert probe.headers["x-team"] == "billing"

        # An event for the tenant fails three times (the test retry schedule) for good.
        event = publish_for(admin, "acme", "invoice.paid", {"invoice": "in_4711"})
        [delivery] = settled(admin, event["id"])
        assert delivery["status"] == "failed" and delivery["attempts"] == 3
        first = requests_for(receiver, event["id"])[0]
        assert Webhook(secret).verify(first.body, first.headers)["data"] == \
            {"invoice": "in_4711"}

        page.click("nav >> text=Deliveries")
        expect(page).to_have_url(re.compile(r"/portal/deliveries$"))
        row = page.locator("#deliveries tbody tr", has_text=delivery["id"])
        expect(row).to_contain_text("failed")
        expect(row).to_contain_text("billing sync")
        expect(row).to_contain_text("500")
        shot("deliveries-failed")

        row.locator(f"a[href='/portal/deliveries/{delivery['id']}']").click()
        expect(page.locator("#delivery-status")).to_contain_text("failed")
        attempts = page.locator("#attempts tbody tr.attempt")
        expect(attempts).to_have_count(3)
        expect(attempts.first).to_contain_text("broken today")
        expect(page.locator("#payload")).to_contain_text("in_4711")
        shot("delivery-failed")

        # The receiver is mended; Retry, and the page shows the success by itself.
        switch.ok.set()
        page.click("#retry")
        expect(page.locator(".notice")).to_contain_text("One more attempt is scheduled")
        expect(page.locator("#delivery-status")).to_contain_text("succeeded", timeout=15_000)
        expect(attempts).to_have_count(4)
        expect(attempts.last).to_contain_text("200")
        expect(attempts.last).to_contain_text("thanks")
        shot("delivery-retried")
        assert len(requests_for(receiver, event["id"])) == 4
        assert [a["trigger"] for a in attempts_of(admin, delivery["id"])][-1] == "manual"

        # More failures, then recover everything that failed since a time.
        switch.ok.clear()
        since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
        later = [publish_for(admin, "acme", "invoice.refunded", {"refund": f"re_{n}"})
                 for n in range(2)]
        for e in later:
            assert settled(admin, e["id"])[0]["status"] == "failed"
        page.click("nav >> text=Endpoints")
        expect(page).to_have_url(re.compile(r"/portal$"))
        page.locator(f"#endpoints tr[data-id={sub_id}] a.sub").click()
        expect(page).to_have_url(re.compile(rf"/portal/endpoints/{sub_id}$"))
        shot("endpoint-failing")
        page.fill("#since", utc_minute_text(since))
        page.click("#recover")
        expect(page.locator("#recover-count")).to_contain_text("2 failed deliveries")
        assert page.locator("#recover-count strong").inner_text() == "2"
        shot("recover-count")
        switch.ok.set()
        page.click("#confirm-recover")
        expect(page.locator("#recovered")).to_have_text(
            "2 failed deliveries will be sent again.")
        shot("recovered")

        def recovered() -> bool:
            return all(delivery_of(admin, e["id"])["status"] == "succeeded" for e in later)

        poll(recovered, 15, message="recovered deliveries succeeded")
        for e in later:
            [last] = requests_for(receiver, e["id"])[-1:]
            assert Webhook(secret).verify(last.body, last.headers)["type"] == "invoice.refunded"
        # The one that had already succeeded was not sent again.
        assert len(requests_for(receiver, event["id"])) == 4

        # Edit.
        page.goto(f"{server.url}/portal/endpoints/{sub_id}")
        shot("endpoint-healthy")
        page.click("#edit")
        expect(page).to_have_url(re.compile(rf"/portal/endpoints/{sub_id}/edit$"))
        expect(page.locator("#url")).to_have_value(receiver.url)
        expect(page.locator("#description")).to_have_value("billing sync")
        shot("endpoint-edit")
        page.fill("#description", "billing sync (EU)")
        page.fill("#headers", "X-Team: billing-eu")
        page.click("#save")
        expect(page).to_have_url(re.compile(rf"/portal/endpoints/{sub_id}\?done=saved$"))
        expect(page.locator(".notice")).to_contain_text("Your changes are saved.")
        expect(page.locator("h1")).to_contain_text("billing sync (EU)")
        shot("endpoint-saved")
        sub = admin.get(f"/v1/subscriptions/{sub_id}").json()
        assert sub["description"] == "billing sync (EU)"
        assert sub["headers"] == {"X-Team": "billing-eu"}

        # Disable, enable.
        page.click("#disable")
        expect(page.locator("#state")).to_contain_text("disabled (manual)")
        assert admin.get(f"/v1/subscriptions/{sub_id}").json()["enabled"] is False
        shot("endpoint-disabled")
        page.click("#enable")
        expect(page.locator("#state")).to_contain_text("enabled")
        assert admin.get(f"/v1/subscriptions/{sub_id}").json()["enabled"] is True
        shot("endpoint-enabled")

        # Rotate: the new secret is shown once; both sign during the grace period.
        page.fill("#grace_hours", "1")
        page.click("#rotate")
        expect(page.locator("#new-secret")).to_contain_text("keeps signing for 1")
        rotated = page.locator("#new-secret code").inner_text().strip()
        assert rotated.startswith("whsec_") and rotated != secret
        shot("endpoint-rotated")
        assert admin.get(f"/v1/subscriptions/{sub_id}").json()["secret"] == rotated
        page.fill("#type", "invoice.rotated")
        page.click("#send-test")
        expect(page.locator("#test-result")).to_contain_text("200")
        shot("test-sent-200")
        probe = poll(lambda: [r for r in receiver.requests if b"invoice.rotated" in r.body])[0]
        assert probe.headers["x-team"] == "billing-eu"
        for key in (secret, rotated):
            Webhook(key).verify(probe.body, probe.headers)
        assert len(probe.headers["webhook-signature"].split()) == 2
        page.goto(f"{server.url}/portal/endpoints/{sub_id}")
        expect(page.locator("#new-secret")).to_have_count(0)
        assert rotated not in page.content()
        shot("endpoint-after-rotate")

        # Delete, with its confirmation page.
        page.click("#delete")
        expect(page).to_have_url(re.compile(rf"/portal/endpoints/{sub_id}/delete$"))
        expect(page.locator("main")).to_contain_text(receiver.url)
        shot("endpoint-delete-confirm")
        page.click("#confirm-delete")
        expect(page).to_have_url(re.compile(r"/portal\?done=deleted$"))
        expect(page.locator(".notice")).to_contain_text("The endpoint is deleted")
        expect(page.locator("#endpoints")).not_to_contain_text(receiver.url)
        shot("endpoint-deleted")
        assert admin.get(f"/v1/subscriptions/{sub_id}").status_code == 404

        # Log out: the session is over, the portal's pages are the gate again.
        page.click("form.logout button")
        expect(page).to_have_url(re.compile(r"/portal/ended$"))
        shot("logged-out")
        answer = page.goto(f"{server.url}/portal")
        assert answer.status == 401
        expect(page.locator("#gate-message")).to_contain_text("expired or was revoked")
        shot("gate-after-logout")


# ---- 2. one tenant's session sees nothing of another's ----------------------------------

def test_another_tenants_ids_are_not_found_and_a_read_only_link_changes_nothing(
        page, make_settings):
    shot = Shots(page, "isolation")
    with Receiver() as mine, Receiver(lambda n, r: Reply(500, b"globex-down")) as theirs, \
            portal_app(make_settings) as (server, admin):
        make_tenant(admin, "acme", "Acme Corp")
        make_tenant(admin, "globex", "Globex Corp")
        a_sub = subscribe(admin, mine.url, description="acme crm", tenant_id="acme")
        b_url = theirs.url + "?route=globex-private-route"
        b_sub = subscribe(admin, b_url, description="globex erp relay", tenant_id="globex")
        a_event = publish_for(admin, "acme", "invoice.paid", {"customer": "acme-customer-1"})
        b_event = publish_for(admin, "globex", "invoice.paid",
                              {"customer": "globex-customer-secret-77"})
        [a_dlv] = settled(admin, a_event["id"])
        [b_dlv] = settled(admin, b_event["id"])
        assert (a_dlv["status"], b_dlv["status"]) == ("succeeded", "failed")
        theirs_data = ("globex", b_url, "globex-private-route", "globex erp relay",
                       "globex-customer-secret-77", "globex-down", b_sub["secret"][:10])

        def shows_nothing_of_b() -> None:
            content = page.content()
            for value in theirs_data:
                assert value not in content, (page.url, value)

        open_link(page, portal_link(admin, "acme"))
        expect(page.locator(f"#endpoints tr[data-id={a_sub['id']}]")).to_be_visible()
        expect(page.locator("#endpoints tbody tr")).to_have_count(1)
        shows_nothing_of_b()
        shot("a-endpoints")
        page.goto(f"{server.url}/portal/deliveries")
        expect(page.locator("#deliveries tbody tr")).to_have_count(1)
        expect(page.locator("#deliveries")).to_contain_text(a_dlv["id"])
        shows_nothing_of_b()
        shot("a-deliveries")

        for path in (f"/portal/endpoints/{b_sub['id']}", f"/portal/endpoints/{b_sub['id']}/edit",
                     f"/portal/endpoints/{b_sub['id']}/delete",
                     f"/portal/deliveries/{b_dlv['id']}",
                     f"/portal/deliveries?subscription_id={b_sub['id']}"):
            answer = page.goto(server.url + path)
            assert answer.status == 404, (path, answer.status)
            expect(page.locator("#portal-error")).to_contain_text("Nothing is called")
            shows_nothing_of_b()
            shot("a-asks-for-b-" + re.sub(r"\W+", "-", path.split("/", 2)[2]).strip("-")[:40])

        # Changes posted by script to B's ids, with A's own CSRF token: not found either.
        page.goto(f"{server.url}/portal")
        csrf = csrf_of(page)
        for path, fields in ((f"/portal/endpoints/{b_sub['id']}/enabled", {"enabled": "false"}),
                             (f"/portal/endpoints/{b_sub['id']}/delete", {}),
                             (f"/portal/endpoints/{b_sub['id']}/rotate", {"grace_hours": "0"}),
                             (f"/portal/endpoints/{b_sub['id']}/test", {}),
                             (f"/portal/endpoints/{b_sub['id']}", {"url": mine.url}),
                             (f"/portal/deliveries/{b_dlv['id']}/retry", {})):
            answer = forged_post(page, path, {"csrf": csrf, **fields})
            assert answer["status"] == 404, (path, answer)
            assert not any(value in answer["text"] for value in theirs_data), path
        after = admin.get(f"/v1/subscriptions/{b_sub['id']}").json()
        assert after["enabled"] is True and after["secret"] == b_sub["secret"]
        assert after["url"] == b_url
        assert admin.get(f"/v1/deliveries/{b_dlv['id']}").json()["attempts"] == 3
        assert all(b"acme" not in r.body for r in theirs.requests)

        # A read-only link: the same pages, with no control, and changes refused.
        page.context.clear_cookies()
        page.goto("about:blank")  # from /portal, /portal#… would only scroll the page
        open_link(page, portal_link(admin, "acme", read_only=True))
        expect(page.locator("#read-only")).to_have_text("read-only")
        expect(page.locator("#new-endpoint")).to_have_count(0)
        shot("read-only-endpoints")

        def no_controls() -> None:
            # The only posting form is the log-out one; no button outside a form.
            posting = page.locator("form[method=post]")
            expect(posting).to_have_count(1)
            expect(posting).to_have_class("logout")
            for control in ("#edit", "#disable", "#enable", "#rotate", "#delete", "#send-test",
                            "#recover-form", "#retry", "#controls", "#new-endpoint"):
                expect(page.locator(control)).to_have_count(0)

        no_controls()
        page.goto(f"{server.url}/portal/endpoints/{a_sub['id']}")
        expect(page.locator("#recent")).to_contain_text(a_dlv["id"])
        no_controls()
        shot("read-only-endpoint")
        page.goto(f"{server.url}/portal/deliveries/{a_dlv['id']}")
        expect(page.locator("#delivery-status")).to_contain_text("succeeded")
        no_controls()
        shot("read-only-delivery")
        page.goto(f"{server.url}/portal/deliveries")
        no_controls()
        shot("read-only-deliveries")
        # The pages whose forms change things are refused too, not shown without use.
        for path in ("/portal/endpoints/new", f"/portal/endpoints/{a_sub['id']}/edit",
                     f"/portal/endpoints/{a_sub['id']}/delete"):
            answer = page.goto(server.url + path)
            assert answer.status == 403, (path, answer.status)
            expect(page.locator("#portal-error")).to_contain_text("read-only")
            no_controls()
            shot("read-only-refused-" + path.rsplit("/", 1)[1])

        csrf = csrf_of(page)
        for path, fields in ((f"/portal/endpoints/{a_sub['id']}/enabled", {"enabled": "false"}),
                             (f"/portal/endpoints/{a_sub['id']}/rotate", {"grace_hours": "0"}),
                             (f"/portal/endpoints/{a_sub['id']}/delete", {}),
                             (f"/portal/deliveries/{a_dlv['id']}/retry", {}),
                             ("/portal/endpoints", {"url": mine.url})):
            answer = forged_post(page, path, {"csrf": csrf, **fields})
            assert answer["status"] == 403, (path, answer)
            assert "read-only" in answer["text"], path
        after = admin.get(f"/v1/subscriptions/{a_sub['id']}").json()
        assert after["enabled"] is True and after["secret"] == a_sub["secret"]
        assert admin.get(f"/v1/deliveries/{a_dlv['id']}").json()["attempts"] == 1
        listed = admin.get("/v1/subscriptions", params={"tenant_id": "acme"}).json()["data"]
        assert [s["id"] for s in listed] == [a_sub["id"]]


# ---- 3. the link's secret is in no log line and no Referer ------------------------------

@pytest.mark.xdist_group("heavy")  # a process of its own (see conftest.py)
def test_the_links_secret_is_in_no_log_line_and_no_referer(page, database_url, tmp_path):
    shot = Shots(page, "secret")
    switch = Switch()
    log_path = tmp_path / "serve.log"
    server = ServeProcess(database_url, log_path, DISPATCHER_LOG_LEVEL="debug",
                          DISPATCHER_RETRY_SCHEDULE="0.2,0.4", DISPATCHER_RETRY_JITTER="0",
                          DISPATCHER_POLL_INTERVAL_SECONDS="0.2")
    seen: list[Any] = []
    page.on("request", lambda request: seen.append(request))
    with Receiver(switch) as receiver, httpx.Client(
            base_url=server.url, headers={"authorization": f"Bearer {ADMIN_TOKEN}"},
            timeout=30) as admin:
        server.start()
        try:
            make_tenant(admin, "acme", "Acme Corp")
            link = portal_link(admin, "acme")
            token = link.split("#", 1)[1]
            assert token.startswith("ptk_") and link.startswith(server.url)

            open_link(page, link)
            shot("endpoints")
            page.click("#new-endpoint")
            page.fill("#url", receiver.url)
            page.fill("#description", "billing sync")
            page.click("#save")
            secret = page.locator("#new-secret code").inner_text().strip()
            sub_id = page.locator("code.id").first.inner_text().strip()
            shot("endpoint-created")
            page.click("#send-test")
            expect(page.locator("#test-result")).to_contain_text("500")
            shot("test-sent")

            since = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
            event = publish_for(admin, "acme", "invoice.paid", {"invoice": "in_1"})
            [delivery] = settled(admin, event["id"])
            assert delivery["status"] == "failed"
            page.goto(f"{server.url}/portal/deliveries/{delivery['id']}")
            shot("delivery-failed")
            switch.ok.set()
            page.click("#retry")
            expect(page.locator("#delivery-status")).to_contain_text("succeeded")
            shot("delivery-retried")

            switch.ok.clear()
            again = publish_for(admin, "acme", "invoice.paid", {"invoice": "in_2"})
            assert settled(admin, again["id"])[0]["status"] == "failed"
            page.goto(f"{server.url}/portal/endpoints/{sub_id}")
            page.fill("#since", utc_minute_text(since))
            page.click("#recover")
            expect(page.locator("#recover-count strong")).to_have_text("1")
            shot("recover-count")
            switch.ok.set()
            page.click("#confirm-recover")
            expect(page.locator("#recovered")).to_be_visible()
            shot("recovered")
            poll(lambda: delivery_of(admin, again["id"])["status"] == "succeeded", 15,
                 message="the recovered delivery succeeded")

            # The endpoint's URL is text, not a link: a link to it is put on the page and
            # followed, as a customer's click would be. No Referer may go with it.
            before = receiver.count()
            page.evaluate("""(url) => {
                const a = document.createElement("a");
                a.id = "to-receiver"; a.href = url; a.textContent = "my endpoint";
                document.querySelector("main").prepend(a);
            }""", receiver.url)
            page.click("#to-receiver")
            expect(page).to_have_url(receiver.url)
            shot("receiver")
            [visit] = poll(lambda: [r for r in receiver.requests[before:] if r.path == "/hook"
                                         and not r.body], 10,
                           message="the browser's visit to the receiver")
            assert "mozilla" in visit.headers["user-agent"].lower()  # the browser's own
            assert "referer" not in visit.headers, visit.headers

            page.goto(f"{server.url}/portal")
            page.click("form.logout button")
            expect(page).to_have_url(re.compile(r"/portal/ended$"))
            shot("logged-out")
        finally:
            server.stop()

    # The receiver never saw a Referer from the service or from a portal page (the
    # browser's favicon request names the receiver's own page).
    assert receiver.requests
    for got in receiver.requests:
        referer = got.headers.get("referer", "")
        assert got.path == "/favicon.ico" or not referer, (got.path, referer)
        assert "ptk_" not in referer and "/portal" not in referer, (got.path, referer)
    # The browser sent the secret once, in the body of POST /portal/session, and never in a
    # URL or a header.
    assert seen
    carrying = [r for r in seen if token in (r.post_data or "")]
    assert [(r.method, r.url) for r in carrying] == [("POST", f"{server.url}/portal/session")]
    for request in seen:
        assert token not in request.url.split("#")[0], request.url
        assert not any(token in value for value in request.all_headers().values()), request.url
        assert "referer" not in request.all_headers() or \
            "ptk_" not in request.all_headers()["referer"], request.url

    log = server.log()
    lines = log.splitlines()
    # Every kind of line was captured: debug lines, uvicorn's access log, the portal's audit.
    assert any(" DEBUG " in line for line in lines), log[-2000:]
    assert any("uvicorn.access" in line and "POST /portal/session" in line for line in lines)
    assert any("dispatcher.portal: portal: session opened" in line for line in lines)
    assert any("dispatcher.portal: portal: endpoint created" in line for line in lines)
    assert [line for line in lines if token in line] == []
    assert [line for line in lines if token[4:20] in line] == []  # not even a part of it
    # Nor the hash the session cookie is signed with, nor the endpoint's signing secret
    # (the database driver's debug lines carry statements' parameters).
    assert hash_key(token) not in log
    assert secret not in log and secret[6:22] not in log


# ---- 4. the README's portal screenshots -------------------------------------------------

def readme_shot(page: Any, name: str) -> None:
    """The window (1200 wide, at most 800 high), cut below the page's content."""
    box = page.locator("main").bounding_box()
    height = min(800, int(box["y"] + box["height"]) + 24)
    page.screenshot(path=str(SCREENSHOTS / name),
                    clip={"x": 0, "y": 0, "width": 1200, "height": height})


def test_readme_screenshots_of_the_endpoints_and_a_delivery(page, make_settings):
    shot = Shots(page, "readme")
    page.set_viewport_size({"width": 1200, "height": 800})
    switch = Switch()
    with Receiver() as fine, Receiver(lambda n, r: Reply(503, b"maintenance")) as down, \
            Receiver(switch) as mended, Receiver() as off, \
            portal_app(make_settings, portal_title="Acme Webhooks",
                       retry_schedule=(0.2,)) as (server, admin):
        make_tenant(admin, "acme", "Acme Corp")
        subs = [subscribe(admin, r.url.replace("/hook", path), description=text,
                          event_types=types, tenant_id="acme")
                for r, path, text, types in (
                    (fine, "/webhooks/billing", "Billing sync", ["invoice.*"]),
                    (down, "/hooks/crm", "CRM relay", ["customer.created"]),
                    (mended, "/events", "Order fulfilment", ["order.*"]),
                    (off, "/legacy", "Legacy ERP", ["*"]))]
        events = [publish_for(admin, "acme", t, d) for t, d in (
            ("invoice.paid", {"invoice": "in_1042", "amount": 4200, "currency": "EUR"}),
            ("customer.created", {"customer": "cus_77", "plan": "pro"}),
            ("customer.created", {"customer": "cus_78", "plan": "team"}),
            ("order.shipped", {"order": "ord_3001", "carrier": "DHL", "items": 3}))]
        for e in events:
            settled(admin, e["id"], 2)  # the legacy endpoint takes every event
        assert admin.patch(f"/v1/subscriptions/{subs[3]['id']}",
                           json={"enabled": False}).status_code == 200
        [order] = [d for d in deliveries_of(admin, events[3]["id"])
                   if d["subscription_id"] == subs[2]["id"]]
        assert order["status"] == "failed" and order["attempts"] == 2

        open_link(page, portal_link(admin, "acme"))
        expect(page.locator("#endpoints tbody tr")).to_have_count(4)
        expect(page.locator(f"tr[data-id={subs[3]['id']}]")).to_contain_text("disabled")
        expect(page.locator(f"tr[data-id={subs[0]['id']}]")).to_contain_text("healthy")
        # Four health states: 4 failed attempts of 4 is failing, 2 of 2 only degraded.
        for sub, health in zip(subs, ("healthy", "failing", "degraded", "disabled"),
                               strict=True):
            badge = page.locator(f"tr[data-id={sub['id']}] .health-{health}")
            expect(badge).to_have_text(health)
        shot("endpoints")
        if WRITE_SCREENSHOTS:
            readme_shot(page, "portal-endpoints.png")

        page.goto(f"{server.url}/portal/deliveries/{order['id']}")
        switch.ok.set()
        page.click("#retry")
        expect(page.locator("#delivery-status")).to_contain_text("succeeded")
        expect(page.locator("#attempts tbody tr.attempt")).to_have_count(3)
        # The notice of the retry was for the moment; the picture shows the delivery alone.
        page.goto(f"{server.url}/portal/deliveries/{order['id']}")
        expect(page.locator("#payload")).to_contain_text("ord_3001")
        shot("delivery")
        if WRITE_SCREENSHOTS:
            readme_shot(page, "portal-delivery.png")
    assert json.loads(mended.requests[-1].body)["data"]["order"] == "ord_3001"


def test_a_link_opened_in_a_tab_already_on_the_portal_opens_its_own_session(page,
                                                                            make_settings):
    """Browsers do not reload a page when only its fragment changes: the script must still
    trade the new link's secret, so that a read-only link never keeps a full session."""
    with portal_app(make_settings) as (server, admin):
        make_tenant(admin, "acme", "Acme")
        open_link(page, portal_link(admin, "acme"))
        expect(page.locator("#new-endpoint")).to_be_visible()
        assert page.locator("#read-only").count() == 0

        read_only = portal_link(admin, "acme", read_only=True)
        page.goto(read_only)  # same document: only the fragment changes
        expect(page.locator("#read-only")).to_be_visible()
        assert page.locator("#new-endpoint").count() == 0
        assert "#" not in page.url and "ptk_" not in page.url, page.url
        forged = forged_post(page, "/portal/endpoints",
                             {"csrf": csrf_of(page), "url": "http://127.0.0.1:9/x"})
        assert forged["status"] == 403

        # A revoked link opened the same way ends in the page that says so, with no data.
        admin.post("/v1/tenants/acme/portal-links/revoke").raise_for_status()
        page.goto(read_only)
        expect(page.locator("#gate-message")).to_contain_text("expired or was revoked")
        assert "ptk_" not in page.url and page.locator("#endpoints").count() == 0


def test_the_portal_wears_the_publishers_title_and_colour(page, make_settings):
    with portal_app(make_settings, portal_title="Acme Hooks",
                    portal_accent="#c2255c") as (server, admin):
        make_tenant(admin, "acme", "Acme")
        open_link(page, portal_link(admin, "acme"))
        assert page.title() == "Endpoints · Acme Hooks"
        expect(page.locator("header .brand")).to_have_text("Acme Hooks")
        colour = page.evaluate("getComputedStyle(document.getElementById('new-endpoint'))"
                               ".backgroundColor")
        assert colour == "rgb(194, 37, 92)", colour
        # The operator dashboard keeps its own look.
        page.goto(server.url + "/ui/login")
        assert "Acme Hooks" not in page.content()
