"""The dashboard as an operator uses it (issue 12, item 8), over plain HTTP: subscriptions
named wherever their id is shown, success rates and a health state that does not go red on
one failure, an event page, pretty payloads, 24-hour UTC date filters."""

from __future__ import annotations

import html
import json
import re
import threading
from datetime import datetime, timedelta

import pytest
from markupsafe import escape

from dispatcher.ui.pages import pretty_payload

from .harness import Receiver, Reply, poll
from .test_delivery import attempts_of, publish, settled, subscribe
from .test_ui import logged_in

# A name that would be markup if it were not escaped.
NAME = '<b>Billing</b> & "co"'


def deliveries_of_sub(admin, sub_id: str, status: str | None = None) -> list[dict]:
    params = {"subscription_id": sub_id, "limit": 100, **({"status": status} if status else {})}
    return admin.get("/v1/deliveries", params=params).json()["data"]


def outcomes(admin, sub_id: str) -> tuple[int, int]:
    """(succeeded, failed) attempts of the subscription, from the API."""
    found = [a["outcome"] for d in deliveries_of_sub(admin, sub_id)
             for a in attempts_of(admin, d["id"])]
    return found.count("succeeded"), found.count("failed")


def row_of(page: str, table: str, sub_id: str) -> str:
    """The <tr> of ``sub_id`` in the table with id ``table``."""
    body = page.split(f'id="{table}"', 1)[1].split("</table>", 1)[0]
    match = re.search(rf'<tr data-id="{sub_id}">(.*?)</tr>', body, re.S)
    assert match, f"{sub_id} not in #{table}"
    return match.group(1)


def rate_in(row: str) -> tuple[int, int]:
    match = re.search(r'class="rate" data-succeeded="(\d+)" data-failed="(\d+)"', row)
    assert match, row
    return int(match.group(1)), int(match.group(2))


def health_in(row: str) -> str:
    return re.search(r'class="status health-(\w+)"', row).group(1)


def pre(page: str, element_id: str) -> str:
    return html.unescape(re.search(rf'<pre[^>]*id="{element_id}"[^>]*>(.*?)</pre>', page,
                                   re.S).group(1))


class Breakable:
    """A receiver answer: 200 until broken, then 503."""

    def __init__(self) -> None:
        self.broken = threading.Event()

    def __call__(self, n, request) -> Reply:
        return Reply(503, b"down") if self.broken.is_set() else Reply(200, b"ok")


def test_a_subscription_is_named_wherever_its_id_is_shown_and_the_name_is_escaped(
        app_server, admin):
    with Receiver(lambda n, r: Reply(400, b"no")) as receiver:
        sub = subscribe(admin, receiver.url, description=NAME)
        event = publish(admin, "invoice.paid", {"id": "in_1"})
        [delivery] = settled(admin, event["id"])
    sub_id = sub["id"]
    named = f'<span class="name">{escape(NAME)}</span> <code class="id">{sub_id}</code>'
    with logged_in(app_server) as client:
        for path in ("/ui", "/ui/subscriptions", f"/ui/subscriptions/{sub_id}",
                     "/ui/deliveries", f"/ui/deliveries?subscription_id={sub_id}",
                     f"/ui/deliveries/{delivery['id']}", f"/ui/events/{event['id']}",
                     f"/ui/replay?subscription_id={sub_id}"):
            page = client.get(path)
            assert page.status_code == 200, (path, page.text)
            assert "<b>Billing</b>" not in page.text, path  # escaped, never markup
            shown = len(re.findall(rf">{sub_id}<", page.text))
            assert shown >= 1, path
            # Every time the id is shown as text, its name comes right before it.
            assert page.text.count(named) == shown, (path, shown)


def test_one_failure_of_a_healthy_receiver_is_degraded_not_failing(app_server, admin):
    answer = Breakable()
    with Receiver(answer) as mostly_fine, Receiver(lambda n, r: Reply(500)) as broken:
        healthy = subscribe(admin, mostly_fine.url, description="crm sync",
                            event_types=["order.*"])
        failing = subscribe(admin, broken.url, description="legacy erp",
                            event_types=["user.*"])
        for n in range(20):
            publish(admin, "order.created", {"n": n})
        poll(lambda: len(deliveries_of_sub(admin, healthy["id"], "succeeded")) == 20, 20,
             message="20 successes")
        # Now one event fails (its retries too: three failed attempts in a row).
        answer.broken.set()
        settled(admin, publish(admin, "order.created", {"n": 20})["id"])
        settled(admin, publish(admin, "user.created", {"n": 1})["id"])
        healthy_rate, failing_rate = outcomes(admin, healthy["id"]), outcomes(admin, failing["id"])
        assert healthy_rate == (20, 3) and failing_rate == (0, 3)

        with logged_in(app_server) as client:
            page = client.get("/ui").text
            row = row_of(page, "unwell", healthy["id"])
            assert health_in(row) == "degraded" and rate_in(row) == healthy_rate
            assert "86 %" in row  # 20 of 23
            row = row_of(page, "unwell", failing["id"])
            assert health_in(row) == "failing" and rate_in(row) == failing_rate
            assert re.search(r'id="failing-subscriptions">1<', page)
            assert re.search(r'id="degraded-subscriptions">1<', page)

            page = client.get("/ui/subscriptions").text
            assert health_in(row_of(page, "subscriptions", healthy["id"])) == "degraded"
            assert rate_in(row_of(page, "subscriptions", healthy["id"])) == healthy_rate
            assert health_in(row_of(page, "subscriptions", failing["id"])) == "failing"

            page = client.get(f"/ui/subscriptions/{healthy['id']}").text
            assert "health-degraded" in page and "health-failing" not in page
            assert rate_in(page.split('id="success-rate"')[1]) == healthy_rate

            # Mended: its next success ends the streak; it stays degraded for the hour.
            answer.broken.clear()
            settled(admin, publish(admin, "order.created", {"n": 21})["id"])
            page = client.get("/ui").text
            row = row_of(page, "unwell", healthy["id"])
            assert health_in(row) == "degraded" and rate_in(row) == (21, 3)
            assert "last attempt succeeded" in row


def test_a_healthy_subscription_is_not_listed_on_the_overview(app_server, admin):
    with Receiver() as receiver:
        sub = subscribe(admin, receiver.url, event_types=["invoice.*"])
        idle = subscribe(admin, receiver.url, event_types=["never.*"])
        off = subscribe(admin, receiver.url, event_types=["never.*"], enabled=False)
        settled(admin, publish(admin)["id"])
        with logged_in(app_server) as client:
            page = client.get("/ui").text
            assert sub["id"] not in page and idle["id"] not in page
            assert health_in(row_of(page, "unwell", off["id"])) == "disabled"
            listed = client.get("/ui/subscriptions")
            assert listed.status_code == 200, listed.text
            row = row_of(listed.text, "subscriptions", sub["id"])
            assert health_in(row) == "healthy" and rate_in(row) == (1, 0)
            assert "100 %" in row
            # No attempts in the last hour: healthy, and no rate to show.
            row = row_of(listed.text, "subscriptions", idle["id"])
            assert health_in(row) == "healthy" and rate_in(row) == (0, 0) and "—" in row
            row = row_of(listed.text, "subscriptions", off["id"])
            assert health_in(row) == "disabled" and rate_in(row) == (0, 0)


def test_a_delivery_links_to_its_event_and_both_pretty_print_it(app_server, admin):
    data = {"id": "in_1", "lines": [{"sku": "naïve", "qty": 2}], "note": "<script>x</script>"}
    with Receiver() as ok, Receiver() as other:
        sub = subscribe(admin, ok.url, description="books")
        subscribe(admin, other.url)
        event = publish(admin, "invoice.paid", data)
        found = settled(admin, event["id"], 2)
    delivery = next(d for d in found if d["subscription_id"] == sub["id"])
    with logged_in(app_server) as client:
        page = client.get(f"/ui/deliveries/{delivery['id']}")
        assert f'id="event-link" href="/ui/events/{event["id"]}"' in page.text
        sent = json.loads(pre(page.text, "payload"))
        assert sent["data"] == data and sent["type"] == "invoice.paid"
        assert pre(page.text, "payload") == json.dumps(sent, indent=2, ensure_ascii=False)
        assert "<script>x" not in page.text

        page = client.get(f"/ui/events/{event['id']}")
        assert page.status_code == 200
        assert re.search(r'id="event-type">invoice.paid<', page.text)
        assert pre(page.text, "data") == json.dumps(data, indent=2, ensure_ascii=False)
        assert "<script>x" not in page.text
        for d in found:  # its deliveries, each linked
            assert f'href="/ui/deliveries/{d["id"]}"' in page.text
        assert "books" in page.text

        for path in ("/ui/events/evt_nope", "/ui/events/evt_00000000000000000000000000",
                     f"/ui/events/{delivery['id']}"):
            answer = client.get(path)
            assert answer.status_code == 404 and "Nothing is called" in answer.text
            assert "Traceback" not in answer.text


def test_date_filters_are_24_hour_utc_text(app_server, admin):
    with Receiver() as receiver:
        subscribe(admin, receiver.url)
        [delivery] = settled(admin, publish(admin)["id"])
    created = datetime.fromisoformat(delivery["created_at"].replace("Z", "+00:00"))
    with logged_in(app_server) as client:
        page = client.get("/ui/deliveries").text
        inputs = re.findall(r'<input name="(since|until)"([^>]*)>', page)
        assert [name for name, _ in inputs] == ["since", "until"]
        for _, attributes in inputs:
            assert 'type="text"' in attributes and "datetime-local" not in attributes
            assert 'placeholder="YYYY-MM-DD HH:MM"' in attributes
            pattern = re.search(r'pattern="([^"]+)"', attributes).group(1)
            for good in ("2026-12-01 13:00", "2026-12-01 23:59:59", "2026-12-01T13:00",
                         "2026-12-01"):
                assert re.fullmatch(pattern, good), good
            for bad in ("12/01/2026 01:00 PM", "2026-12-01 1:00 PM"):
                assert not re.fullmatch(pattern, bad), bad
        assert "UTC, 24-hour" in page

        def listed(**query: str) -> set[str]:
            answer = client.get("/ui/deliveries", params=query)
            assert answer.status_code == 200, answer.text
            return set(re.findall(r'href="/ui/deliveries/(dlv_\w+)"', answer.text))

        minute = created.replace(second=0, microsecond=0)
        after = minute + timedelta(minutes=1)
        assert listed(since=f"{minute:%Y-%m-%d %H:%M}") == {delivery["id"]}
        assert listed(since=f"{after:%Y-%m-%d %H:%M}") == set()
        assert listed(until=f"{after:%Y-%m-%d %H:%M}") == {delivery["id"]}
        assert listed(until=f"{minute:%Y-%m-%d %H:%M}") == set()
        # The value typed stays as typed in the form.
        page = client.get("/ui/deliveries", params={"since": f"{minute:%Y-%m-%d %H:%M}"}).text
        assert f'value="{minute:%Y-%m-%d %H:%M}"' in page
        bad = client.get("/ui/deliveries", params={"since": "12/01/2026 01:00 PM"})
        assert bad.status_code == 400 and "UTC, 24-hour clock" in bad.text


def test_the_overview_marks_its_live_part_for_refreshing(app_server):
    with logged_in(app_server) as client:
        page = client.get("/ui").text
        live = re.search(r'<div id="overview-live" data-refresh="(\d+)">(.*)</div>', page, re.S)
        assert live and 1000 <= int(live.group(1)) <= 30_000
        for part in ('id="failed-count"', 'id="failing-subscriptions"', "svg"):
            assert part in live.group(2)
        # It says when it was drawn, so a refresh shows.
        assert re.search(r"As of \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", live.group(2))


@pytest.mark.parametrize(("payload", "shown"), [
    (b'{"type":"a.b","data":{"x":[1,2]}}',
     '{\n  "type": "a.b",\n  "data": {\n    "x": [\n      1,\n      2\n    ]\n  }\n}'),
    ('{"data":"naïve"}'.encode(), '{\n  "data": "naïve"\n}'),
    (b"not json", "not json"),
    (b"\xff{", "\ufffd{"),
])
def test_pretty_payload(payload, shown):
    assert pretty_payload(payload) == shown


def test_a_long_payload_is_cut_with_a_note():
    text = pretty_payload(json.dumps({"x": "y" * 100}).encode(), limit=20)
    assert text.startswith('{\n  "x": "yyyyyy') and "the first 20 characters of" in text

