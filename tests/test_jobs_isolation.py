"""What a job leaves behind and who may touch it: cancel and timeout stop every process of the
job (a model that starts a child process included), and one owner can neither see, read,
cancel nor delete another owner's jobs."""

from __future__ import annotations

import os
import signal
import time

import pytest

from mlaas4hep.datagen import write_tth
from mlaas4hep.jobs import JobManager, JobNotFound, WorkflowRequest
from mlaas4hep.jobs import process
from support import torch_model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("isolation")
    sig = write_tth(folder / "sig.root", 3000, signal=True, seed=4)
    bkg = write_tth(folder / "bkg.root", 3000, signal=False, seed=4)
    return {"folder": folder, "files": [str(sig), str(bkg)]}


def spawning_model(pidfile) -> str:
    """A PyTorch model.py whose model() starts a long ``sleep`` in the job's process group."""
    return f"""import subprocess
from torch import nn


def model(idim):
    child = subprocess.Popen(["sleep", "600"])
    with open({str(pidfile)!r}, "w") as out:
        out.write(str(child.pid))
    return nn.Sequential(nn.Linear(idim, 8), nn.ReLU(), nn.Linear(8, 1))
"""


def slow(data, model: str, epochs: int = 40, **resources) -> WorkflowRequest:
    return WorkflowRequest(files=data["files"], labels=["1", "0"], model=model,
                           params={"chunk_size": 200, "epochs": epochs, "batch_size": 64}, resources=resources)


def wait_for_child(manager, job_id, pidfile) -> int:
    deadline = time.monotonic() + 180
    while not (pidfile.exists() and pidfile.read_text()):
        info = manager.get(job_id)
        assert info.status in ("queued", "running"), (info.error, manager.logs(job_id).text[-2000:])
        assert time.monotonic() < deadline, "the job never started its model"
        time.sleep(0.1)
    child = int(pidfile.read_text())
    assert process.alive(child, None)
    return child


def _kill(pid: int | None) -> None:
    if pid and process.alive(pid, None):
        os.kill(pid, signal.SIGKILL)


def test_cancel_stops_the_whole_process_group_not_only_the_job_process(data, tmp_path):
    pidfile = tmp_path / "child.pid"
    child = None
    with JobManager(tmp_path / "jobs", base_dir=data["folder"]) as manager:
        try:
            job = manager.submit(slow(data, spawning_model(pidfile)))
            child = wait_for_child(manager, job.id, pidfile)
            leader = manager.store.get(job.id)["pid"]
            assert os.getpgid(child) == leader  # the child is in the job's group
            assert manager.cancel(job.id).status == "cancelled"
            assert not process.alive(child, None), "the job's child process outlived the cancel"
            assert process.group_members(leader) == []
        finally:
            _kill(child)


@pytest.mark.slow
def test_a_timeout_stops_the_whole_process_group(data, tmp_path):
    pidfile = tmp_path / "child.pid"
    child = None
    with JobManager(tmp_path / "jobs", base_dir=data["folder"], poll_interval=0.2) as manager:
        try:
            # far more epochs than 40 s allow even on a fast, idle machine: the timeout ends it
            job = manager.submit(slow(data, spawning_model(pidfile), epochs=2000, timeout=40))
            child = wait_for_child(manager, job.id, pidfile)
            done = manager.wait(job.id, timeout=240)
            assert done.status == "cancelled" and "timed out" in done.error
            assert not process.alive(child, None), "the job's child process outlived the timeout"
        finally:
            _kill(child)


def test_an_owner_sees_and_touches_only_their_own_jobs(data, tmp_path):
    with JobManager(tmp_path / "jobs", base_dir=data["folder"], start=False, owner="alice") as manager:
        mine = manager.submit(slow(data, torch_model()), owner="alice")
        theirs = manager.submit(slow(data, torch_model()), owner="bob")
        assert [j.id for j in manager.list(owner="alice")] == [mine.id]
        assert [j.id for j in manager.list(owner="bob")] == [theirs.id]
        for call in (manager.get, manager.events, manager.logs, manager.cancel, manager.delete,
                     manager.artifact_archive):
            with pytest.raises(JobNotFound):
                call(theirs.id, owner="alice")
        assert manager.get(theirs.id, owner="bob").status == "queued"  # untouched by alice's attempts
        assert manager.get(mine.id, owner="alice").status == "queued"
        assert manager.cancel(mine.id, owner="alice").status == "cancelled"
