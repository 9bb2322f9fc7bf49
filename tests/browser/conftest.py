"""Real headless Chromium (Debian's package) driven by Playwright; never `playwright install`."""

import contextlib
import shutil
import time

import pytest
from django.contrib.staticfiles.handlers import StaticFilesHandler
from django.core.servers.basehttp import WSGIServer
from django.db import connections
from django.test.testcases import LiveServerThread, QuietWSGIRequestHandler

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# How long the live server gets to finish a page's last requests before the flush.
SETTLE_S = 0.3
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


@pytest.fixture(scope="session")
def browser():
    if not shutil.which("chromium") and not shutil.os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    from playwright.sync_api import Error as PlaywrightError

    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    # Stop the page's scripts (the inspector polls the queue) and let the live server finish the
    # requests it already has, before the test database is flushed: a request still holding row
    # locks deadlocked the flush's TRUNCATE on PostgreSQL once (a teardown error, then the next
    # test's setup found the last test's rows).
    with contextlib.suppress(PlaywrightError):  # a page already gone has nothing in flight
        page.goto("about:blank")
    time.sleep(SETTLE_S)
    context.close()


class OneRequestAtATime(LiveServerThread):
    def _create_server(self, connections_override=None):
        return WSGIServer(
            (self.host, self.port), QuietWSGIRequestHandler, allow_reuse_address=False
        )


@pytest.fixture
def server(request, transactional_db):
    """The live server's URL. On SQLite's in-memory test database every server thread shares the
    test's one connection, and two requests at once on it fail ("database table is locked"); the
    page sends several at once by design, so there the server answers one request at a time."""
    connection = connections["default"]
    if not (connection.vendor == "sqlite" and connection.is_in_memory_db()):
        yield request.getfixturevalue("live_server").url
        return
    thread = OneRequestAtATime(
        "127.0.0.1", StaticFilesHandler, connections_override={connection.alias: connection}
    )
    thread.daemon = True
    connection.inc_thread_sharing()
    try:
        thread.start()
        thread.is_ready.wait()
        if thread.error:
            raise thread.error
        yield f"http://127.0.0.1:{thread.port}"
    finally:
        thread.terminate()
        connection.dec_thread_sharing()
