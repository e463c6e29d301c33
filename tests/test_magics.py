"""The %mlaas4hep magic, driven through a real IPython InteractiveShell, with real jobs run by
the in-process job manager (no server): train (cell body and --model), jobs, status, logs,
cancel, specs, help, and the one-line messages for mistakes."""

from __future__ import annotations

import json
import socket
import time

import pytest

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth
from mlaas4hep_lab import magics
from support import magic_shell, torch_model, use_local_jobs

MODEL = torch_model()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("magic-data")
    write_tth(folder / "a.root", 2000, signal=True, seed=11, separation=1.5)
    write_tth(folder / "b.root", 2000, signal=False, seed=12, separation=1.5)
    (folder / "model.py").write_text(MODEL)
    (folder / "p.json").write_text(json.dumps({"chunk_size": 1000, "epochs": 2}))
    (folder / "slow.json").write_text(json.dumps({"chunk_size": 100, "epochs": 40}))
    (folder / "bad.json").write_text('{"chunk_size": 1000,\n "epochs": }\n')
    return folder


@pytest.fixture
def shell(data, tmp_path, monkeypatch, capsys):
    use_local_jobs(monkeypatch, tmp_path / "jobs")
    monkeypatch.chdir(data)
    sh = magic_shell()
    capsys.readouterr()
    yield sh
    magics.close_clients()
    with _local() as client:
        for job in client.jobs():
            if job.status in ("queued", "running"):
                client.cancel(job.id)


class _local:
    def __enter__(self) -> Client:
        self.client = Client()
        return self.client

    def __exit__(self, *exc) -> None:
        self.client.close()


def magic(shell, line: str, cell: str | None = None):
    if cell is None:
        return shell.run_line_magic("mlaas4hep", line, _stack_depth=2)
    return shell.run_cell_magic("mlaas4hep", line, cell)


def test_train_cell_wait_shows_progress_and_test_metrics(shell, capsys, tmp_path):
    job_id = magic(shell, "train --files a.root,b.root --labels 1,0 --params p.json --name cell --wait", MODEL)
    out, err = capsys.readouterr()
    assert isinstance(job_id, str) and f"job {job_id} (cell): queued" in out, out + err
    assert "specs: " in out and "train [########################] 100%  4,000/4,000 events" in out
    assert f"job {job_id} (cell): succeeded" in out
    assert "test metric" in out and "auc" in out and "accuracy" in out
    assert "Traceback" not in out + err
    with _local() as client:
        info = client.job(job_id)
        assert info.status == "succeeded", info.error
        assert info.artifact and (client.artifact(job_id, tmp_path) / "mlaas4hep.json").exists()


def test_train_without_wait_then_jobs_status_logs_cancel(shell, capsys):
    files = "a.root,b.root"
    job_id = magic(shell, "train --files $files --labels 1,0 --model model.py --params slow.json --name slow")
    with _local() as client:  # the magic came back while the job was still to run: it did not wait
        assert client.job(job_id).status in ("queued", "running")
    out, err = capsys.readouterr()
    assert not err and f"job {job_id} (slow): " in out and f"%mlaas4hep status {job_id}" in out

    with _local() as client:
        deadline = time.monotonic() + 40
        while (info := client.job(job_id)).progress.events_processed == 0 and time.monotonic() < deadline:
            assert info.status in ("queued", "running"), info.error
            time.sleep(0.2)
    assert info.status == "running" and info.progress.events_processed > 0

    magic(shell, "jobs")
    out = capsys.readouterr().out
    assert "id" in out.splitlines()[0] and "last loss" in out.splitlines()[0]
    row = next(line for line in out.splitlines() if line.startswith(job_id))
    assert "slow" in row and "running" in row and "%" in row and "ago" in row

    magic(shell, "status {job_id}")
    out = capsys.readouterr().out
    assert f"job {job_id} (slow): running" in out and "progress: " in out and "events/s" in out

    magic(shell, f"logs {job_id} --tail 5")
    out = capsys.readouterr().out
    assert len(out.splitlines()) <= 5 and " epoch " in out and " loss " in out  # the log has a line per epoch
    magic(shell, f"logs {job_id}")
    assert f"mlaas4hep job {job_id}: python" in capsys.readouterr().out.splitlines()[0]

    magic(shell, f"cancel {job_id}")
    out, err = capsys.readouterr()
    assert f"job {job_id} (slow): cancelled" in out and not err
    with _local() as client:
        assert client.job(job_id).status == "cancelled"


def test_specs_prints_the_summary(shell, capsys):
    # a trailing ';' (IPython's "no echo") is not an argument
    assert magic(shell, "specs --files a.root,b.root --labels 1,0 --params p.json ;") is None
    out, err = capsys.readouterr()
    assert "branch" in out and "jagged" in out and "jetPt" in out and not err
    assert "efficiency" in out and "total" in out and "4000" in out


def test_help_prints_usage_and_returns(shell, capsys):
    assert magic(shell, "--help") is None
    out = capsys.readouterr().out
    assert "usage: %mlaas4hep" in out and "train" in out and "specs" in out and "cancel" in out
    assert magic(shell, "train --help") is None
    out = capsys.readouterr().out
    assert "usage: %mlaas4hep train" in out and "--files" in out and "--wait" in out and "--remote" in out
    assert magic(shell, "") is None and "usage: %mlaas4hep" in capsys.readouterr().out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TRAIN = "train --files a.root,b.root --labels 1,0 "
MISTAKES = [
    ("bogus", None, "invalid choice: 'bogus'"),
    ("train --labels 1,0 --model model.py", None, "the following arguments are required: --files"),
    ("train --files a.root,nope.root --labels 1,0 --model model.py", None, "nope.root: file not found"),
    (TRAIN + "--model model.py --params bad.json", None, "bad.json: not valid JSON"),
    (TRAIN + "--model model.py --params missing.json", None, "missing.json: params file not found"),
    (TRAIN + "--model missing.py", None, "missing.py: model file not found"),
    (TRAIN + "--params p.json", None, "no model: give --model model.py"),
    (TRAIN + "--params p.json", "  \n", "no model: give --model model.py"),
    (TRAIN + "--model model.py", MODEL, "either with --model or as the cell body, not both"),
    (TRAIN + "--params p.json --threads many", MODEL, "argument --threads: invalid int value: 'many'"),
    ("jobs", MODEL, "only train takes a cell body"),
    ("status 0123456789ab", None, "no job '0123456789ab'"),
    ("cancel 0123456789ab", None, "no job '0123456789ab'"),
    ("logs 0123456789ab --tail five", None, "argument --tail: invalid int value: 'five'"),
    ("jobs --bogus", None, "unrecognized arguments: --bogus"),
    ("train --files 'a.root", None, "No closing quotation"),
    ("jobs --remote nowhere", None, "unknown remote 'nowhere' (give an http(s):// URL or a name in MLAAS4HEP_REMOTES; "
                                    "known: cern, lab)"),
    ("status 0123456789ab --remote http://127.0.0.1:{port}", None, "cannot reach the MLaaS4HEP server"),
]


def test_mistakes_print_one_error_line(shell, capsys, monkeypatch):
    monkeypatch.setenv("MLAAS4HEP_REMOTES", json.dumps({"lab": "http://127.0.0.1:1", "cern": "https://x.cern.ch"}))
    for line, cell, expected in MISTAKES:
        line = line.replace("{port}", str(free_port()))
        assert magic(shell, line, cell) is None, line
        out, err = capsys.readouterr()
        text = out + err
        errors = [x for x in text.splitlines() if x.startswith("mlaas4hep: error: ")]
        assert len(errors) == 1 and expected in errors[0], (line, text)
        assert text.count("error") == 1 and "Traceback" not in text, (line, text)
    with _local() as client:
        assert client.jobs() == []  # no mistake queued anything


def test_frontend_detection(shell):
    assert not magics._has_frontend(shell)  # a terminal IPython: text

    class ZMQInteractiveShell:
        pass

    assert magics._has_frontend(ZMQInteractiveShell())
