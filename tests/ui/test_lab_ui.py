"""The JupyterLab frontend in a real browser: the demo from its launcher card, a cut edited in
the Workbench, jobs in the MLaaS4HEP sidebar (a growing loss curve, a cancel).
Screenshots: test-artifacts/lab-*.png."""

from __future__ import annotations

import json
import time

import pytest

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth

from .conftest import open_notebook, run_all_cells, shot, wait_until_at_least, write_notebook
from support import torch_model

pytestmark = pytest.mark.ui

TORCH_MODEL = torch_model(32)


def data(lab):
    write_tth(lab.root / "sig.root", 3000, signal=True, seed=31, separation=1.5)
    write_tth(lab.root / "bkg.root", 3000, signal=False, seed=31, separation=1.5)
    return [str(lab.root / "sig.root"), str(lab.root / "bkg.root")]


def submit(lab, files, chunk_size=100, epochs=3, name="sidebar job"):
    client = Client(f"http://127.0.0.1:{lab.port}/", token=lab.token)  # the Jupyter token is a valid login
    return client, client.submit(files=files, labels=["1", "0"], model=TORCH_MODEL, name=name,
                                 params={"chunk_size": chunk_size, "epochs": epochs, "batch_size": 64})


def open_sidebar(page):
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    page.locator(".mlaas4hep-sidebar").first.wait_for(timeout=30_000)


def series_points(page) -> int:
    d = page.evaluate("""() => {
        const p = document.querySelector('.mlaas4hep-jobview .mlaas4hep-jobview-chart path.mlaas4hep-series-loss');
        return p ? (p.getAttribute('d') || '') : '';
    }""")
    return d.count("L") + 1 if d else 0


def test_demo_opens_from_the_launcher_and_runs(lab, page):
    page.goto(lab.url("lab"))
    page.locator(".jp-LauncherCard", has_text="MLaaS4HEP demo").first.click()
    page.locator(".jp-Notebook").first.wait_for(timeout=90_000)
    assert (lab.root / "mlaas4hep-demo" / "demo.ipynb").exists()
    page.wait_for_selector("[data-status='idle']", timeout=90_000)
    run_all_cells(page)
    # the last code cell has run when every prompt shows a number (none pending, none empty)
    page.wait_for_function("""() => {
        const prompts = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
        return prompts.length > 0 && prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
    }""", timeout=300_000)
    errors = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'] .jp-RenderedText:has-text('Traceback'), .jp-RenderedText[data-mime-type='application/vnd.jupyter.error']")
    assert errors.count() == 0
    text = page.locator(".jp-Notebook").first.inner_text()
    assert "auc" in text
    shot(page, "lab-demo")


def test_a_cut_edit_changes_the_histogram_and_the_cutflow(lab, page):
    data(lab)
    write_notebook(lab.root / "wb.ipynb", [
        "from mlaas4hep_lab import Workbench\n"
        "wb = Workbench(files=['sig.root', 'bkg.root'], labels=['signal', 'background'], sample_size=3000)\n"
        "wb",
    ])
    open_notebook(page, lab, "wb.ipynb")
    run_all_cells(page)
    page.locator(".lm-TabBar-tab", has_text="Explore").first.click()
    page.locator("table.mlaas4hep-cutflow").first.wait_for(timeout=120_000)
    before_table = page.locator("table.mlaas4hep-cutflow").first.inner_text()
    before_image = page.locator(".widget-image").first.get_attribute("src")
    assert "nJets >= 6" not in before_table

    page.locator(".lm-TabBar-tab", has_text="Preprocessing").first.click()
    page.locator("button", has_text="+ flat cut").first.click()
    row = page.locator(".widget-text input[list]").last  # the new flat cut's branch (a combobox)
    row.fill("nJets")
    row.press("Enter")
    cut = page.locator("input[placeholder='e.g. x > 10']").last
    cut.fill("nJets >= 6")
    cut.press("Enter")
    page.locator(".lm-TabBar-tab", has_text="Explore").first.click()
    page.wait_for_function("() => [...document.querySelectorAll('table.mlaas4hep-cutflow')]"
                           ".some(t => t.innerText.includes('nJets >= 6'))", timeout=60_000)
    after_table = page.locator("table.mlaas4hep-cutflow").first.inner_text()
    page.wait_for_function(f"() => document.querySelector('.widget-image').getAttribute('src') !== {json.dumps(before_image)}",
                           timeout=30_000)
    rows = [line for line in after_table.splitlines() if line.startswith("nJets >= 6")]
    assert rows and rows[0] != before_table  # a new row with fewer events than before
    shot(page, "lab-workbench-cut")


def test_a_job_in_the_sidebar_with_a_growing_curve_and_a_cancel(lab, page):
    files = data(lab)
    page.goto(lab.url("lab"))
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    client, job = submit(lab, files, chunk_size=60, epochs=3)
    open_sidebar(page)
    row = page.locator(f".mlaas4hep-job-row[data-job-id='{job.id}']")
    row.wait_for(timeout=30_000)
    row.click()
    page.locator(".mlaas4hep-jobview").first.wait_for(timeout=30_000)
    deadline = time.monotonic() + 180
    early = wait_until_at_least(lambda: series_points(page), 3, deadline, "no loss curve within 180 s")
    shot(page, "lab-sidebar-jobview")
    wait_until_at_least(lambda: series_points(page), early + 1, deadline, "the loss curve did not grow")
    page.locator(".mlaas4hep-jobview .mlaas4hep-job-status", has_text="succeeded").first.wait_for(timeout=240_000)
    assert series_points(page) > early
    # (toolbar buttons are <jp-button>s: the state is on the inner button)
    page.locator(".mlaas4hep-jobview .mlaas4hep-download button:not([disabled])").first.wait_for(timeout=30_000)
    assert page.locator(".mlaas4hep-jobview .mlaas4hep-cancel button").first.is_disabled()

    # a second, slow job, cancelled from its row in the sidebar
    _, slow = submit(lab, files, chunk_size=30, epochs=50, name="slow job")
    slow_row = page.locator(f".mlaas4hep-job-row[data-job-id='{slow.id}']")
    slow_row.wait_for(timeout=30_000)
    slow_row.locator(".mlaas4hep-job-status", has_text="running").wait_for(timeout=90_000)
    # Cancel asks first, as Delete does: "Keep running" leaves the job alone
    slow_row.locator(".mlaas4hep-row-cancel").click()
    page.locator(".jp-Dialog", has_text="Stop the job?").wait_for(timeout=30_000)
    assert "slow job" in page.locator(".jp-Dialog").inner_text()
    page.locator(".jp-Dialog button", has_text="Keep running").click()
    page.locator(".jp-Dialog").wait_for(state="detached", timeout=30_000)
    time.sleep(1.0)
    assert client.job(slow.id).status == "running"
    slow_row.locator(".mlaas4hep-row-cancel").click()
    page.locator(".jp-Dialog button", has_text="Stop job").click()
    slow_row.locator(".mlaas4hep-job-status", has_text="cancelled").wait_for(timeout=60_000)
    assert client.job(slow.id).status == "cancelled"
    shot(page, "lab-sidebar-cancelled")
