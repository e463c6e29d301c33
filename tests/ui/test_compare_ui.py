"""Comparing three jobs in JupyterLab: tick them in the MLaaS4HEP sidebar, open the comparison,
see their loss and ROC curves overlaid and the table with the differences highlighted.
Screenshots: test-artifacts/compare-*.png."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth
from support import torch_model

from .conftest import shot

pytestmark = [pytest.mark.ui, pytest.mark.slow]

RUNS = [("small batches", {"chunk_size": 1000, "epochs": 2, "batch_size": 32}),
        ("three epochs", {"chunk_size": 1000, "epochs": 3, "batch_size": 128}),
        ("two epochs", {"chunk_size": 1000, "epochs": 2, "batch_size": 128})]


def test_three_jobs_compared_from_the_sidebar(lab, page):
    write_tth(lab.root / "sig.root", 2000, signal=True, seed=41, separation=1.5)
    write_tth(lab.root / "bkg.root", 2000, signal=False, seed=41, separation=1.5)
    client = Client(f"http://127.0.0.1:{lab.port}/", token=lab.token)
    files = [str(lab.root / "sig.root"), str(lab.root / "bkg.root")]
    jobs = [client.submit(files=files, labels=["1", "0"], model=torch_model(16), name=name, params=params)
            for name, params in RUNS]
    infos = [client.follow(j.id, timeout=300) for j in jobs]
    assert [i.status for i in infos] == ["succeeded"] * 3, [i.error for i in infos]

    page.goto(lab.url("lab"))
    page.wait_for_selector(".jp-Launcher", timeout=90_000)
    page.locator(".jp-SideBar [title*='MLaaS4HEP'], .jp-SideBar [data-id*='mlaas4hep']").first.click()
    compare = page.locator(".mlaas4hep-sidebar .mlaas4hep-compare-button button").first
    for i, job in enumerate(jobs):
        row = page.locator(f".mlaas4hep-job-row[data-job-id='{job.id}']")
        row.locator(".mlaas4hep-job-status", has_text="succeeded").wait_for(timeout=60_000)
        # two or more ticked jobs make a comparison (the button follows a tick within a render)
        if i < 2:
            expect(compare).to_be_disabled(timeout=10_000)
        else:
            expect(compare).to_be_enabled(timeout=10_000)
        row.locator("input.mlaas4hep-row-select").check()
    expect(compare).to_be_enabled(timeout=10_000)
    assert page.locator(".mlaas4hep-jobview").count() == 0  # ticking a row does not open it
    shot(page, "compare-sidebar-selected")
    compare.click()

    view = page.locator(".mlaas4hep-compare-content").first
    view.locator("svg[data-chart='compare-roc']").wait_for(timeout=60_000)
    assert view.get_attribute("data-runs") == "3"
    for job, info in zip(jobs, infos):
        assert view.locator(f"path.mlaas4hep-compare-curve[data-run='{job.id}']").count() == 2  # loss, val_loss
        assert view.locator(f"path.mlaas4hep-compare-roc[data-run='{job.id}']").count() == 1
        d = view.locator(f"path.mlaas4hep-compare-curve[data-run='{job.id}'][data-series='loss']").get_attribute("d")
        epochs = dict(RUNS)[info.name]["epochs"]
        assert d.count("L") + 1 == 4 * epochs  # one point per epoch event: 4 chunks x epochs
    legend = view.locator(".mlaas4hep-compare-legend").inner_text()
    assert all(name in legend for name, _ in RUNS)

    def row(label):
        return view.locator(f"tr.mlaas4hep-compare-row[data-row='{label}']")

    assert row("epochs").get_attribute("data-differs") == "yes"
    assert row("epochs").locator("td").all_inner_texts() == ["2", "3", "2"]
    assert row("batch_size").get_attribute("data-differs") == "yes"
    assert row("chunk_size").get_attribute("data-differs") == "no"
    assert row("preproc").locator("td").all_inner_texts() == ["none"] * 3
    assert "mlaas4hep-mod-diff" in row("epochs").get_attribute("class")
    aucs = row("test auc").locator("td").all_inner_texts()
    assert aucs == [f"{i.metrics['test_auc']:.4f}" for i in infos]
    assert row("events").locator("td").all_inner_texts() == ["4,000"] * 3
    shot(page, "compare-view")
    view.locator("input.mlaas4hep-roc-log").check()
    view.locator("svg[data-chart='compare-roc'][data-scale='log']").wait_for()
    shot(page, "compare-view-log")
