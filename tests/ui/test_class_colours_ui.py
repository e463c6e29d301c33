"""Each class keeps its colour, and says what it is, in every view (issue 16 §4): Explore's plot
and class legend, the Workbench's evaluation (Train tab) and the JupyterLab job view's score
plots, on the demo data (labels 1 = signal, 0 = background). Screenshots:
test-artifacts/class-colours-*.png."""

from __future__ import annotations

import time

import pytest

from mlaas4hep.classes import BACKGROUND, SIGNAL
from mlaas4hep.client import Client
from mlaas4hep.datagen import write_demo_inputs

from .conftest import open_notebook, run_all_cells, shot, write_notebook
from .test_explore_ui import explore_tab, open_tab

pytestmark = [pytest.mark.ui, pytest.mark.slow]

MODEL = '''
from torch import nn

def model(idim):
    return nn.Sequential(nn.Linear(idim, 16), nn.ReLU(), nn.Linear(16, 1))
'''
PARAMS = {"nevts": 1500, "chunk_size": 3000, "epochs": 2, "batch_size": 64, "test_fraction": 0.3,
          "branch": "Events", "identifier": ["run", "event", "luminosityBlock"], "exclude_branches": ["weight"]}


def rgb(hex_colour: str) -> str:
    """As the browser writes a computed colour."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def test_each_class_keeps_its_colour_in_explore_the_train_tab_and_the_job_view(lab, page):
    write_demo_inputs(lab.root, n_events=2500)
    client = Client(f"http://127.0.0.1:{lab.port}/", token=lab.token)
    job = client.submit(files=[str(lab.root / "signal.root"), str(lab.root / "background.root")],
                        labels=["1", "0"], model=MODEL, name="colours", params=PARAMS)
    deadline = time.monotonic() + 600
    while client.job(job.id).status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(1)
    assert client.job(job.id).status == "succeeded"

    write_notebook(lab.root / "colours.ipynb", [
        "from mlaas4hep_lab import Workbench\n"
        "wb = Workbench(files='files.txt', labels='labels.txt', params='params.json', sample_size=2500)\n"
        f"wb.state.job_id = {job.id!r}\n"
        "wb",
    ])
    open_notebook(page, lab, "colours.ipynb")
    run_all_cells(page)

    # Explore: the class legend above the plot, and the plot itself drawn in those colours
    explore_tab(page)
    page.wait_for_function("() => { const i = document.querySelector('.widget-image');"
                           " return i && i.naturalWidth > 100; }", timeout=120_000)
    legend = page.locator(".mlaas4hep-classes").first
    legend.wait_for()
    swatches = legend.evaluate("""l => Object.fromEntries([...l.querySelectorAll('b')].map(
        b => [b.textContent, getComputedStyle(b.previousElementSibling).backgroundColor]))""")
    assert swatches == {"label 0": rgb(BACKGROUND), "label 1": rgb(SIGNAL)}, swatches
    text = legend.inner_text()
    assert "label 1: signal, label 1 (the score is P(signal))" in text and "label 0: background" in text
    pixels = page.evaluate("""([colours]) => new Promise(resolve => {
        const img = document.querySelector('.widget-image');
        const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;
        const ctx = c.getContext('2d'); ctx.drawImage(img, 0, 0);
        const data = ctx.getImageData(0, 0, c.width, c.height).data;
        const counts = colours.map(() => 0);
        for (let i = 0; i < data.length; i += 4) {
            colours.forEach(([r, g, b], k) => {
                if (Math.abs(data[i] - r) + Math.abs(data[i + 1] - g) + Math.abs(data[i + 2] - b) < 12) counts[k]++;
            });
        }
        resolve(counts);
    })""", [[[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in (SIGNAL, BACKGROUND)]])
    assert pixels[0] > 200 and pixels[1] > 200, f"signal / background pixels in the Explore plot: {pixels}"
    shot(page, "class-colours-explore")

    # the Workbench's Train tab: the job's evaluation, in the same colours
    open_tab(page, "Train")
    scores = page.locator(".mlaas4hep-evaluation-view svg[data-chart='scores']").first
    scores.wait_for(timeout=120_000)
    for cls, colour in ((1, SIGNAL), (0, BACKGROUND)):
        assert scores.locator(f"path.mlaas4hep-eval-test[data-class='{cls}']").get_attribute("fill") == colour
    roc = page.locator(".mlaas4hep-evaluation-view path.mlaas4hep-roc-curve").first
    assert roc.get_attribute("stroke") == SIGNAL  # the ROC of label 1, the class the score is of
    train_legend = page.locator(".mlaas4hep-evaluation-view .mlaas4hep-eval-classes").first.inner_text()
    assert "label 1: signal, label 1 (the score is P(signal))" in train_legend
    scores.scroll_into_view_if_needed()
    shot(page, "class-colours-train-tab")

    # the JupyterLab job view
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    row = page.locator(f".mlaas4hep-job-row[data-job-id='{job.id}']")
    row.wait_for(timeout=30_000)
    row.click()
    panel = page.locator(".mlaas4hep-jobview .mlaas4hep-evaluation").first
    panel.wait_for(state="visible", timeout=120_000)
    for cls, colour in ((1, SIGNAL), (0, BACKGROUND)):
        path = panel.locator(f"svg[data-chart='scores'] path.mlaas4hep-eval-test[data-class='{cls}']")
        assert path.evaluate("p => getComputedStyle(p).fill") == rgb(colour)
        item = panel.locator(f".mlaas4hep-eval-class[data-class='{cls}'] .mlaas4hep-swatch")
        assert item.evaluate("s => getComputedStyle(s).backgroundColor") == rgb(colour)
    assert panel.locator("path.mlaas4hep-roc-curve").evaluate("p => getComputedStyle(p).stroke") == rgb(SIGNAL)
    assert panel.locator(".mlaas4hep-eval-class[data-class='1']").text_content() == \
        "label 1: signal, label 1 (the score is P(signal))"
    assert panel.locator(".mlaas4hep-eval-class[data-class='0']").text_content() == "label 0: background, label 0"
    assert panel.locator(".mlaas4hep-eval-meaning").text_content() == "the score is P(signal) (label 1)"
    panel.scroll_into_view_if_needed()
    shot(page, "class-colours-job-view")
