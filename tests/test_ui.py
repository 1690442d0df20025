"""The dashboard over plain HTTP: who may see it, forms that must come from it, bad input,
and the pure parts (sessions, the chart)."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from dispatcher.ui.chart import attempts_chart, per_minute
from dispatcher.ui.session import csrf_ok, key_id_of, make_cookie, open_session

from .conftest import ADMIN_TOKEN
from .harness import AppServer, Receiver, Reply
from .test_delivery import attempts_of, publish, settled, subscribe

CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')


def browser_for(server: AppServer) -> httpx.Client:
    """An HTTP client that keeps cookies and does not follow redirects, like a careful test
    of what a browser would be told."""
    return httpx.Client(base_url=server.url, timeout=30, follow_redirects=False)


@contextmanager
def logged_in(server: AppServer, key: str = ADMIN_TOKEN) -> Iterator[httpx.Client]:
    with browser_for(server) as client:
        answer = client.post("/ui/login", data={"key": key, "next": "/ui"})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui", answer.text
        yield client


def csrf_of(client: httpx.Client, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return CSRF.search(page.text).group(1)


def failed_delivery(admin) -> dict:
    with Receiver(lambda n, r: Reply(400, b"no")) as receiver:
        subscribe(admin, receiver.url)
        event = publish(admin)
        [delivery] = settled(admin, event["id"])
    assert delivery["status"] == "failed"
    return delivery


# ---- who may see it ---------------------------------------------------------------------

def test_pages_ask_for_a_login_and_come_back_after_it(app_server):
    with browser_for(app_server) as client:
        for path in ("/ui", "/ui/subscriptions", "/ui/deliveries?status=failed"):
            answer = client.get(path)
            assert answer.status_code == 303
            target = urlsplit(answer.headers["location"])
            assert target.path == "/ui/login"
            assert parse_qs(target.query)["next"] == [path]
        login = client.get("/ui/login?next=/ui/deliveries")
        assert login.status_code == 200 and 'name="key"' in login.text
        answer = client.post("/ui/login",
                             data={"key": ADMIN_TOKEN, "next": "/ui/deliveries?status=failed"})
        assert answer.headers["location"] == "/ui/deliveries?status=failed"
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
        assert client.get("/ui").status_code == 200


def test_only_admin_keys_log_in_and_next_stays_on_the_dashboard(app_server, admin):
    publisher = admin.post("/v1/api-keys", json={"role": "publisher", "name": "p"}).json()
    with browser_for(app_server) as client:
        wrong = client.post("/ui/login", data={"key": "nope-nope-nope-nope"})
        assert wrong.status_code == 401 and "Unknown or deleted API key" in wrong.text
        assert "set-cookie" not in wrong.headers
        other_role = client.post("/ui/login", data={"key": publisher["key"]})
        assert other_role.status_code == 403 and "Only admin keys" in other_role.text
        away = client.post("/ui/login", data={"key": ADMIN_TOKEN,
                                               "next": "https://evil.example/ui"})
        assert away.headers["location"] == "/ui"
        away = client.post("/ui/login", data={"key": ADMIN_TOKEN, "next": "//evil.example"})
        assert away.headers["location"] == "/ui"


def test_deleting_the_admin_key_ends_its_sessions_at_once(app_server, admin):
    second = admin.post("/v1/api-keys", json={"role": "admin", "name": "ops"}).json()
    with logged_in(app_server, second["key"]) as client:
        assert client.get("/ui").status_code == 200
        assert admin.delete(f"/v1/api-keys/{second['id']}").status_code == 204
        assert client.get("/ui").status_code == 303


def test_a_tampered_or_expired_cookie_is_no_session(app_server):
    with logged_in(app_server) as client:
        cookie = client.cookies["dispatcher_session"]
        key_id, expires, mac = cookie.split(".")
        for forged in (f"{key_id}.{int(expires) + 3600}.{mac}", f"{key_id}.{expires}.{'0' * 64}",
                       "garbage", f"{key_id}.{expires}"):
            client.cookies.clear()
            client.cookies.set("dispatcher_session", forged, path="/ui")
            assert client.get("/ui").status_code == 303, forged


def test_log_out_ends_the_session(app_server):
    with logged_in(app_server) as client:
        token = csrf_of(client, "/ui")
        answer = client.post("/ui/logout", data={"csrf": token})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
        assert client.get("/ui").status_code == 303


def test_the_dashboard_can_be_switched_off(serve):
    with serve(ui_enabled=False) as admin:
        assert admin.get("/ui/login").status_code == 404
        assert admin.get("/healthz").status_code == 200


# ---- forms must come from the dashboard -------------------------------------------------

def test_a_change_without_the_session_csrf_token_is_refused(app_server, admin):
    delivery = failed_delivery(admin)
    path = f"/ui/deliveries/{delivery['id']}/retry"
    with logged_in(app_server) as client:
        token = csrf_of(client, f"/ui/deliveries/{delivery['id']}")
        for form in ({}, {"csrf": ""}, {"csrf": "0" * 40}):
            refused = client.post(path, data=form)
            assert refused.status_code == 403 and "out of date" in refused.text
        # The right token from another site's page (a browser sends that site's Origin).
        refused = client.post(path, data={"csrf": token},
                              headers={"origin": "https://evil.example"})
        assert refused.status_code == 403
        assert len(attempts_of(admin, delivery["id"])) == 1  # nothing was retried
        done = client.post(path, data={"csrf": token},
                           headers={"origin": app_server.url})
        assert done.status_code == 303
        assert done.headers["location"] == f"/ui/deliveries/{delivery['id']}?done=retry"


def test_forms_cannot_be_posted_without_a_session(app_server, admin):
    delivery = failed_delivery(admin)
    with browser_for(app_server) as client:
        answer = client.post(f"/ui/deliveries/{delivery['id']}/retry", data={"csrf": "x"})
        assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login")
    assert len(attempts_of(admin, delivery["id"])) == 1


def test_only_the_dashboard_takes_form_posts(app_server, admin):
    # The API stays JSON only: the same form body is refused there, with the dashboard on.
    refused = admin.post("/v1/events", content=b"type=a.b",
                         headers={"content-type": "application/x-www-form-urlencoded"})
    assert refused.status_code == 415
    assert refused.json()["error"]["code"] == "unsupported_media_type"
    with browser_for(app_server) as client:  # and the dashboard reads it as a form
        answer = client.post("/ui/login", data={"key": ADMIN_TOKEN})
        assert answer.status_code == 303


def test_pages_forbid_framing_and_foreign_scripts(app_server):
    with logged_in(app_server) as client:
        page = client.get("/ui")
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["cache-control"] == "no-store"


# ---- bad input: a clear page, never a 500 -----------------------------------------------

@pytest.mark.parametrize(("path", "status", "says"), [
    ("/ui/deliveries?status=bogus", 400, "status is one of"),
    ("/ui/deliveries?since=yesterday", 400, "since: give a date and time"),
    ("/ui/deliveries?subscription_id=nope", 400, "subscription_id is a sub_"),
    ("/ui/deliveries?cursor=nope", 400, "page link is not valid"),
    ("/ui/deliveries?event_type=" + "x" * 200, 400, "at most 128"),
    ("/ui/subscriptions?cursor=sub_zz", 400, "page link is not valid"),
    ("/ui/deliveries/dlv_nope", 404, "Nothing is called"),
    ("/ui/deliveries/dlv_00000000000000000000000000", 404, "Nothing is called"),
    ("/ui/subscriptions/sub_00000000000000000000000000", 404, "Nothing is called"),
    ("/ui/subscriptions/../../v1", 404, ""),
    ("/ui/replay/rpl_unknown", 404, "No replay of that name"),
    ("/ui/replay?since=soon", 400, "since: give a date and time"),
])
def test_bad_input_gets_a_clear_page(app_server, path, status, says):
    with logged_in(app_server) as client:
        answer = client.get(path)
        assert answer.status_code == status, answer.text
        assert says in answer.text
        assert "Traceback" not in answer.text


def test_bad_form_fields_get_a_clear_page(app_server, admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        with logged_in(app_server) as client:
            token = csrf_of(client, f"/ui/subscriptions/{sub['id']}")
            base = f"/ui/subscriptions/{sub['id']}"
            cases = [
                ("/test", {"type": "x", "data": "{nope"}, "not valid JSON"),
                ("/test", {"type": "x", "data": "[1]"}, "must be a JSON object"),
                ("/test", {"type": "bad type!", "data": "{}"}, "dot-separated"),
                ("/rotate", {"grace_hours": "many"}, "number of hours"),
                ("/rotate", {"grace_hours": "-1"}, "number of hours"),
                ("/enabled", {"enabled": "maybe"}, "true or false"),
            ]
            for suffix, form, says in cases:
                answer = client.post(base + suffix, data={"csrf": token, **form})
                assert answer.status_code == 400, (suffix, form, answer.text)
                assert says in answer.text
            assert receiver.count() == 0
        current = admin.get(f"/v1/subscriptions/{sub['id']}").json()
        assert current["secret"] == sub["secret"] and current["enabled"] is True


def test_retry_of_a_delivery_whose_subscription_was_deleted_says_why(app_server, admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, enabled=False)
        [delivery] = settled(admin, publish(admin)["id"])  # held
        admin.delete(f"/v1/subscriptions/{sub['id']}")
        assert admin.get(f"/v1/deliveries/{delivery['id']}").json()["status"] == "cancelled"
        with logged_in(app_server) as client:
            token = csrf_of(client, f"/ui/deliveries/{delivery['id']}")
            answer = client.post(f"/ui/deliveries/{delivery['id']}/retry", data={"csrf": token})
            assert answer.status_code == 409 and "deleted" in answer.text


def test_a_secret_appears_only_right_after_rotation(app_server, admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url)
        with logged_in(app_server) as client:
            page = client.get(f"/ui/subscriptions/{sub['id']}")
            assert sub["secret"] not in page.text and sub["secret"][:10] in page.text
            token = CSRF.search(page.text).group(1)
            rotated = client.post(f"/ui/subscriptions/{sub['id']}/rotate",
                                  data={"csrf": token, "grace_hours": "1"})
            new = admin.get(f"/v1/subscriptions/{sub['id']}").json()["secret"]
            assert new != sub["secret"] and new in rotated.text
            assert new not in client.get(f"/ui/subscriptions/{sub['id']}").text


def test_delivery_filters_narrow_the_list(app_server, admin):
    with Receiver() as ok, Receiver(lambda n, r: Reply(400)) as bad:
        good_sub = subscribe(admin, ok.url, event_types=["a.*"])
        bad_sub = subscribe(admin, bad.url, event_types=["b.*"])
        first = settled(admin, publish(admin, "a.one")["id"])[0]
        second = settled(admin, publish(admin, "b.two")["id"])[0]
        with logged_in(app_server) as client:
            def listed(query: str) -> set[str]:
                page = client.get("/ui/deliveries?" + query)
                assert page.status_code == 200, page.text
                return set(re.findall(r'href="/ui/deliveries/(dlv_\w+)"', page.text))

            assert listed("") == {first["id"], second["id"]}
            assert listed("status=failed") == {second["id"]}
            assert listed(f"subscription_id={good_sub['id']}") == {first["id"]}
            assert listed(f"subscription_id={bad_sub['id']}&status=succeeded") == set()
            assert listed("event_type=b.two") == {second["id"]}
            later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")
            assert listed(f"since={later}") == set()
            assert listed(f"until={later}") == {first["id"], second["id"]}


# ---- the pure parts ---------------------------------------------------------------------

def test_session_cookie_is_bound_to_the_key_and_expires():
    now = 1_800_000_000
    cookie = make_cookie("key_abc", "hash-1", now + 60)
    assert key_id_of(cookie) == "key_abc"
    session = open_session(cookie, "hash-1", now)
    assert session is not None and session.key_id == "key_abc"
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf[:-1] + "0" if session.csrf[-1] != "0" else "1")
    assert open_session(cookie, "hash-2", now) is None  # another key's hash
    assert open_session(cookie, "hash-1", now + 61) is None  # expired
    other = open_session(make_cookie("key_abc", "hash-1", now + 120), "hash-1", now)
    assert other is not None and other.csrf != session.csrf  # tokens are per session
    assert key_id_of("nonsense") is None and key_id_of("a.b.c") is None


def test_chart_counts_every_minute_of_the_window():
    now = datetime(2026, 12, 1, 13, 30, 45, tzinfo=UTC)
    minute = datetime(2026, 12, 1, 13, 28, tzinfo=UTC)
    rows = [(minute, "succeeded", 5), (minute, "failed", 2),
            (datetime(2026, 12, 1, 13, 30, tzinfo=UTC), "failed", 1),
            (datetime(2026, 12, 1, 12, 0, tzinfo=UTC), "succeeded", 99)]  # before the window
    series = per_minute(rows, now, 60)
    assert len(series) == 60 and series[-1][0] == datetime(2026, 12, 1, 13, 30, tzinfo=UTC)
    assert dict(series)[minute] == {"succeeded": 5, "failed": 2}
    assert sum(c["succeeded"] for _, c in series) == 5
    svg = attempts_chart(rows, now, 60)
    assert 'data-succeeded="5"' in svg and 'data-failed="3"' in svg
    assert svg.count("<rect") == 3
    assert "13:28: 5 succeeded, 2 failed" in svg


def test_every_change_from_the_dashboard_is_logged_with_its_key_id(app_server, admin, caplog):
    caplog.set_level(logging.INFO, logger="dispatcher.ui")
    delivery = failed_delivery(admin)
    admin_key = next(k for k in admin.get("/v1/api-keys").json()["data"] if k["role"] == "admin")
    with logged_in(app_server) as client:
        token = csrf_of(client, f"/ui/deliveries/{delivery['id']}")
        client.post(f"/ui/deliveries/{delivery['id']}/retry", data={"csrf": token})
        client.post(f"/ui/subscriptions/{delivery['subscription_id']}/enabled",
                    data={"csrf": token, "enabled": "false"})
    with browser_for(app_server) as client:
        client.post("/ui/login", data={"key": "wrong-key-0123456789"})
    lines = [(r.getMessage(), getattr(r, "key_id", None), r) for r in caplog.records
             if r.name == "dispatcher.ui"]
    said = {message: key for message, key, _ in lines}
    assert said["dashboard: logged in"] == admin_key["id"]
    assert said["dashboard: retry now"] == admin_key["id"]
    assert said["dashboard: subscription disabled"] == admin_key["id"]
    assert "dashboard: log-in refused (unknown key)" in said
    retry = next(r for m, _, r in lines if m == "dashboard: retry now")
    assert retry.delivery_id == delivery["id"]
    assert not any(ADMIN_TOKEN in m or "wrong-key" in m for m, _, _ in lines)


def test_readme_shows_the_overview_and_a_delivery_detail():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    shown = re.findall(r"!\[[^\]]*\]\((docs/screenshots/[\w.-]+\.png)\)", readme)
    assert {"docs/screenshots/overview.png", "docs/screenshots/delivery.png"} <= set(shown)
    for path in shown:
        image = Path(__file__).resolve().parent.parent / path
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path


def test_a_subscription_page_shows_its_filter_as_data(app_server, admin):
    shown = subscribe(admin, "http://127.0.0.1:9/f", filter={"data.note": "<b>x</b>"})
    plain = subscribe(admin, "http://127.0.0.1:9/p")
    with logged_in(app_server) as client:
        page = client.get(f"/ui/subscriptions/{shown['id']}").text
        found = re.search(r'<dd id="filter"><code>(.*?)</code>', page)
        assert found is not None, page
        assert "<b>" not in found.group(1) and "data.note" in found.group(1)
        assert "every event of these types" in client.get(
            f"/ui/subscriptions/{plain['id']}").text


def test_the_dashboard_shows_and_edits_delivery_options(app_server, admin):
    sub = subscribe(admin, "http://127.0.0.1:9/opts")
    page_path = f"/ui/subscriptions/{sub['id']}"
    with logged_in(app_server) as client:
        page = client.get(page_path).text
        assert re.search(r'id="retry-schedule"><span class="muted">the global one', page)
        token = CSRF.search(page).group(1)
        saved = client.post(page_path + "/options", data={
            "csrf": token, "retry_schedule": "5, 30,120", "timeout_seconds": "20"})
        assert saved.status_code == 303, saved.text
        shown = admin.get(f"/v1/subscriptions/{sub['id']}").json()
        assert (shown["retry_schedule"], shown["timeout_seconds"]) == ([5, 30, 120], 20)
        page = client.get(page_path).text
        assert '<dd id="retry-schedule">5 s, 30 s, 120 s</dd>' in page
        assert '<dd id="timeout">20 s</dd>' in page
        for form, says in ((({"retry_schedule": "5, 0"}), "retry_schedule.1"),
                           ({"timeout_seconds": "100"}, "timeout_seconds: must be at most 60"),
                           ({"retry_schedule": "often"}, "write delays in seconds")):
            refused = client.post(page_path + "/options", data={"csrf": token, **form})
            assert refused.status_code == 400 and says in refused.text, refused.text
        cleared = client.post(page_path + "/options", data={"csrf": token})
        assert cleared.status_code == 303
        shown = admin.get(f"/v1/subscriptions/{sub['id']}").json()
        assert (shown["retry_schedule"], shown["timeout_seconds"]) == (None, None)
