"""A remote MLaaS4HEP service's job in JupyterLab: its section of the sidebar, its job view, and
the same view restored after a page reload (it must still show the remote job, never look the
job up on this Jupyter server). Screenshots: test-artifacts/remote-*.png."""

from __future__ import annotations

import time
import urllib.request

import pytest

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth

from .conftest import Lab, shot
from servers import ServiceProcess
from support import need, torch_model

pytestmark = pytest.mark.ui


@pytest.fixture
def remote_lab(tmp_path, oidc_issuer, monkeypatch):
    """A service with one finished job of alice's, and a JupyterLab that forwards to it with her token."""
    import os

    from .conftest import CHROMIUM

    need(os.path.exists(CHROMIUM), "Debian's chromium is not installed")
    service = ServiceProcess(oidc_issuer.url, tmp_path / "service-data", audience="mlaas4hep",
                             required_scope="mlaas4hep")
    try:
        token = oidc_issuer.token("alice")
        write_tth(tmp_path / "sig.root", 1000, signal=True, seed=5, separation=1.5)
        write_tth(tmp_path / "bkg.root", 1000, signal=False, seed=5, separation=1.5)
        client = Client(service.url + "/api/v1", token=token)
        job = client.submit(files=[str(tmp_path / "sig.root"), str(tmp_path / "bkg.root")], labels=[1, 0],
                            model=torch_model(), name="remote job", params={"chunk_size": 1000, "epochs": 1})
        assert client.follow(job.id, timeout=240).status == "succeeded"
        for name in ("MLAAS4HEP_TOKEN_FILE", "BEARER_TOKEN", "BEARER_TOKEN_FILE", "JUPYTERHUB_API_URL",
                     "JUPYTERHUB_API_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("MLAAS4HEP_TOKEN", token)
        monkeypatch.setenv("MLAAS4HEP_REMOTES", f'{{"cern": "{service.url}"}}')
        root = tmp_path / "root"
        root.mkdir()
        lab = Lab(root, tmp_path / "jobs")
        try:
            yield lab, job
        finally:
            lab.stop()
    finally:
        service.stop()


def wait_for_saved_layout(lab: Lab, needle: str, timeout: float = 60.0) -> None:
    """Until the workspace JupyterLab saved on the server mentions ``needle``."""
    deadline = time.monotonic() + timeout
    url = f"http://127.0.0.1:{lab.port}/lab/api/workspaces/default?token={lab.token}"
    while True:
        with urllib.request.urlopen(url, timeout=10) as response:
            if needle in response.read().decode():
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"JupyterLab did not save a layout with {needle!r} within {timeout:.0f} s")
        time.sleep(0.5)


def test_a_remote_job_view_is_restored_after_a_reload(remote_lab, page):
    lab, job = remote_lab
    page.goto(lab.url("lab"))
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    section = page.locator(".mlaas4hep-source[data-source='remote:cern']")
    row = section.locator(f".mlaas4hep-job-row[data-job-id='{job.id}']")
    row.wait_for(timeout=60_000)
    row.click()
    view = page.locator(f".mlaas4hep-jobview-content[data-job-id='{job.id}']")
    view.locator(".mlaas4hep-job-status", has_text="succeeded").wait_for(timeout=60_000)
    assert view.get_attribute("data-source") == "remote:cern"
    assert "remote job" in view.locator(".mlaas4hep-jobview-name").inner_text()
    shot(page, "remote-jobview")

    # JupyterLab saves the layout to the server a moment after it changes: reload once it has
    wait_for_saved_layout(lab, f"{job.id}")
    page.reload()
    restored = page.locator(f".mlaas4hep-jobview-content[data-job-id='{job.id}']")
    restored.wait_for(timeout=90_000)
    # the restored view reads the remote service again, not this server (the race with the remote
    # listing that could send it here is pinned down in js/__tests__/sources.spec.ts)
    assert restored.get_attribute("data-source") == "remote:cern"
    restored.locator(".mlaas4hep-job-status", has_text="succeeded").wait_for(timeout=60_000)
    assert "remote job" in restored.locator(".mlaas4hep-jobview-name").inner_text()
    assert restored.locator(".mlaas4hep-jobview-message.mlaas4hep-mod-error:visible").count() == 0
    shot(page, "remote-jobview-restored")
