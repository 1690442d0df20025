"""/docs and /redoc in a real browser with no internet: Debian's Chromium, driven by
Playwright, against the app on 127.0.0.1, every other host unreachable.

Chromium resolves no name but 127.0.0.1 (``--host-resolver-rules``), and every request the
page makes to another host is aborted and counted: the pages must render from what the
server itself serves (the fastapi-offline package's Swagger UI and ReDoc). Screenshots go
to test-artifacts/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from .browsers import ARTIFACTS, CHROMIUM_ARGS, chromium, playwright_api
from .conftest import ADMIN_TOKEN
from .harness import AppServer

expect = playwright_api.expect
# No name resolves, and no address is reachable by name, except 127.0.0.1.
OFFLINE_ARGS = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"]


@pytest.fixture(scope="module")
def offline_browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    with chromium(tmp_path_factory.mktemp("chromium-docs-profile"), OFFLINE_ARGS) as context:
        yield context


class Outside:
    """Aborts, and remembers, every request to a host other than 127.0.0.1."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, route) -> None:
        if urlsplit(route.request.url).hostname == "127.0.0.1":
            route.continue_()
        else:
            self.asked.append(route.request.url)
            route.abort()


@pytest.fixture
def page(offline_browser, engine) -> Iterator[tuple[object, Outside]]:
    offline_browser.clear_cookies()
    outside = Outside()
    page = offline_browser.new_page()
    page.set_default_timeout(15_000)
    page.route(re.compile(r".*"), outside)
    yield page, outside
    page.close()


def shot(page, engine: str, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"docs-{engine}-{name}.png"), full_page=True)


def test_swagger_ui_renders_offline_and_publishes_an_event(page, app_server: AppServer,
                                                           engine):
    page, outside = page
    page.goto(app_server.url + "/docs")

    # The operations, with our summaries, grouped by tag.
    publish = page.locator(".opblock-post", has=page.locator("[data-path='/v1/events']"))
    expect(publish.locator(".opblock-summary-description")).to_have_text("Publish an event")
    documented = httpx.get(app_server.url + "/openapi.json", timeout=10).json()["paths"]
    expect(page.locator(".opblock")).to_have_count(sum(len(ops) for ops in documented.values()))
    expect(page.locator(".opblock-tag-section h3").first).to_contain_text("events")

    # The Authorize button, for the bearer scheme: log in with the admin key.
    page.click("button.authorize")
    dialog = page.locator(".dialog-ux")
    expect(dialog).to_contain_text("apiKey")
    expect(dialog).to_contain_text("Bearer")
    api_key = dialog.locator(".auth-container", has=page.locator("h4", has_text="apiKey"))
    expect(api_key).to_contain_text("Authorization: Bearer <key>")
    api_key.locator("input").fill(ADMIN_TOKEN)
    api_key.locator("button.authorize").click()
    api_key.locator("button.btn-done").click()
    expect(page.locator("button.authorize.locked")).to_be_visible()

    # POST /v1/events shows a real example and sends it, with the key, from the page.
    publish.locator(".opblock-summary").click()
    expect(publish.locator(".opblock-description-wrapper").first).to_contain_text("Roles:")
    example = publish.locator(".body-param__example")
    expect(example).to_contain_text('"invoice.paid"')
    shot(page, engine, "swagger")
    publish.locator("button.try-out__btn").click()
    publish.locator("button.execute").click()
    live = publish.locator(".live-responses-table .response .response-col_status")
    expect(live.first).to_have_text("202")
    expect(publish.locator(".live-responses-table")).to_contain_text("evt_")
    shot(page, engine, "swagger-published")

    assert outside.asked == [], outside.asked


def test_redoc_renders_offline(page, app_server: AppServer, engine):
    page, outside = page
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text else 0)
    page.goto(app_server.url + "/redoc")
    expect(page.locator("h2", has_text="Publish an event")).to_be_visible()
    expect(page.locator("body")).to_contain_text("invoice.paid")
    # Its search runs in a worker, which the page's policy allows.
    page.fill("input[placeholder='Search...']", "publish")
    expect(page.locator("[role=search]")).to_contain_text("Publish an event")
    shot(page, engine, "redoc")
    assert outside.asked == [], outside.asked
    # The page's policy stopped ReDoc's logo from its maker's CDN, and only that.
    assert all("cdn.redoc.ly" in text for text in blocked), blocked


@pytest.mark.parametrize("path", ["/docs", "/redoc"])
def test_docs_pages_may_load_only_from_this_server(app_server: AppServer, path):
    response = httpx.get(app_server.url + path, timeout=10)
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "http" not in response.text.split("<body>")[0].replace("http-equiv", "")
