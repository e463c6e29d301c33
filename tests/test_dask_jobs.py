"""Jobs on Dask workers (DaskExecutor) on a real LocalCluster: a job finishes with its artifact,
cancel stops its processes, a restarted manager re-attaches, resource tags place jobs."""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path

import pytest

from mlaas4hep.jobs import JobManager, WorkflowRequest
from mlaas4hep.jobs.dask_executor import DaskExecutor, job_key, parse_resources
from mlaas4hep.jobs.executor import LocalExecutor, make_executor
from mlaas4hep.errors import ConfigError
from support import cancel_and_check, need, torch_model, write_labelled_pair

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    folder = tmp_path_factory.mktemp("daskjobs")
    sig, bkg = write_labelled_pair(folder, 3000, seed=2, separation=1.5)
    return {"folder": folder, "files": [str(sig), str(bkg)]}


def request(data, **params) -> WorkflowRequest:
    base = {"chunk_size": 1000, "epochs": 2, "batch_size": 128, "identifier": "run,event,luminosityBlock"}
    return WorkflowRequest(files=data["files"], labels=["1", "0"], model=torch_model(), params={**base, **params})


def _wait_for_epoch(manager: JobManager, job_id: str, limit: float = 120) -> None:
    deadline = time.monotonic() + limit
    while not any(e["event"] == "epoch" for e in manager.events(job_id).events):
        assert time.monotonic() < deadline, manager.logs(job_id).text[-2000:]
        assert manager.get(job_id).status in ("queued", "running"), manager.get(job_id)
        time.sleep(0.2)


def _job_pid(manager: JobManager, job_id: str) -> int:
    return json.loads((manager.root / "jobs" / job_id / "pid.json").read_text())["pid"]


def _parent(pid: int) -> int:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2:].split()[1])


def test_a_job_on_a_dask_worker_finishes_with_its_artifact(data, dask_client, tmp_path):
    executor = DaskExecutor(dask_client, resources={"GPU": 1})
    with JobManager(tmp_path, base_dir=data["folder"], executor=executor) as manager:
        job = manager.submit(request(data))
        done = manager.wait(job.id, timeout=240)
        assert done.status == "succeeded", (done.error, manager.logs(job.id).text[-2000:])
        assert done.artifact and done.metrics["test_auc"] > 0.7
        assert done.progress.events_processed == done.progress.events_total > 0
        events = manager.events(job.id).events
        assert events[0]["event"] == "job_start" and events[-1]["event"] == "finished"
        assert f"mlaas4hep job {job.id}" in manager.logs(job.id).text
        assert (manager.root / "jobs" / job.id / "artifact" / "mlaas4hep.json").exists()
        assert manager.artifact_archive(job.id).exists()
        # done with the job: nothing of it is left published on the scheduler
        assert job_key(job.id) not in dask_client.list_datasets()


def test_cancel_stops_the_job_on_its_worker(data, dask_client, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"], executor=DaskExecutor(dask_client)) as manager:
        job = manager.submit(request(data, chunk_size=200, epochs=40))
        _wait_for_epoch(manager, job.id)
        pid = _job_pid(manager, job.id)
        workers = dask_client.run(__import__("os").getpid)
        assert _parent(pid) in workers.values()  # the job's process was started by a Dask worker
        assert job_key(job.id) in {k for keys in dask_client.processing().values() for k in keys}
        cancel_and_check(manager, job.id, pid, logged="epoch 1: loss ")


def test_a_restarted_manager_reattaches_to_a_dask_job(data, dask_client, tmp_path):
    address = dask_client.scheduler.address
    first = JobManager(tmp_path, base_dir=data["folder"], executor=DaskExecutor(address))
    job = first.submit(request(data, chunk_size=500, epochs=6))
    _wait_for_epoch(first, job.id)
    first.close()  # the server stops (and its Dask client with it); the job goes on
    assert first.executor._client is None
    with JobManager(tmp_path, base_dir=data["folder"], executor=DaskExecutor(address)) as second:
        assert second.get(job.id).status == "running"
        done = second.wait(job.id, timeout=240)
        assert done.status == "succeeded", (done.error, second.logs(job.id).text[-2000:])
        assert done.artifact


def test_a_job_waits_for_a_worker_with_its_resources(data, dask_client, tmp_path):
    with JobManager(tmp_path, base_dir=data["folder"], executor=DaskExecutor(dask_client, {"TPU": 1})) as manager:
        job = manager.submit(request(data))
        deadline = time.monotonic() + 30
        while job_key(job.id) not in dask_client.list_datasets():
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2)
        # no worker has a TPU: the task waits on the scheduler, no process was started
        assert manager.get(job.id).status == "running"
        assert not (manager.root / "jobs" / job.id / "pid.json").exists()
        assert manager.cancel(job.id).status == "cancelled"
        assert job_key(job.id) not in dask_client.list_datasets()


def test_executor_configuration(monkeypatch):
    assert parse_resources("GPU=1, MEM=8e9") == {"GPU": 1.0, "MEM": 8e9}
    for bad in ("GPU", "GPU=0", "=1", "GPU=x"):
        with pytest.raises(ConfigError, match="NAME=AMOUNT"):
            parse_resources(bad)
    monkeypatch.delenv("MLAAS4HEP_DASK", raising=False)
    assert isinstance(make_executor(), LocalExecutor)
    monkeypatch.setenv("MLAAS4HEP_DASK", "tcp://127.0.0.1:1")
    monkeypatch.setenv("MLAAS4HEP_DASK_RESOURCES", "GPU=1")
    executor = make_executor()
    assert isinstance(executor, DaskExecutor) and executor.resources == {"GPU": 1.0}
    assert executor.address == "tcp://127.0.0.1:1"


def test_the_service_runs_jobs_on_dask_when_told(dask_client, tmp_path):
    need(importlib.util.find_spec("fastapi") is not None, "fastapi (the service extra)")
    from mlaas4hep.service.app import Service
    from mlaas4hep.service.config import load_config

    base = {"issuer": "http://127.0.0.1:9/", "audience": "mlaas4hep", "data_dir": str(tmp_path / "svc")}
    local = Service(load_config(base, {}))
    assert isinstance(local.manager.executor, LocalExecutor)
    local.manager.close()
    config = load_config({**base, "dask": dask_client.scheduler.address}, {"MLAAS4HEP_SERVE_DASK_RESOURCES": "GPU=1"})
    service = Service(config)
    try:
        assert isinstance(service.manager.executor, DaskExecutor)
        assert service.manager.executor.resources == {"GPU": 1.0}
        assert service.manager.executor.client.scheduler.address == dask_client.scheduler.address
    finally:
        service.manager.close()
    with pytest.raises(ConfigError, match="--dask-resources: dask resources: expected NAME=AMOUNT"):
        load_config({**base, "dask_resources": "GPU"}, {})
