"""The evaluation of a finished job in the JupyterLab job view: AUC, ROC (linear and log
background rejection), score distributions with the KS p-values, the confusion matrix, and the
overtraining flag on a model overtrained on purpose. Screenshots: test-artifacts/eval-*.png."""

from __future__ import annotations

import json

import pytest

from mlaas4hep.client import Client
from support import OVERTRAINED_MODEL, OVERTRAINED_PARAMS, write_labelled_pair

from .conftest import shot

pytestmark = [pytest.mark.ui, pytest.mark.slow]


def format_p(p: float) -> str:
    """As the page writes a KS p-value (evaluation.ts formatP)."""
    return f"p = {float(f'{p:.2g}')}" if p >= 0.001 else f"p = {p:.1e}".replace("e-0", "e-")


def format_rate(per_second: float) -> str:
    """As the page writes events/s (format.ts formatRate)."""
    def trim(v: float, digits: int) -> str:
        return f"{v:.{digits}f}".rstrip("0").rstrip(".")
    if per_second >= 1e6:
        return f"{trim(per_second / 1e6, 2)}M"
    if per_second >= 1e3:
        return f"{trim(per_second / 1e3, 1)}k"
    return f"{round(per_second)}"


def test_job_view_shows_the_evaluation_and_flags_overtraining(lab, page):
    sig, bkg = write_labelled_pair(lab.root, 3000, seed=5)
    client = Client(f"http://127.0.0.1:{lab.port}/", token=lab.token)
    job = client.submit(files=[str(sig), str(bkg)], labels=["1", "0"],
                        model=OVERTRAINED_MODEL, name="overtrained", params=OVERTRAINED_PARAMS)
    page.goto(lab.url("lab"))
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    row = page.locator(f".mlaas4hep-job-row[data-job-id='{job.id}']")
    row.wait_for(timeout=30_000)
    row.click()
    view = page.locator(".mlaas4hep-jobview").first
    panel = view.locator(".mlaas4hep-evaluation")
    panel.wait_for(state="visible", timeout=300_000)

    ev = json.loads((lab.jobs / "jobs" / job.id / "artifact" / "evaluation.json").read_text())
    assert ev["overtraining"]["flag"] is True  # the model is overtrained on purpose
    assert panel.get_attribute("data-overtraining") == "yes"
    flag = panel.locator(".mlaas4hep-overtraining")
    assert "Overtrained" in flag.inner_text()
    for reason in ev["overtraining"]["reasons"]:
        assert reason in flag.inner_text()
    auc = ev["auc"]
    assert f"AUC {auc['value']:.4f} ± {auc['std']:.4f}" in panel.locator(".mlaas4hep-eval-auc").inner_text()
    assert f"{ev['events']['test']:,} test events" in panel.locator(".mlaas4hep-eval-auc").inner_text()

    # the ROC curve: as many points as the file has, linear then log background rejection
    roc = panel.locator("svg[data-chart='roc'] path.mlaas4hep-roc-curve")
    assert float(roc.get_attribute("data-auc")) == pytest.approx(ev["roc"][0]["auc"])
    linear_points = roc.get_attribute("d").count("L") + 1
    assert linear_points == len(ev["roc"][0]["signal_efficiency"])
    shot(page, "eval-jobview-overtrained")
    panel.locator("input.mlaas4hep-roc-log").check()
    panel.locator("svg[data-chart='roc'][data-scale='log']").wait_for()
    log_points = panel.locator("svg[data-chart='roc'] path.mlaas4hep-roc-curve").get_attribute("d").count("L") + 1
    assert log_points == sum(1 for b in ev["roc"][0]["background_efficiency"] if b > 0)
    ticks = panel.locator("svg[data-chart='roc'] .mlaas4hep-chart-axes text").all_text_contents()
    assert "1" in ticks and "10" in ticks

    # score distributions: a filled test histogram and train points per class, the KS p-values
    for row in ev["score_histograms"]["classes"]:
        c = row["class"]
        assert panel.locator(f"svg[data-chart='scores'] path.mlaas4hep-eval-test[data-class='{c}']").count() == 1
        dots = panel.locator(f"svg[data-chart='scores'] g.mlaas4hep-eval-train[data-class='{c}'] circle").count()
        assert dots == sum(1 for v in row["train"] if v > 0)
        ks = next(k for k in ev["ks"] if k["class"] == c)
        item = panel.locator(f".mlaas4hep-eval-ks-item[data-class='{c}']")
        assert format_p(ks["p_value"]) in item.inner_text()
        assert ("mlaas4hep-mod-warn" in item.get_attribute("class")) == (ks["p_value"] < 0.05)

    # the confusion matrix, cell by cell
    for i, line in enumerate(ev["confusion"]["matrix"]):
        for j, value in enumerate(line):
            cell = panel.locator(f".mlaas4hep-confusion td[data-true='{i}'][data-pred='{j}']")
            assert cell.inner_text().split()[0] == f"{round(value):,}"
    panel.scroll_into_view_if_needed()
    shot(page, "eval-jobview-overtrained-log")

    # one definition of progress and rate: the engine's numbers in the job view, the sidebar and the API
    events = [json.loads(line) for line in (lab.jobs / "jobs" / job.id / "events.jsonl").read_text().splitlines()]
    finished = next(e for e in events if e["event"] == "finished")
    progress = view.locator(".mlaas4hep-jobview-progress-text").inner_text()
    assert f"{format_rate(finished['rate'])} events/s" in progress and "overall" not in progress
    assert "100%" in progress and "≈" not in progress
    assert client.job(job.id).progress.rate == finished["rate"]
    page.locator(f".mlaas4hep-job-row[data-job-id='{job.id}'] .mlaas4hep-job-percent",
                 has_text="100%").wait_for(timeout=30_000)

    # the params and preproc the job ran with
    inputs = view.locator(".mlaas4hep-jobview-inputs")
    inputs.locator("summary").click()
    for key, value in OVERTRAINED_PARAMS.items():
        assert inputs.locator(f"tr[data-param='{key}'] td").inner_text() == str(value)
    assert inputs.locator("tr[data-param='seed'] td").inner_text() == "0"  # defaults shown too
    assert "none" in inputs.locator("pre.mlaas4hep-preproc").inner_text()
