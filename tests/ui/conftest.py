"""Browser tests: a real ``jupyter lab`` (own port, token, temporary root and job folder) driven by
Playwright in Debian's Chromium. Screenshots go to ``test-artifacts/`` (look at them)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1]))

from servers import free_port, wait_for_port  # noqa: E402
from support import need  # noqa: E402

ARTIFACTS = Path(__file__).parents[2] / "test-artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Lab:
    """A running JupyterLab: its URL, token, root folder and job folder."""

    def __init__(self, root: Path, jobs: Path):
        self.root, self.jobs = root, jobs
        self.port = free_port()
        self.token = "mlaas4hep-ui-test"
        env = {**os.environ, "MLAAS4HEP_JOB_ROOT": str(jobs), "JUPYTER_CONFIG_DIR": str(root / ".jupyter-config"),
               "PYTHONUNBUFFERED": "1"}
        settings = root.parent / "lab-user-settings"  # no "get notified of news?" prompt over the page
        (settings / "@jupyterlab" / "apputils-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings").write_text(
            json.dumps({"fetchNews": "false", "checkForUpdates": False}))
        # every cell in the DOM (no windowing), so a test can see all of a notebook's outputs
        (settings / "@jupyterlab" / "notebook-extension").mkdir(parents=True, exist_ok=True)
        (settings / "@jupyterlab" / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
            json.dumps({"windowingMode": "none"}))
        env.pop("MLAAS4HEP_LAB_URL", None)
        env.pop("MLAAS4HEP_LAB_TOKEN", None)
        self.log = open(root.parent / "jupyter-lab.log", "w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--allow-root", f"--port={self.port}",
             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}",
             "--LabApp.news_url=None", "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
             f"--LabApp.user_settings_dir={settings}",
             "--ServerApp.disable_check_xsrf=False"],
            cwd=root, env=env, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, timeout=60)

    def url(self, path: str = "lab") -> str:
        sep = "&" if "?" in path else "?"
        return f"http://127.0.0.1:{self.port}/{path}{sep}token={self.token}"

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
        self.log.close()


def write_notebook(path: Path, cells: list[str]) -> Path:
    """A notebook of code cells (nbformat 4)."""
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": f"cell-{i}", "metadata": {},
                     "outputs": [], "source": src} for i, src in enumerate(cells)],
          "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python",
                                      "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    path.write_text(json.dumps(nb, indent=1))
    return path


@pytest.fixture
def lab(tmp_path):
    need(os.path.exists(CHROMIUM), "Debian's chromium is not installed")
    root = tmp_path / "root"
    root.mkdir()
    server = Lab(root, tmp_path / "jobs")
    yield server
    server.stop()


@pytest.fixture
def browser():
    from playwright.sync_api import sync_playwright

    need(os.path.exists(CHROMIUM), "Debian's chromium is not installed")
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"])
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"))
    context.close()


def shot(page, name: str) -> Path:
    """Save a screenshot into test-artifacts/ and return its path."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


def open_notebook(page, lab: Lab, name: str) -> None:
    page.goto(lab.url(f"lab/tree/{name}"))
    page.wait_for_selector(".jp-Notebook", timeout=90_000)
    # the kernel is ready when the status says Idle
    page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle'], "
                           "[data-status='idle']", timeout=90_000)


def run_all_cells(page, attempts: int = 5) -> None:
    """Run > Run All Cells, until the first cell shows that it ran (the menu item is inert while
    the notebook is still connecting to its kernel)."""
    for _ in range(attempts):
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Escape")
        page.locator("li.lm-MenuBar-item", has_text="Run").click()
        page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
        try:
            page.wait_for_function(
                "() => { const p = document.querySelector('.jp-Notebook .jp-CodeCell .jp-InputPrompt');"
                " return p && /\\[(\\*|\\d+)\\]/.test(p.textContent); }", timeout=10_000)
            return
        except Exception:  # noqa: BLE001 - not started yet: try again
            page.keyboard.press("Escape")
    raise AssertionError("the notebook's cells did not start running")


def wait_until_at_least(count, target: int, deadline: float, message: str) -> int:
    """Poll ``count()`` (points on a curve) until it reaches ``target`` before ``deadline`` (monotonic)."""
    while (n := count()) < target:
        assert time.monotonic() < deadline, message
        time.sleep(0.25)
    return n
