"""The Jupyter server extension configured to run jobs on Dask workers (traitlets
MLaaS4HEPLab.dask_address / dask_resources): a job through the jobs API, on the session's
LocalCluster, to its artifact."""

from __future__ import annotations

import io
import json
import tarfile
import time

import pytest

from mlaas4hep.datagen import write_tth
from mlaas4hep.jobs.dask_executor import DaskExecutor, job_key
from support import torch_model

pytest_plugins = ["pytest_jupyter.jupyter_server"]
pytestmark = pytest.mark.slow


def _finished_keys(dask_scheduler=None) -> list[str]:
    return [str(t[0]) for t in dask_scheduler.transition_log if t[2] == "memory"]


@pytest.fixture
def jp_server_config(tmp_path, dask_client):
    return {
        "ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
        "MLaaS4HEPLab": {"job_root": str(tmp_path / "job-root"), "dask_address": dask_client.scheduler.address,
                         "dask_resources": {"GPU": 1}},
    }


async def test_a_job_through_the_extension_runs_on_a_dask_worker(jp_fetch, jp_serverapp, tmp_path, dask_client):
    manager = jp_serverapp.web_app.settings["mlaas4hep_manager"]
    assert isinstance(manager.executor, DaskExecutor) and manager.executor.resources == {"GPU": 1.0}
    files = [str(write_tth(tmp_path / "sig.root", 2000, signal=True, seed=4, separation=1.5)),
             str(write_tth(tmp_path / "bkg.root", 2000, signal=False, seed=4, separation=1.5))]
    payload = {"files": files, "labels": ["1", "0"], "model": torch_model(),
               "params": {"chunk_size": 1000, "epochs": 2, "batch_size": 128}}
    api = ("mlaas4hep", "api", "v1", "jobs")
    job = json.loads((await jp_fetch(*api, method="POST", body=json.dumps(payload))).body)
    deadline = time.monotonic() + 240
    status = job["status"]
    while status not in ("succeeded", "failed", "cancelled"):
        assert time.monotonic() < deadline
        page = json.loads((await jp_fetch(*api, job["id"], "events", params={"timeout": 5})).body)
        status = page["status"]
    info = json.loads((await jp_fetch(*api, job["id"])).body)
    assert status == "succeeded", info["error"]
    assert info["artifact"] and info["progress"]["events_processed"] > 0
    # it ran as a Dask task: the scheduler took its key through to a result
    key = job_key(job["id"])
    finished = dask_client.run_on_scheduler(_finished_keys)
    assert key in finished
    archive = await jp_fetch(*api, job["id"], "artifact")
    with tarfile.open(fileobj=io.BytesIO(archive.body), mode="r:gz") as tar:
        assert json.load(tar.extractfile("artifact/mlaas4hep.json"))["framework"] == "torch"
