"""Fixtures for the browser suite: Debian's Chromium driven by Playwright, and
Voila, JupyterLab and the built website served on 127.0.0.1.

Every page opens in one browser context. Its router aborts and records any
request to a host other than 127.0.0.1 or localhost, and each test asserts
that its pages added nothing to that record.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = REPO / "notebooks"
SCREENSHOTS = REPO / "build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
LOCAL_HOSTS = {"127.0.0.1", "localhost", "[::1]", "::1"}
BIN = Path(sys.executable).parent

# Seconds a server may take to respond to its first request. JupyterLab needs the most.
SERVER_START_TIMEOUT = 90

try:
    from playwright import sync_api as playwright_sync
except ImportError:
    playwright_sync = None


def missing_requirement() -> str:
    """Return why the browser suite cannot run here, or '' when it can."""
    if playwright_sync is None:
        return "playwright is not installed: pip install -e .[browser]"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} not found: apt-get install chromium chromium-driver"
    return ""


def pytest_collection_modifyitems(config, items):
    reason = missing_requirement()
    if not reason:
        return
    # In CI a missing browser is a broken install step, not a reason to pass.
    if os.environ.get("CI"):
        pytest.exit(f"browser suite cannot run: {reason}", returncode=1)
    for item in items:
        item.add_marker(pytest.mark.skip(reason=reason))


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, log: Path, timeout: float = SERVER_START_TIMEOUT) -> None:
    """Poll ``url`` until it responds, failing early if ``process`` exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode}. Log:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            # Any HTTP status means the server is up.
            return
        except OSError:
            time.sleep(0.25)
    raise TimeoutError(f"{url} did not respond within {timeout} s. Log:\n{log.read_text()[-3000:]}")


class Server:
    """A subprocess serving HTTP on 127.0.0.1, stopped by :meth:`stop`."""

    def __init__(self, command: list[str], port: int, ready_path: str, log: Path, env: dict[str, str] | None = None,
                 cwd: Path = REPO):
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log = log
        self._log_file = log.open("w")
        self.process = subprocess.Popen(command, cwd=cwd, env=env, stdout=self._log_file, stderr=subprocess.STDOUT)
        try:
            wait_for_http(self.base_url + ready_path, self.process, log)
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log_file.close()


def jupyter_env(root: Path) -> dict[str, str]:
    """Environment that keeps Jupyter's config, runtime and lab state inside ``root``."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTERLAB_SETTINGS_DIR", "JUPYTERLAB_WORKSPACES_DIR"):
        path = root / name.lower()
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    env["JUPYTER_PLATFORM_DIRS"] = "1"
    # Without MPLBACKEND the kernels use matplotlib's inline backend, as when the notebooks were executed.
    env.pop("MPLBACKEND", None)
    return env


class RequestGuard:
    """Abort and record every request whose host is not 127.0.0.1 or localhost."""

    def __init__(self):
        self.blocked: list[str] = []

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        return parts.hostname in LOCAL_HOSTS

    def route(self, route) -> None:
        url = route.request.url
        if self.is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort("blockedbyclient")

    def check_websocket(self, websocket) -> None:
        if not self.is_local(websocket.url):
            self.blocked.append(websocket.url)


@pytest.fixture(scope="session")
def browser_context(tmp_path_factory):
    """One Chromium profile for the session, with outside requests blocked."""
    profile = tmp_path_factory.mktemp("chromium-profile")
    guard = RequestGuard()
    with playwright_sync.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            chromium_sandbox=False,
            service_workers="block",
            viewport={"width": 1280, "height": 1000},
            args=[
                "--headless",
                "--no-sandbox",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-quic",
            ],
        )
        context.set_default_timeout(60_000)
        playwright_sync.expect.set_options(timeout=60_000)
        context.route("**/*", guard.route)
        context.on("page", lambda page: page.on("websocket", guard.check_websocket))
        context.request_guard = guard
        yield context
        context.close()


@pytest.fixture
def page(browser_context):
    """A fresh tab; the test fails if the tab sent any request off 127.0.0.1."""
    guard = browser_context.request_guard
    already_blocked = len(guard.blocked)
    tab = browser_context.new_page()
    tab.on("websocket", guard.check_websocket)
    yield tab
    tab.close()
    outside = guard.blocked[already_blocked:]
    assert not outside, f"requests left 127.0.0.1: {outside}"


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS


@pytest.fixture(scope="session")
def voila_server(tmp_path_factory):
    """Voila serving ``notebooks/`` on 127.0.0.1; chapters open at /voila/render/NAME.ipynb."""
    root = tmp_path_factory.mktemp("voila")
    port = free_port()
    command = [
        str(BIN / "voila"), str(NOTEBOOKS), "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
        "--show_tracebacks=True", "--template=fedmed",
    ]
    # The 'fedmed' template in jupyter/voila/templates drops Voila's CDN stylesheets.
    env = dict(jupyter_env(root), JUPYTER_PATH=str(REPO / "jupyter"))
    server = Server(command, port, "/", root / "voila.log", env=env)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def jupyterlab_server(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with news and update checks switched off by ``jupyter/overrides.json``."""
    root = tmp_path_factory.mktemp("jupyterlab")
    work = root / "notebooks"
    shutil.copytree(NOTEBOOKS, work)
    port = free_port()
    token = "fedmed-lab-browser-test"
    command = [
        str(BIN / "jupyter"), "lab", "--no-browser", "--allow-root", "--ip=127.0.0.1", f"--port={port}",
        f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={work}",
        # The same settings overrides as make lab.
        f"--LabApp.app_settings_dir={REPO / 'jupyter'}", "--LabApp.expose_app_in_browser=True",
    ]
    server = Server(command, port, "/api", root / "jupyterlab.log", env=jupyter_env(root), cwd=work)
    server.token = token
    yield server
    server.stop()


@pytest.fixture(scope="session")
def built_site(tmp_path_factory):
    """The static website built from the committed notebooks, served by http.server on 127.0.0.1."""
    from fedmed_lab.website import build_site

    output = tmp_path_factory.mktemp("site")
    build_site(NOTEBOOKS, REPO / "exercises", output)
    port = free_port()
    command = [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(output)]
    server = Server(command, port, "/index.html", output.parent / "http-server.log")
    server.directory = output
    yield server
    server.stop()
