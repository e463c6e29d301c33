"""``%mlaas4hep compare ID ID ...`` on three real jobs (in-process job manager): the overlaid loss
and ROC curves, and the table of params, preproc, events, time and test metrics with the
differences marked; mistakes as one-line messages."""

from __future__ import annotations

import json
import re

import pytest

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth
from mlaas4hep_lab import magics
from mlaas4hep_lab.compare import compare_html, job_summary, preproc_summary
from support import magic_shell, torch_model, use_local_jobs

CUT = {"new_branch": {"leadJetPt": {"def": "max(jetPt)", "type": "flat", "cut": "leadJetPt > 40"}}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three finished jobs that differ in epochs, batch size and preproc (shared by the tests)."""
    folder = tmp_path_factory.mktemp("compare")
    sig = write_tth(folder / "a.root", 2000, signal=True, seed=11, separation=1.5)
    bkg = write_tth(folder / "b.root", 2000, signal=False, seed=12, separation=1.5)
    with pytest.MonkeyPatch.context() as mp:
        use_local_jobs(mp, folder / "jobs")
        client = Client()
        specs = [("base", {"chunk_size": 1000, "epochs": 2, "batch_size": 100}, None),
                 ("longer", {"chunk_size": 1000, "epochs": 3, "batch_size": 100}, None),
                 ("cut", {"chunk_size": 1000, "epochs": 2, "batch_size": 50}, CUT)]
        jobs = [client.submit(files=[str(sig), str(bkg)], labels=["1", "0"], model=torch_model(), name=name,
                              params=params, preproc=preproc) for name, params, preproc in specs]
        infos = [client.follow(j.id) for j in jobs]
        assert [i.status for i in infos] == ["succeeded"] * 3, [i.error for i in infos]
        yield {"client": client, "ids": [j.id for j in jobs], "folder": folder}
        client.close()


def test_summary_comes_from_the_events(runs):
    client = runs["client"]
    base, longer, cut = (job_summary(client, i) for i in runs["ids"])
    assert base["name"] == "base" and base["params"]["epochs"] == 2 and longer["params"]["epochs"] == 3
    assert base["preproc"] is None and cut["preproc"] == CUT
    assert preproc_summary(cut["preproc"]) == "new leadJetPt = max(jetPt); cuts: leadJetPt > 40"
    assert base["events"] == 4000 and cut["events"] < 4000
    assert len(base["history"]) == 2 * 4 and len(longer["history"]) == 3 * 4
    info = client.job(runs["ids"][0])
    assert base["metrics"]["auc"] == pytest.approx(info.metrics["test_auc"])
    assert base["evaluation"]["auc"]["value"] == pytest.approx(base["metrics"]["auc"], abs=1e-9)


def test_compare_html_overlays_curves_and_marks_differences(runs):
    client = runs["client"]
    summaries = [job_summary(client, i) for i in runs["ids"]]
    page = compare_html(summaries)
    assert "data-runs='3'" in page
    for s in summaries:
        assert page.count(f"class='mlaas4hep-compare-curve' data-run='{s['id']}'") == 2  # loss and val_loss
        assert page.count(f"class='mlaas4hep-compare-roc' data-run='{s['id']}'") == 1
    rows = dict(re.findall(r"data-row='([^']+)' data-differs='(yes|no)'", page))
    assert rows["epochs"] == "yes" and rows["batch_size"] == "yes" and rows["preproc"] == "yes"
    assert rows["events"] == "yes" and rows["chunk_size"] == "no" and rows["mode"] == "no" and rows["seed"] == "no"
    assert rows["test auc"] == "yes" and "cache_dir" not in rows  # where a run reads from is no difference
    assert "background rejection (1 − ε_B)" in page and "1 / background efficiency" not in page
    assert "1 / background efficiency" in compare_html(summaries, log=True)


@pytest.fixture
def shell(runs, monkeypatch, capsys):
    use_local_jobs(monkeypatch, runs["folder"] / "jobs")
    sh = magic_shell()
    capsys.readouterr()
    yield sh
    magics.close_clients()


def test_magic_compare_prints_the_table(shell, runs, capsys):
    a, b, c = runs["ids"]
    assert shell.run_line_magic("mlaas4hep", f"compare {a} {b} {c}") is None
    out, err = capsys.readouterr()
    assert not err, err
    header = out.splitlines()[0]
    assert f"base ({a})" in header and f"longer ({b})" in header and f"cut ({c})" in header
    lines = {line.split()[1] if line.startswith("* ") else line.split()[0]: line for line in out.splitlines()[2:]
             if line.strip()}
    assert lines["epochs"].startswith("* ") and re.search(r"epochs\s+2\s+3\s+2", lines["epochs"])
    assert lines["chunk_size"].startswith("  ")
    auc = json.loads((runs["folder"] / "jobs" / "jobs" / a / "artifact" / "evaluation.json").read_text())["auc"]
    assert f"{auc['value']:.4f} ± {auc['std']:.4f}" in out


def test_magic_compare_mistakes(shell, runs, capsys):
    a = runs["ids"][0]
    shell.run_line_magic("mlaas4hep", f"compare {a}")
    assert "mlaas4hep: error: compare needs two or more job ids" in capsys.readouterr().err
    shell.run_line_magic("mlaas4hep", f"compare {a} {a}")
    assert f"a job id is given twice: {a}" in capsys.readouterr().err
    shell.run_line_magic("mlaas4hep", f"compare {a} nosuchjob")
    err = capsys.readouterr().err
    assert err.startswith("mlaas4hep: error:") and "nosuchjob" in err and "Traceback" not in err
