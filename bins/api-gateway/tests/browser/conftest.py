"""Fixtures for the web client's browser tests.

The real binaries (api-gateway, chat-service and testkit's fake-llm, from
CONFAB_BIN_DIR) run on 127.0.0.1 with SQLite in a temp dir; Debian's
Chromium (CONFAB_CHROMIUM, default /usr/bin/chromium) is driven headless by
Playwright. Every page is watched: console errors, failed requests, HTTP
errors and requests to any other origin fail the test unless the test
declares them expected (`expect_errors`).

Run through scripts/browser-tests.sh (installs and builds what is needed).
Screenshots and measurements go to CONFAB_BROWSER_OUT.
"""

import base64
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import Request, urlopen

import pytest

REQUIRE = os.environ.get("CONFAB_REQUIRE_BROWSER") == "1"
CHROMIUM = os.environ.get("CONFAB_CHROMIUM", "/usr/bin/chromium")
BIN_DIR = Path(os.environ.get("CONFAB_BIN_DIR", "target/debug"))
OUT = Path(os.environ.get("CONFAB_BROWSER_OUT", "target/browser-tests"))
JWT_SECRET = "browser-tests-secret-0123456789abcdef0123456789"
INTERNAL_KEY = "browser-tests-internal-key"
# Per streamed token of the fake model `slow`: slow enough to see the first
# token before the last, fast enough for a quick suite.
# (fake-llm's default for `slow` is 50 ms; other models, e.g. `echo`, have none.)


def skip_or_fail(reason):
    if REQUIRE:
        pytest.fail(f"CONFAB_REQUIRE_BROWSER=1 but {reason}")
    pytest.skip(reason)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A child process that prints `listening on http://ADDR`."""

    def __init__(self, name, argv, env, workdir):
        self.name = name
        self.out = open(workdir / f"{name}.out", "w+")
        self.err = open(workdir / f"{name}.err", "w+")
        self.proc = subprocess.Popen(argv, env=env, cwd=workdir, stdout=self.out, stderr=self.err)
        self.url = self.wait_listening()

    def wait_listening(self, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.out.seek(0)
            for line in self.out.read().splitlines():
                if line.startswith("listening on "):
                    return line.split(" ", 2)[2].strip()
            if self.proc.poll() is not None:
                self.err.seek(0)
                raise RuntimeError(f"{self.name} exited {self.proc.returncode}: {self.err.read()[-2000:]}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start in {timeout} s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Stack:
    """fake-llm + chat-service + api-gateway on loopback."""

    def __init__(self, workdir, builtin_model=False):
        self.dir = workdir
        self.builtin_model = builtin_model
        for b in ("api-gateway", "chat-service", "fake-llm"):
            if not (BIN_DIR / b).exists():
                skip_or_fail(f"no {b} binary in {BIN_DIR} (set CONFAB_BIN_DIR)")
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CONFAB_LLM", "OLLAMA", "OPENAI", "CHAT_BACKEND", "RUST_LOG", "CORS", "REDIS", "DATABASE"))}
        base.update(
            DATABASE_URL=f"sqlite://{workdir}/confab.db",
            AGENT_RUNTIME__INTERNAL_API_KEY=INTERNAL_KEY,
            LOG_LEVEL="warn",
            CONFAB_MODELS_DIR=str(workdir / "no-models"),
            CONFAB_EMBEDDING_PROVIDER="builtin",
        )
        self.base_env = base
        self.fake = Proc("fake-llm", [str(BIN_DIR / "fake-llm"), "--port", "0"], base, workdir)
        self.chat_port = free_port()
        self.chat = None
        self.start_chat()
        env = dict(base,
                   GATEWAY_BIND="127.0.0.1:0",
                   CHAT_SERVICE_URLS=f"http://127.0.0.1:{self.chat_port}",
                   JWT_SECRET=JWT_SECRET,
                   RATE_LIMIT_AUTH_PER_MIN="10000",
                   RATE_LIMIT_USER_PER_MIN="100000",
                   UPSTREAM_COOLDOWN_SECS="1",
                   # The fake LLM's models the tests pick as preferred_model.
                   CONFAB_ALLOWED_MODELS="slow,echo")
        self.gateway = Proc("api-gateway", [str(BIN_DIR / "api-gateway")], env, workdir)
        self.url = self.gateway.url.rstrip("/")
        self.wait_catalogue()

    def start_chat(self):
        env = dict(self.base_env, CHAT_SERVICE_BIND=f"127.0.0.1:{self.chat_port}")
        if not self.builtin_model:
            # The fake LLM server; without it the built-in offline model answers.
            env.update(AGENT_RUNTIME__LLM_PROXY_URL=self.fake.url, AGENT_RUNTIME__LLM_MODEL="slow")
        self.chat = Proc("chat-service", [str(BIN_DIR / "chat-service")], env, self.dir)

    def stop_chat(self):
        self.chat.stop()

    def wait_catalogue(self, timeout=60):
        """Waits until the demo courses answer with sources (indexed)."""
        email = "probe@example.com"
        tokens = self.post("/api/auth/register", {"email": email, "password": "probe password 42"})["tokens"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.post("/api/chat", {"message": "What is ownership in Rust?"}, tokens["access_token"])
            if r.get("sources"):
                return
            time.sleep(0.3)
        raise RuntimeError("the demo courses were not indexed in time (no sources)")

    def post(self, path, body, token=None):
        req = Request(self.url + path, data=json.dumps(body).encode(), method="POST",
                      headers={"content-type": "application/json", **({"authorization": f"Bearer {token}"} if token else {})})
        with urlopen(req, timeout=30) as r:
            return json.loads(r.read() or b"null")

    def jwt(self, claims):
        """An HS256 JWT signed with the gateway's secret."""
        def b64(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = b64(json.dumps(claims).encode())
        sig = hmac.new(JWT_SECRET.encode(), f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(sig)}"

    def close(self):
        for p in (self.gateway, self.chat, self.fake):
            if p:
                p.stop()


@pytest.fixture(scope="session")
def out_dir():
    OUT.mkdir(parents=True, exist_ok=True)
    return OUT


@pytest.fixture(scope="session")
def stack():
    workdir = Path(tempfile.mkdtemp(prefix="confab-browser-"))
    s = None
    try:
        s = Stack(workdir)
        yield s
    finally:
        if s:
            s.close()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("playwright is not installed (scripts/browser-tests.sh installs it)")
    if not Path(CHROMIUM).exists():
        skip_or_fail(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-default-apps", "--disable-extensions"]
            # A fulfilled (routed) page has no address space of its own:
            # Chromium's local-network checks would refuse its WebSocket.
            + (["--disable-features=LocalNetworkAccessChecks"] if UI_FROM_SOURCE else []),
        )
        yield b
        b.close()


class Watch:
    """Everything that went wrong on a context's pages."""

    def __init__(self, origin):
        self.origin = origin
        self.console_errors = []
        self.failed = []
        self.http_errors = []
        self.other_origin = []
        self.dialogs = []
        self.page_errors = []

    def attach(self, page):
        page.on("console", lambda m: m.type == "error" and self.console_errors.append(f"{m.text} @ {m.location.get('url', '')}"))
        page.on("pageerror", lambda e: self.page_errors.append(str(e)))
        page.on("requestfailed", lambda r: self.failed.append(f"{r.method} {r.url}: {r.failure}"))
        page.on("response", lambda r: r.status >= 400 and self.http_errors.append(f"{r.status} {r.request.method} {r.url}"))
        page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

        def on_request(r):
            u = urlparse(r.url)
            if u.scheme in ("blob", "data"):
                return
            if f"{u.scheme}://{u.netloc}" not in (self.origin, self.origin.replace("http://", "ws://")):
                self.other_origin.append(r.url)
        page.on("request", on_request)
        page.on("websocket", lambda ws: on_request_ws(ws.url))

        def on_request_ws(url):
            u = urlparse(url)
            if f"ws://{u.netloc}" != self.origin.replace("http://", "ws://"):
                self.other_origin.append(url)

    def problems(self, allow_errors=False, allowed=()):
        def keep(items):
            return [i for i in items if not any(re.search(rx, i) for rx in allowed)]
        self.console_errors = keep(self.console_errors)
        self.failed = keep(self.failed)
        self.http_errors = keep(self.http_errors)
        out = []
        if self.other_origin:
            out.append(f"requests to another origin: {self.other_origin}")
        if self.page_errors:
            out.append(f"uncaught page errors: {self.page_errors}")
        if self.dialogs:
            out.append(f"dialogs opened: {self.dialogs}")
        if not allow_errors:
            if self.console_errors:
                out.append(f"console errors: {self.console_errors}")
            if self.failed:
                out.append(f"failed requests: {self.failed}")
            if self.http_errors:
                out.append(f"HTTP errors: {self.http_errors}")
        return out


ALL_WATCHES = []

# CONFAB_UI_FROM_SOURCE=1: the page and its files come from
# bins/api-gateway/ui/ as they are on disk (unhashed, uncompressed, same CSP),
# the API and /ws/chat from the running gateway: for working on the client
# without rebuilding the gateway. Not for measurements.
UI_FROM_SOURCE = os.environ.get("CONFAB_UI_FROM_SOURCE") == "1"
UI_DIR = Path(__file__).resolve().parents[2] / "ui"


def serve_ui_from_source(ctx, origin):
    types = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml", ".html": "text/html"}
    host = urlparse(origin).netloc
    csp = (f"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
           f"connect-src 'self' ws://{host} wss://{host}; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'")

    def handle(route):
        path = urlparse(route.request.url).path
        file = UI_DIR / ("index.html" if path in ("/", "/index.html") else path.removeprefix("/assets/"))
        if not file.resolve().is_relative_to(UI_DIR) or not file.is_file():
            return route.fulfill(status=404, body="not found")
        route.fulfill(status=200, body=file.read_bytes(),
                      headers={"content-type": types.get(file.suffix, "text/plain"), "content-security-policy": csp,
                               "cache-control": "no-store"})
    ctx.route(f"{origin}/", handle)
    ctx.route(f"{origin}/assets/**", handle)


@pytest.fixture
def new_context(browser, stack, request):
    """new_context(**kw) -> (context, page); watched; closed after the test.
    new_context.allow(regex): an error the test provokes on purpose."""
    made = []
    allowed = []
    allow = request.node.get_closest_marker("expect_errors") is not None

    def make(**kw):
        ctx = browser.new_context(base_url=stack.url, accept_downloads=True, **kw)
        if UI_FROM_SOURCE:
            serve_ui_from_source(ctx, stack.url)
        watch = Watch(stack.url)
        ctx.on("page", watch.attach)
        page = ctx.new_page()
        made.append((ctx, watch))
        ALL_WATCHES.append((request.node.name, watch, allow))
        return ctx, page

    make.allow = allowed.append
    yield make
    problems = []
    for ctx, watch in made:
        problems += watch.problems(allow_errors=allow, allowed=allowed)
        ctx.close()
    assert not problems, "\n".join(problems)


def pytest_configure(config):
    config.addinivalue_line("markers", "expect_errors: the test provokes failures (console errors and failed requests are expected)")
