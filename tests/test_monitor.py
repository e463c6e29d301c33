"""The job widgets without a browser, on real jobs: SubmitPanel queues through the shared
WorkbenchState, TrainingMonitor follows (and replays) the job's events, LiveChart holds the
curves. Jobs run in-process (``Client()`` without a server) under a temporary job folder."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest

from mlaas4hep.client import Client
from mlaas4hep_lab.widgets import chart as chart_module
from mlaas4hep_lab.widgets.chart import LiveChart
from mlaas4hep_lab.widgets.monitor import TrainingMonitor
from mlaas4hep_lab.widgets.state import WorkbenchState
from mlaas4hep_lab.widgets.submit import DEFAULT_MODEL, SubmitPanel
from support import torch_model, use_local_jobs, write_labelled_pair

TORCH_MODEL = torch_model()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """In-process jobs under a fresh job folder, and two small labelled files."""
    folder = tmp_path_factory.mktemp("monitor")
    sig, bkg = write_labelled_pair(folder, 2000, seed=4, separation=1.5)
    with pytest.MonkeyPatch.context() as mp:
        use_local_jobs(mp, folder / "jobs")
        yield {"folder": folder, "files": [str(sig), str(bkg)]}


def workbench(**traits) -> WorkbenchState:
    """A WorkbenchState with these traits set one by one, as the panels set them. (Each trait is
    read before it is set: WorkbenchState's params observer cannot take the first assignment of
    a never-read ``params``, whose old value is traitlets' Undefined.)"""
    state = WorkbenchState()
    for name, value in traits.items():
        getattr(state, name)
        setattr(state, name, value)
    return state


def make_state(lab, **params) -> WorkbenchState:
    return workbench(files=lab["files"], labels=["1", "0"], model_source=TORCH_MODEL,
                     params={"chunk_size": 1000, "epochs": 3, "identifier": "run,event,luminosityBlock", **params})


@pytest.fixture(scope="module")
def finished(lab):
    """Submit Panel -> state.job_id -> Monitor, on the default client, until the job ends."""
    state = make_state(lab)
    monitor = TrainingMonitor(state=state)
    panel = SubmitPanel(state)
    assert panel.client is monitor.client and panel.client.local  # one shared in-process Client()
    panel.submit_button.click()
    assert panel.last_job is not None, panel.message.value
    assert state.job_id == panel.last_job.id == monitor.job_id
    assert monitor.wait(180), (monitor.status, monitor.error, monitor.client_error, monitor.log_lines)
    yield {"state": state, "panel": panel, "monitor": monitor, "client": monitor.client}
    monitor.close()
    panel.close()
    monitor.client.close()


def test_submit_then_monitor_follows_the_job_to_the_end(finished):
    monitor, panel, state = finished["monitor"], finished["panel"], finished["state"]
    assert monitor.status == "succeeded", (monitor.error, monitor.log_lines)
    assert not panel.submit_button.disabled and panel.submit_button.description == "Submit"
    assert state.params["chunk_size"] == 1000 and state.params["epochs"] == 3
    assert state.params["identifier"] == "run,event,luminosityBlock"  # other keys kept
    assert state.params["batch_size"] == 100 and state.params["mode"] == "chunk"  # the panel's fields merged in
    assert state.message == ""

    # one epoch event per (chunk x epoch): 4000 events in chunks of 1000, 3 epochs each
    history = monitor.history
    assert [(e["chunk"], e["epoch"]) for e in history] == [(c, e) for c in range(4) for e in (1, 2, 3)]
    assert [e["step"] for e in history] == list(range(1, 13))
    assert all(e["loss"] > 0 and e["val_loss"] > 0 for e in history)

    series = monitor.chart.series
    assert list(series)[:2] == ["loss", "val_loss"] and "accuracy" in series and "val_accuracy" in series
    for name in ("loss", "val_loss", "accuracy"):
        assert [p[0] for p in series[name]] == list(range(1, 13))
        assert [p[1] for p in series[name]] == pytest.approx([e[name] for e in history])
    assert monitor.chart.marks == [3.5, 6.5, 9.5]  # the chunk boundaries

    assert monitor.done == monitor.total == 4000
    assert monitor.progress.value == monitor.progress.max == 100
    assert "4,000/4,000 events" in monitor.progress_text.value
    assert monitor.progress.bar_style == "success"

    assert monitor.metrics["auc"] > 0.7
    assert "auc" in monitor.metrics_table.value and f"{monitor.metrics['auc']:.4f}" in monitor.metrics_table.value
    assert "succeeded" in monitor.status_line.value
    assert monitor.cancel_button.disabled and monitor.cancel_button.button_style == ""  # not red once done
    assert finished["panel"].last_job.name in monitor.header.value or monitor.name in monitor.header.value
    assert monitor.job_id in monitor.header.value and "python3" in monitor.header.value
    # the log's tail: a line per epoch and the closing line (the job's first line has scrolled out)
    assert any(line.startswith("finished in") for line in monitor.log_lines), monitor.log_lines
    assert any("epoch 3:" in line for line in monitor.log_lines), monitor.log_lines
    assert len(monitor.log_lines) <= monitor.log_size and "log" in monitor.log_view.value


def test_the_train_tab_shows_the_evaluation(finished):
    """The job's evaluation event becomes the evaluation panel: AUC, flag, ROC, KS p-values,
    confusion; the log box switches the ROC to 1 / background efficiency."""
    import json

    from mlaas4hep_lab.widgets.evaluation import format_p

    monitor = finished["monitor"]
    ev = monitor.evaluation
    assert ev is not None and monitor.evaluation_view.layout.display is None
    folder = Path(monitor.artifact)
    assert json.loads((folder / "evaluation.json").read_text())["auc"]["value"] == pytest.approx(ev["auc"]["value"])
    html = monitor.evaluation_view.head.value + monitor.evaluation_view.html.value
    assert f"AUC {ev['auc']['value']:.4f} ± {ev['auc']['std']:.4f}" in html
    assert f"data-overtraining='{'yes' if ev['overtraining']['flag'] else 'no'}'" in html
    for ks in ev["ks"]:
        assert f"KS {format_p(ks['p_value'])}" in html
    assert html.count("class='mlaas4hep-confusion-cell'") == 4
    for i, row in enumerate(ev["confusion"]["matrix"]):
        for j, v in enumerate(row):
            assert f"data-true='{i}' data-pred='{j}'" in html and f">{round(v):,}<small" in html
    assert "data-scale='linear'" in html
    monitor.evaluation_view.log_scale.value = True
    assert "data-scale='log'" in monitor.evaluation_view.html.value
    assert "1 / background efficiency" in monitor.evaluation_view.html.value
    monitor.evaluation_view.log_scale.value = False


def test_evaluation_panel_flags_overtraining_and_names_the_reasons():
    from mlaas4hep.evaluate import evaluate
    from mlaas4hep_lab.widgets.evaluation import EvaluationView

    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 400)
    test = np.clip(rng.normal(0.3 + 0.4 * y, 0.2), 0, 1)
    train = np.clip(rng.normal(0.1 + 0.8 * y, 0.05), 0, 1)  # far more confident on training events
    history = [{"loss": 0.5 - 0.05 * i, "val_loss": 0.5 + 0.02 * i} for i in range(6)]
    ev = evaluate(y, test, y, train, history=history, n_bootstrap=10)
    view = EvaluationView()
    view.show(ev)
    html = view.head.value + view.html.value
    assert ev["overtraining"]["flag"] and "data-overtraining='yes'" in html and "Overtrained" in html
    for reason in ev["overtraining"]["reasons"]:
        assert reason.replace("<", "&lt;") in html
    assert "data-low='yes'" in html
    view.show(None)
    assert view.layout.display == "none" and view.html.value == ""
    view.close()


def test_a_new_monitor_replays_the_whole_job(finished):
    """What a notebook reload does: TrainingMonitor(job_id) rebuilds everything from the events."""
    first = finished["monitor"]
    again = TrainingMonitor(job_id=first.job_id, client=finished["client"])
    try:
        assert again.wait(30)
        assert again.status == "succeeded"
        assert again.history == first.history
        assert again.chart.series == first.chart.series and again.chart.marks == first.chart.marks
        assert again.metrics == first.metrics and again.progress.value == 100
        assert again.metrics_table.value == first.metrics_table.value
        assert again.cancel_button.disabled
    finally:
        again.close()

    # the same without a thread: refresh() / wait() fetch in the caller's thread
    quiet = TrainingMonitor(job_id=first.job_id, client=finished["client"], poll=False)
    try:
        assert quiet.history == [] and quiet.status == ""
        assert quiet.wait(30) and quiet.history == first.history and quiet.refresh()
    finally:
        quiet.close()


def test_state_job_id_change_reattaches_and_empty_detaches(finished):
    state = WorkbenchState()
    monitor = TrainingMonitor(state=state, client=finished["client"])
    try:
        assert monitor.job_id == "" and "no job" in monitor.status_line.value and monitor.cancel_button.disabled
        state.job_id = finished["monitor"].job_id
        assert monitor.job_id == state.job_id and monitor.wait(30) and len(monitor.history) == 12
        state.job_id = ""
        assert monitor.job_id == "" and monitor.history == [] and monitor.chart.series == {}
    finally:
        monitor.close()
    state.job_id = finished["monitor"].job_id  # a closed monitor no longer follows the state
    assert monitor.job_id == ""


def test_cancel_a_running_job(lab, finished):
    client = finished["client"]
    state = make_state(lab, chunk_size=100, epochs=40)
    panel = SubmitPanel(state, client=client)
    monitor = TrainingMonitor(state=state, client=client)
    try:
        assert panel.chunk_size.value == 100 and panel.epochs.value == 40
        panel.name.value = "slow one"
        panel.submit_button.click()
        assert panel.last_job is not None, panel.message.value
        assert panel.last_job.name == "slow one" and panel.name.value == ""  # the next job is not "slow one"
        deadline = time.monotonic() + 60
        while not monitor.history and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.history, (monitor.status, monitor.log_lines)
        assert monitor.status == "running" and not monitor.cancel_button.disabled
        assert monitor.cancel_button.button_style == "danger"
        assert "running" in monitor.status_line.value
        # Cancel asks first; "Keep running" leaves the job alone
        monitor.cancel_button.click()
        assert monitor.confirm_box.layout.display is None and "Stop job" in monitor.confirm_text.value
        monitor.keep_button.click()
        assert monitor.confirm_box.layout.display == "none"
        time.sleep(0.5)
        assert client.job(monitor.job_id).status == "running"
        monitor.cancel_button.click()
        monitor.confirm_button.click()
        assert monitor.wait(60)
        assert monitor.confirm_box.layout.display == "none"
        assert monitor.status == "cancelled" and client.job(monitor.job_id).status == "cancelled"
        assert "cancelled" in monitor.status_line.value and "failed" not in monitor.status_line.value
        assert monitor.cancel_button.disabled and monitor.progress.bar_style == "warning"
        assert monitor.metrics == {} and monitor.metrics_table.value == ""
        assert monitor.progress.value < 100 and len(monitor.history) < 40 * 36
    finally:
        monitor.close()
        panel.close()


def test_a_deleted_job_shows_as_deleted_not_as_its_last_status(lab, finished):
    client = finished["client"]
    job = client.submit(files=lab["files"], labels=["1", "0"], model=TORCH_MODEL, name="to delete",
                        params={"chunk_size": 2000, "epochs": 1})
    monitor = TrainingMonitor(job_id=job.id, client=client)
    monitor.watch_interval = 0.2
    try:
        assert monitor.wait(120) and monitor.status == "succeeded"
        client.delete(job.id)
        deadline = time.monotonic() + 20
        while monitor.status != "deleted" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert monitor.status == "deleted"
        assert "deleted: this job no longer exists" in monitor.status_line.value
        assert "succeeded" not in monitor.status_line.value and monitor.cancel_button.disabled
    finally:
        monitor.close()


def test_submit_form_defaults_come_from_the_machine_and_say_what_zeros_mean(lab, finished, monkeypatch):
    from mlaas4hep_lab.widgets.submit import cpu_count, gpu_count

    panel = SubmitPanel(make_state(lab, epochs=7), client=finished["client"])
    try:
        assert panel.gpu.value == (gpu_count() > 0) and panel.gpu.disabled == (gpu_count() == 0)
        assert f"all cores ({cpu_count()})" in panel.threads_hint.value
        assert "no limit" in panel.timeout_hint.value
        panel.threads.value = 2
        panel.timeout.value = 90
        assert f"2 of {cpu_count()} cores" in panel.threads_hint.value
        assert "cancelled after" in panel.timeout_hint.value and "no limit" not in panel.timeout_hint.value
        summary = panel.summary.value
        assert "<b>files</b>: 2 (labels 1, 0)" in summary and "<b>preproc</b>: none" in summary
        assert "chunk mode, 7 epochs, chunk_size 1,000" in summary and "2 threads" in summary
        assert "every supported branch" in summary
        panel.state.preproc = {"flat_cut": {"nJets": {"cut": "nJets >= 4"}}}
        assert "<b>preproc</b>: cuts: nJets &gt;= 4" in panel.summary.value
        panel.epochs.value = 9
        assert "9 epochs" in panel.summary.value
    finally:
        panel.close()
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # a machine (or a session) without a GPU
    panel = SubmitPanel(make_state(lab), client=finished["client"])
    try:
        assert panel.gpu.value is False and panel.gpu.disabled and "none on this machine" in panel.gpu.description
        assert panel.request()["resources"]["gpu"] is False
        assert "no GPU" in panel.summary.value
    finally:
        panel.close()


def test_submit_mistakes_are_shown_not_raised(lab, finished):
    client = finished["client"]
    before = len(client.jobs())

    state = workbench(params={"chunk_size": 1000})
    panel = SubmitPanel(state, client=client)
    assert panel.model_source.value == DEFAULT_MODEL  # no model_source in the state: the Keras example
    assert panel.kernel.value == client.kernels().default
    panel.submit_button.click()
    assert "no files chosen" in panel.message.value and "files" in state.message
    assert "color" in panel.message.value and state.job_id == "" and not panel.submit_button.disabled

    state.files = lab["files"]
    state.labels = ["1", "0"]
    state.params = {"chunk_sise": 3}
    assert panel.submit() is None
    assert "chunk_sise" in panel.message.value and "chunk_size" in panel.message.value
    assert "chunk_sise" in state.message and state.job_id == ""

    state.params = {}
    panel.model_kind.value = "path"
    panel.model_path.value = str(lab["folder"] / "no-such-model.py")
    assert panel.submit() is None
    assert "not found" in state.message and "no-such-model.py" in state.message

    panel.model_kind.value = "source"
    panel.model_source.value = "def model(idim:\n    return None\n"
    assert state.model_source == panel.model_source.value  # edits go back to the state
    assert panel.submit() is None and "syntax error" in state.message

    assert len(client.jobs()) == before  # nothing was queued
    panel.close()


def test_remote_targets_submit_there_and_say_so(lab, finished, monkeypatch):
    from servers import free_port

    monkeypatch.setenv("MLAAS4HEP_REMOTES", json.dumps({"cern": f"http://127.0.0.1:{free_port()}"}))
    monkeypatch.setenv("MLAAS4HEP_TOKEN", "a-token")
    state = make_state(lab)
    panel = SubmitPanel(state, client=finished["client"])
    try:
        labels = [label for label, _ in panel.target.options]
        assert labels[0] == "this machine (in-process jobs)" and "cern" in labels[1]
        panel.target.value = "cern"
        assert state.target == "cern" and not panel.submit_button.disabled
        assert "Jobs go to cern" in panel.message.value and "uploaded there first" in panel.message.value
        panel.target.value = ""
        assert state.target == "" and panel.message.value == ""  # the notice goes with the remote
        panel.target.value = "cern"
        before = len(finished["client"].jobs())
        # the service is not there: said, nothing queued here either
        assert panel.submit() is None and state.job_id == ""
        assert "cannot reach the MLaaS4HEP server" in panel.message.value and "cannot reach" in state.message
        assert len(finished["client"].jobs()) == before
        panel.target.value = ""
        state.target = "cern"  # another panel may choose it too
        assert panel.target.value == "cern"
    finally:
        panel.close()

    monkeypatch.setenv("MLAAS4HEP_REMOTES", "{not json")
    panel = SubmitPanel(WorkbenchState(), client=finished["client"])
    assert "MLAAS4HEP_REMOTES" in panel.message.value and len(panel.target.options) == 1
    panel.close()


def test_client_errors_go_to_the_status_line(finished):
    monitor = TrainingMonitor(job_id="nosuchjob", client=finished["client"])
    try:
        assert not monitor.wait(10)
        assert "no job 'nosuchjob'" in monitor.status_line.value and monitor.cancel_button.disabled
    finally:
        monitor.close()

    # a server that is not there: retried, then shown
    class Impatient(TrainingMonitor):
        retries = 1

    down = Client("http://127.0.0.1:9", timeout=1)
    monitor = Impatient(job_id="abc", client=down)
    try:
        assert not monitor.wait(20)
        assert "cannot reach the MLaaS4HEP server" in monitor.status_line.value
    finally:
        monitor.close()


def test_handle_folds_events_without_a_job(finished):
    """The same fold the poller uses, fed by hand (standard mode: no chunk marks)."""
    monitor = TrainingMonitor(client=finished["client"], poll=False)
    monitor.job_id = "x"
    events = [
        {"event": "job_start", "seq": 1, "name": "demo", "mode": "standard", "params": {"epochs": 2}},
        {"event": "specs_done", "seq": 2, "used": 500},
        {"event": "progress", "seq": 3, "events_processed": 250, "events_total": 1000, "rate": 125.0, "eta": 6.0,
         "chunk": 0, "epoch": 1},
        {"event": "epoch", "seq": 4, "epoch": 1, "chunk": None, "step": 1, "loss": 0.6, "val_loss": math.nan,
         "auc": 0.8},
        {"event": "epoch", "seq": 5, "epoch": 2, "chunk": None, "step": 2, "loss": 0.5, "val_loss": 0.55, "auc": 0.85},
    ]
    for event in events:
        monitor.handle(event)
    monitor.handle(events[-1])  # folded once only
    assert monitor.status == "running" and monitor.total == 1000 and monitor.done == 250
    assert "250/1,000 events" in monitor.progress_text.value and "125 events/s" in monitor.progress_text.value
    assert "ETA 6s" in monitor.progress_text.value and monitor.progress.value == 25
    assert monitor.chart.series == {"loss": [[1, 0.6], [2, 0.5]], "val_loss": [[1, None], [2, 0.55]],
                                    "auc": [[1, 0.8], [2, 0.85]]}
    assert monitor.chart.marks == [] and len(monitor.history) == 2
    monitor.handle({"event": "failed", "seq": 6, "error": "timed out after 5 s", "type": "Timeout"})
    assert monitor.status == "cancelled" and "timed out after 5 s" in monitor.status_line.value
    monitor.handle({"event": "failed", "seq": 7, "error": "DataError: corrupt", "type": "DataError"})
    assert monitor.status == "failed" and "corrupt" in monitor.status_line.value
    monitor.close()


def test_live_chart_series_api():
    js = Path(chart_module.__file__).with_name("chart.js")
    assert js.is_file() and js.stat().st_size > 1000
    assert "export default" in js.read_text()
    chart = LiveChart(title="losses", y_label="loss")
    assert chart.series == {} and str(chart._esm) == js.read_text()
    seen = []
    chart.observe(lambda change: seen.append(change["new"]), names="series")

    chart.append("loss", 1, 0.7)
    chart.append("loss", 2, 0.5)
    chart.append("val_loss", 1, float("nan"))  # not JSON: None, a gap in the line
    assert chart.series == {"loss": [[1, 0.7], [2, 0.5]], "val_loss": [[1, None]]}
    assert len(seen) == 3  # every change re-assigned, so synced

    chart.set_series("loss", [(1, 0.9), (2.5, None)])
    assert chart.series["loss"] == [[1, 0.9], [2.5, None]] and chart.series["val_loss"] == [[1, None]]
    chart.extend({"loss": [(3, 0.4)], "auc": [(3, 0.8)]})
    assert chart.series["loss"][-1] == [3, 0.4] and chart.series["auc"] == [[3, 0.8]]
    assert len(seen) == 5

    chart.add_mark(3.5)
    chart.add_mark(3.5)
    assert chart.marks == [3.5]
    chart.log_y = True
    chart.clear()
    assert chart.series == {} and chart.marks == [] and chart.log_y
    chart.close()
