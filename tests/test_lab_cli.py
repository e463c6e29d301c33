"""mlaas4hep-lab demo: copies the demo notebook and starts a real JupyterLab on it."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from servers import free_port, wait_for_port


def start_demo(tmp_path) -> tuple[int, subprocess.Popen]:
    """``mlaas4hep-lab demo`` on a free port with token t0k, in its own session; returns once it listens."""
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "MLAAS4HEP_JOB_ROOT": str(tmp_path / "jobs")}
    proc = subprocess.Popen([sys.executable, "-m", "mlaas4hep_lab.cli", "demo", "--dir", str(tmp_path / "demo"),
                             "--no-browser", f"--port={port}", "--IdentityProvider.token=t0k"],
                            cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_port(port, timeout=60)
    except BaseException:
        os.killpg(proc.pid, signal.SIGTERM)
        raise
    return port, proc


@pytest.mark.slow
def test_demo_command_opens_jupyterlab_on_the_demo_notebook(tmp_path):
    port, proc = start_demo(tmp_path)
    try:
        notebook = tmp_path / "demo" / "demo.ipynb"
        assert json.loads(notebook.read_text())["nbformat"] == 4
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/contents/demo.ipynb?token=t0k&content=0") as r:
            assert json.load(r)["type"] == "notebook"  # served from the demo folder
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/lab?token=t0k") as r:
            assert r.status == 200
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    # an edited copy is kept on the next start
    notebook.write_text(notebook.read_text().replace('"nbformat": 4', '"nbformat": 4 '))
    edited = notebook.read_text()
    port, proc = start_demo(tmp_path)
    try:
        assert notebook.read_text() == edited
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)


def test_demo_command_reports_an_unusable_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = subprocess.run([sys.executable, "-m", "mlaas4hep_lab.cli", "demo", "--dir", str(blocker / "demo")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "cannot create the folder" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.slow
def test_without_a_browser_the_demo_prints_the_notebooks_own_url(tmp_path):
    port = free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(tmp_path / "config"), "MLAAS4HEP_JOB_ROOT": str(tmp_path / "jobs")}
    output = tmp_path / "output.txt"
    with open(output, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "mlaas4hep_lab.cli", "demo", "--dir", str(tmp_path / "demo"),
                                 "--no-browser", f"--port={port}"], cwd=tmp_path, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not (found := re.search(rf"http://127\.0\.0\.1:{port}/lab/tree/demo\.ipynb\?token=\w+",
                                      output.read_text(errors="replace"))):
            assert proc.poll() is None and time.monotonic() < deadline, output.read_text(errors="replace")[-3000:]
            time.sleep(0.2)
        with urllib.request.urlopen(found.group(0)) as page:  # the printed URL opens the notebook in JupyterLab
            assert page.status == 200 and "JupyterLab" in page.read().decode()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
