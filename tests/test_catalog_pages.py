"""The event-type catalog in the dashboard (a page of its own) and in the portal (its forms
offer the catalog's types first, deprecated ones left out), over plain HTTP."""

from __future__ import annotations

import html
import re

from .test_portal_links import make_link, opened
from .test_ui import logged_in

SCHEMA = {"type": "object", "required": ["id"], "properties": {"id": {"type": "string"}}}
SHOUT = "<script>alert('type')</script>"


def _put(admin, event_type, **body):
    answer = admin.put(f"/v1/event-types/{event_type}", json=body)
    assert answer.status_code == 201, answer.text
    return answer.json()


def test_the_dashboard_shows_the_catalog(app_server, admin):
    with logged_in(app_server) as client:
        empty = client.get("/ui/event-types")
        assert empty.status_code == 200 and "No event types yet" in empty.text
        assert 'href="/ui/event-types"' in client.get("/ui").text
        _put(admin, "invoice.paid", description="Paid in full. " + SHOUT, schema=SCHEMA,
             example={"id": "in_1"})
        _put(admin, "invoice.sent", deprecated=True)
        page = client.get("/ui/event-types").text
        assert re.findall(r'<tr data-type="([^"]+)"', page) == ["invoice.sent", "invoice.paid"]
        # The description as text, never as markup.
        assert SHOUT not in page and SHOUT in html.unescape(page)
        row = page.split('<tr data-type="invoice.sent"')[1].split("</tr>")[0]
        assert "(deprecated)" in row and "any data" in row
        paid = page.split('<tr data-type="invoice.paid"')[1].split("</tr>")[0]
        assert "&#34;required&#34;" in paid or "&quot;required&quot;" in paid
        assert "&#34;in_1&#34;" in paid or "&quot;in_1&quot;" in paid
        bad = client.get("/ui/event-types", params={"cursor": "<x>"})
        assert bad.status_code == 400 and "That page link is not valid" in bad.text


def test_the_portal_offers_the_catalogs_types_first_but_not_deprecated_ones(admin):
    assert admin.put("/v1/tenants/acme-cat", json={}).status_code == 201
    _put(admin, "order.placed", description="An order was placed.")
    _put(admin, "order.shipped")
    _put(admin, "order.legacy", deprecated=True)
    link = make_link(admin, "acme-cat")
    with opened(admin.base_url, link["token"]) as client:
        form = client.get("/portal/endpoints/new")
        assert form.status_code == 200, form.text[:300]
        offered = re.findall(r'name="t\.([^"]+)"', form.text)
        assert offered == ["order.placed", "order.shipped"]
