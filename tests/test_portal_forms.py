"""The portal's pure parts, table by table: a form's headers and fields as the API's body
(``ui.portal.endpoints``), and the session realms (``ui.session``): a dashboard cookie never
opens a portal session nor the other way round, an expired or altered cookie opens none;
and which posts count as made from the page itself (``same_origin``)."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from dispatcher.ui.pages.site import same_origin
from dispatcher.ui.portal.endpoints import endpoint_fields, parse_headers
from dispatcher.ui.session import DASHBOARD, PORTAL, Realm, csrf_ok

# ---- parse_headers ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "headers"), [
    ("", {}),
    ("\n\n  \n", {}),
    ("X-Team: billing", {"X-Team": "billing"}),
    ("X-Team:billing", {"X-Team": "billing"}),
    ("  X-Team  :   billing team  ", {"X-Team": "billing team"}),
    ("X-A: 1\nX-B: 2", {"X-A": "1", "X-B": "2"}),
    ("X-A: 1\r\n\r\nX-B: 2\r\n", {"X-A": "1", "X-B": "2"}),
    ("Authorization: Bearer a:b:c", {"Authorization": "Bearer a:b:c"}),  # the first ':'
    ("X-Empty:", {"X-Empty": ""}),
    ("X-A: 1\nX-A: 2", {"X-A": "2"}),  # the last of a name wins
    ("X-Ünï: çødé", {"X-Ünï": "çødé"}),  # kept as typed: the API's check decides
])
def test_parse_headers_reads_name_value_lines(text, headers):
    assert parse_headers(text) == headers


@pytest.mark.parametrize("text", [
    "X-Team billing", "X-A: 1\nno colon here", "=", "X-Team = billing",
])
def test_parse_headers_says_which_line_has_no_colon(text):
    with pytest.raises(ValueError, match="Name: value") as refused:
        parse_headers(text)
    bad = next(line for line in text.splitlines() if ":" not in line)
    assert repr(bad.strip()[:40]) in str(refused.value)


def test_parse_headers_quotes_at_most_40_characters_of_a_bad_line():
    with pytest.raises(ValueError) as refused:
        parse_headers("x" * 500)
    assert "x" * 40 in str(refused.value) and "x" * 41 not in str(refused.value)


# ---- endpoint_fields ----------------------------------------------------------------------

EVERY = ["*"]


@pytest.mark.parametrize(("form", "fields"), [
    ({}, {"url": "", "event_types": EVERY, "description": "", "headers": {},
          "retry_schedule": None, "timeout_seconds": None}),
    ({"retry_schedule": "10, 60 600.5", "timeout_seconds": " 30 "},
     {"retry_schedule": [10, 60, 600.5], "timeout_seconds": 30}),
    ({"retry_schedule": " , ", "timeout_seconds": ""},
     {"retry_schedule": None, "timeout_seconds": None}),
    ({"url": "  https://example.com/h  ", "description": "  billing  "},
     {"url": "https://example.com/h", "event_types": EVERY, "description": "billing",
      "headers": {}}),
    ({"event_types": "invoice.paid"}, {"event_types": ["invoice.paid"]}),
    ({"event_types": "a.b, c.d  e.f,g.h"}, {"event_types": ["a.b", "c.d", "e.f", "g.h"]}),
    ({"event_types": " ,, , "}, {"event_types": EVERY}),
    ({"t.invoice.paid": "on"}, {"event_types": ["invoice.paid"]}),
    ({"t.invoice.paid": "on", "t.order.made": "on", "event_types": "user.*"},
     {"event_types": ["invoice.paid", "order.made", "user.*"]}),
    # Checked boxes and typed types together, each once, in the order given.
    ({"t.a.b": "on", "event_types": "a.b c.d a.b"}, {"event_types": ["a.b", "c.d"]}),
    ({"t.a.b": ""}, {"event_types": EVERY}),  # a box sent unchecked
    ({"t.": "on"}, {"event_types": [""]}),  # an empty type: left to the API's check
    ({"headers": "X-A: 1\nX-B: 2"}, {"headers": {"X-A": "1", "X-B": "2"}}),
])
def test_endpoint_fields_are_the_apis_body(form, fields):
    made = endpoint_fields(form)
    assert set(made) == {"url", "event_types", "description", "headers", "retry_schedule",
                         "timeout_seconds"}
    for name, value in fields.items():
        assert made[name] == value, name


@pytest.mark.parametrize("extra", [
    {"tenant_id": "someone-else"}, {"csrf": "0" * 40}, {"enabled": "false"},
    {"secret": "whsec_x"}, {"secrets": "x"}, {"id": "sub_x"}, {"owner_key_id": "key_x"},
])
def test_endpoint_fields_take_nothing_else_from_the_form(extra):
    """What the form cannot choose (above all, the tenant) is not in the body it makes."""
    base = {"url": "https://example.com/h", "event_types": "a.b"}
    assert endpoint_fields(base | extra) == endpoint_fields(base)


@pytest.mark.parametrize("form, says", [
    ({"retry_schedule": "soon"}, "write delays in seconds"),
    ({"timeout_seconds": "1.5"}, "a whole number of seconds"),
    ({"retry_schedule": "5, -1"}, "retry_schedule.1: must be greater than 0"),
    ({"retry_schedule": "604801"}, "retry_schedule.0: must be at most 604800"),
    ({"retry_schedule": " ".join(["1"] * 21)}, "retry_schedule: must have at most 20 items"),
    ({"timeout_seconds": "61"}, "timeout_seconds: must be at most 60"),
    ({"timeout_seconds": "0"}, "timeout_seconds: must be at least 1"),
])
def test_delivery_options_out_of_bounds_say_so_in_the_apis_words(form, says):
    with pytest.raises(ValueError) as refused:
        endpoint_fields({"url": "https://example.com/h"} | form)
    assert says in str(refused.value)


def test_endpoint_fields_refuse_a_bad_header_line():
    with pytest.raises(ValueError, match="has no ':'"):
        endpoint_fields({"url": "https://example.com/h", "headers": "X-A 1"})


# ---- Realm --------------------------------------------------------------------------------

NOW = 1_800_000_000.0
HASH = "a" * 64  # a hash as the database keeps it
LATER = int(NOW) + 3600


def test_a_realms_cookie_opens_its_own_session():
    cookie = PORTAL.make_cookie("ptl_1", HASH, LATER)
    session = PORTAL.open(cookie, HASH, NOW)
    assert session is not None
    assert (session.key_id, session.cookie) == ("ptl_1", cookie)
    assert len(session.csrf) == 40 and csrf_ok(session, session.csrf)
    assert PORTAL.subject_of(cookie) == "ptl_1"
    # The same again is the same session (no state), with the same csrf token.
    assert PORTAL.open(cookie, HASH, NOW + 1) == session
    assert not csrf_ok(session, None) and not csrf_ok(session, "")
    assert not csrf_ok(session, session.csrf.upper())


@pytest.mark.parametrize(("made_by", "opened_by"), [(DASHBOARD, PORTAL), (PORTAL, DASHBOARD)])
@pytest.mark.parametrize("subject", ["key_1", "ptl_1"])
def test_one_realms_cookie_never_opens_the_other(made_by, opened_by, subject):
    """Same subject, same hash, same expiry: signed for one realm, refused by the other."""
    cookie = made_by.make_cookie(subject, HASH, LATER)
    assert opened_by.open(cookie, HASH, NOW) is None
    assert made_by.open(cookie, HASH, NOW) is not None


def test_a_realm_names_only_its_own_subjects():
    assert DASHBOARD.subject_of(PORTAL.make_cookie("ptl_1", HASH, LATER)) is None
    assert PORTAL.subject_of(DASHBOARD.make_cookie("key_1", HASH, LATER)) is None
    assert (DASHBOARD.cookie_name, PORTAL.cookie_name) == ("dispatcher_session",
                                                           "dispatcher_portal")
    assert DASHBOARD.label != PORTAL.label


def test_the_csrf_token_is_the_sessions_and_the_realms():
    portal = PORTAL.open(PORTAL.make_cookie("ptl_1", HASH, LATER), HASH, NOW)
    other_link = PORTAL.open(PORTAL.make_cookie("ptl_2", HASH, LATER), HASH, NOW)
    other_expiry = PORTAL.open(PORTAL.make_cookie("ptl_1", HASH, LATER + 1), HASH, NOW)
    other_hash = PORTAL.open(PORTAL.make_cookie("ptl_1", "b" * 64, LATER), "b" * 64, NOW)
    dashboard = DASHBOARD.open(DASHBOARD.make_cookie("ptl_1", HASH, LATER), HASH, NOW)
    sessions = [portal, other_link, other_expiry, other_hash, dashboard]
    assert all(s is not None for s in sessions)
    assert len({s.csrf for s in sessions if s is not None}) == len(sessions)


@pytest.mark.parametrize(("expires_at", "now", "opens"), [
    (LATER, LATER - 1, True),
    (LATER, LATER - 0.001, True),
    (LATER, LATER, False),  # the second it expires, it is over
    (LATER, LATER + 1, False),
    (LATER, LATER + 86400 * 365, False),
    (0, NOW, False),
])
def test_an_expired_cookie_opens_nothing(expires_at, now, opens):
    cookie = PORTAL.make_cookie("ptl_1", HASH, expires_at)
    assert (PORTAL.open(cookie, HASH, now) is not None) is opens


def altered(cookie: str) -> list[str]:
    subject, expires, mac = cookie.split(".")
    flipped = ("0" if mac[-1] != "0" else "1")
    return [
        f"{subject}.{int(expires) + 86400}.{mac}",  # a longer life
        f"{subject}.{int(expires) - 1}.{mac}",
        f"ptl_2.{expires}.{mac}",  # another link
        f"{subject}.{expires}.{mac[:-1]}{flipped}",
        f"{subject}.{expires}.{mac.upper()}",
        f"{subject}.{expires}.",
        f"{subject}.{expires}",
        f"{subject}.{expires}.{mac}.x",
        f"{subject}.{expires}x.{mac}",
        f"{subject}. {expires}.{mac}",
        f"{subject}.{expires}.{mac[:32]}",
        "", ".", "..", "ptl_1",
    ]


def test_an_altered_cookie_opens_nothing():
    cookie = PORTAL.make_cookie("ptl_1", HASH, LATER)
    assert PORTAL.open(cookie, HASH, NOW) is not None
    for changed in altered(cookie):
        assert PORTAL.open(changed, HASH, NOW) is None, changed
    # Nor the right cookie checked against another link's hash (a link made again).
    assert PORTAL.open(cookie, "b" * 64, NOW) is None
    assert PORTAL.open(cookie, "", NOW) is None


@pytest.mark.parametrize("realm", [DASHBOARD, PORTAL, Realm("x", "x_", b"x")])
def test_every_realm_signs_with_its_own_label(realm):
    cookie = realm.make_cookie(realm.id_prefix + "1", HASH, LATER)
    assert realm.subject_of(cookie) == realm.id_prefix + "1"
    others = [r for r in (DASHBOARD, PORTAL, Realm("x", "x_", b"x")) if r != realm]
    for other in others:
        assert other.open(cookie, HASH, NOW) is None


def _request(headers: dict[str, str]) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in ({"host": "hooks.example.com"}
                                                         | headers).items()]
    return Request({"type": "http", "method": "POST", "path": "/portal/endpoints",
                    "headers": raw})


@pytest.mark.parametrize(("headers", "same"), [
    ({}, True),  # no Origin (older browsers): the CSRF token decides
    ({"origin": "http://hooks.example.com"}, True),
    ({"origin": "https://evil.example"}, False),
    ({"origin": "http://hooks.example.com.evil.example"}, False),
    # Referrer-Policy: no-referrer makes Chromium post Origin: null from the portal's own
    # page; Sec-Fetch-Site, which a page cannot set, tells it from another site's.
    ({"origin": "null", "sec-fetch-site": "same-origin"}, True),
    ({"origin": "null", "sec-fetch-site": "cross-site"}, False),
    ({"origin": "null", "sec-fetch-site": "same-site"}, False),
    ({"origin": "null"}, False),
])
def test_same_origin(headers, same):
    assert same_origin(_request(headers)) is same
