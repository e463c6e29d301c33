"""A Workbench in a notebook of a real JupyterLab, in a real browser: the histogram shows, and
the loss curve grows while a job trains. Screenshots: test-artifacts/workbench-*.png."""

from __future__ import annotations

import json
import time

import pytest

from mlaas4hep.datagen import write_tth

from .conftest import open_notebook, run_all_cells, shot, wait_until_at_least, write_notebook
from support import torch_model

pytestmark = pytest.mark.ui

MODEL = torch_model(32)
PARAMS = {"chunk_size": 100, "epochs": 3, "batch_size": 64, "identifier": ["run", "event", "luminosityBlock"]}
PREPROC = {"new_branch": {"leadJetPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadJetPt > 50"}},
           "jagged_cut": {"partonPt": {"cut": ["partonPt > 150", "any"]}}}


def points(page) -> int:
    """Points on the loss curve now drawn in the page."""
    d = page.evaluate("""() => {
        const paths = document.querySelectorAll('.mlaas4hep-chart g.lines path');
        return paths.length ? paths[0].getAttribute('d') || '' : '';
    }""")
    return d.count("L") + 1 if d else 0


def test_workbench_shows_the_histogram_and_a_growing_curve(lab, page):
    write_tth(lab.root / "sig.root", 3000, signal=True, seed=21, separation=1.5)
    write_tth(lab.root / "bkg.root", 3000, signal=False, seed=21, separation=1.5)
    (lab.root / "preproc.json").write_text(json.dumps(PREPROC))
    (lab.root / "model.py").write_text(MODEL)
    write_notebook(lab.root / "workbench.ipynb", [
        "from mlaas4hep_lab import Workbench\n"
        f"wb = Workbench(files=['sig.root', 'bkg.root'], labels=['1', '0'], preproc='preproc.json',\n"
        f"               params={PARAMS!r}, model='model.py', sample_size=3000)\n"
        "wb",
    ])
    open_notebook(page, lab, "workbench.ipynb")
    run_all_cells(page)

    page.locator(".lm-TabBar-tab", has_text="Explore").first.click()
    image = page.locator(".widget-image").first
    image.wait_for(state="visible", timeout=120_000)
    page.wait_for_function("() => { const i = document.querySelector('.widget-image');"
                           " return i && i.naturalWidth > 100; }", timeout=120_000)
    page.locator("table.mlaas4hep-cutflow").first.wait_for(timeout=60_000)
    cutflow = page.locator("table.mlaas4hep-cutflow").first.inner_text()
    assert "all events" in cutflow and "leadJetPt > 50" in cutflow and "any(partonPt > 150)" in cutflow
    shot(page, "workbench-explore")

    page.locator(".lm-TabBar-tab", has_text="Train").first.click()
    # the form before submitting: a summary, zeros that say what they mean, the whole kernel name
    summary = page.locator(".mlaas4hep-submit-summary").first
    summary.wait_for(timeout=30_000)
    assert "files: 2 (labels 1, 0)" in summary.inner_text()
    assert "new leadJetPt = max(jetPt); cuts: leadJetPt > 50, any(partonPt > 150)" in summary.inner_text()
    assert page.get_by_text("no limit").first.is_visible() and page.get_by_text("all cores (").first.is_visible()
    from mlaas4hep_lab.widgets.submit import gpu_count

    gpu = page.locator(".widget-checkbox", has_text="GPU").first.locator("input")
    assert gpu.is_checked() == (gpu_count() > 0) and gpu.is_disabled() == (gpu_count() == 0)
    kernel = page.locator(".widget-dropdown", has=page.locator("label", has_text="Kernel")).first.locator("select")
    assert kernel.evaluate("s => { const c = document.createElement('canvas').getContext('2d');"
                           " c.font = getComputedStyle(s).font;"
                           " return c.measureText(s.options[s.selectedIndex].text).width + 20 <= s.clientWidth; }")
    summary.scroll_into_view_if_needed()
    shot(page, "workbench-submit-form")
    page.locator("button", has_text="Submit").first.click()
    page.locator(".mlaas4hep-chart").first.wait_for(timeout=60_000)
    deadline = time.monotonic() + 180
    early = wait_until_at_least(lambda: points(page), 3, deadline, "no curve within 180 s")
    page.locator(".mlaas4hep-chart").first.scroll_into_view_if_needed()
    shot(page, "workbench-training")
    wait_until_at_least(lambda: points(page), early + 1, deadline, "the curve did not grow")
    assert points(page) > early  # it grows while the job trains
    page.get_by_text("succeeded").first.wait_for(timeout=240_000)
    final = points(page)
    assert final >= early + 1
    page.locator(".mlaas4hep-chart").first.scroll_into_view_if_needed()
    shot(page, "workbench-finished")
    # the job really ran through the server extension
    jobs = list((lab.jobs / "jobs").iterdir())
    assert len(jobs) == 1 and (jobs[0] / "artifact" / "mlaas4hep.json").exists()

    # the Train tab shows the job's evaluation, and its Cancel button is no longer red
    ev = json.loads((jobs[0] / "artifact" / "evaluation.json").read_text())
    panel = page.locator(".mlaas4hep-evaluation-view").first
    panel.locator(".mlaas4hep-evaluation").wait_for(timeout=60_000)
    assert f"AUC {ev['auc']['value']:.4f} ± {ev['auc']['std']:.4f}" in panel.inner_text()
    flag = panel.locator(".mlaas4hep-evaluation").get_attribute("data-overtraining")
    assert flag == ("yes" if ev["overtraining"]["flag"] else "no")
    assert panel.locator("svg[data-chart='roc'] path.mlaas4hep-roc-curve").count() == 1
    assert panel.locator("svg[data-chart='scores'] path.mlaas4hep-eval-test").count() == 2
    cancel = page.locator(".widget-button", has_text="Cancel").first
    assert cancel.is_disabled() and "mod-danger" not in (cancel.get_attribute("class") or "")
    page.get_by_text("log background rejection").first.click()
    panel.locator("svg[data-chart='roc'][data-scale='log']").wait_for(timeout=30_000)
    panel.scroll_into_view_if_needed()
    shot(page, "workbench-evaluation")
