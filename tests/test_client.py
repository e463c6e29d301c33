"""mlaas4hep.client.Client: through a real Jupyter server with the kernels' secret, and the
in-process fallback when there is no server."""

from __future__ import annotations

import asyncio
import os

import pytest

import mlaas4hep
from mlaas4hep.client import Client, ServerError
from mlaas4hep.datagen import write_tth
from support import torch_model

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MODEL = torch_model()


@pytest.fixture
def jp_server_config(tmp_path):
    return {"ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
            "MLaaS4HEPLab": {"job_root": str(tmp_path / "server-jobs")}}


@pytest.fixture
def files(tmp_path):
    return [str(write_tth(tmp_path / "s.root", 1500, True, seed=9, separation=1.5)),
            str(write_tth(tmp_path / "b.root", 1500, False, seed=9, separation=1.5))]


def run_job(client: Client, files: list[str], dest) -> tuple:
    job = client.submit(files=files, labels=["1", "0"], model=MODEL, name="client job",
                        params={"chunk_size": 1000, "epochs": 2})
    seen = []
    done = client.follow(job.id, on_event=seen.append, timeout=180)
    folder = client.artifact(job.id, dest)
    return job, done, seen, folder


async def test_client_in_a_kernel_reaches_its_server(jp_serverapp, jp_fetch, files, tmp_path):
    # (pytest-jupyter's server listens on its port only once jp_fetch's client fixture is up)
    # what a kernel started by this server has in its environment
    assert os.environ["MLAAS4HEP_LAB_URL"] and os.environ["MLAAS4HEP_LAB_TOKEN"]
    client = Client()
    assert not client.local and client.api.endswith("/mlaas4hep/api/v1")
    job, done, seen, folder = await asyncio.get_running_loop().run_in_executor(
        None, run_job, client, files, tmp_path)
    assert done.status == "succeeded", done.error
    assert seen[0]["event"] == "job_start" and seen[-1]["event"] == "finished"
    assert any(e["event"] == "epoch" for e in seen)
    artifact = mlaas4hep.Artifact.load(folder)
    assert artifact.framework == "torch" and len(artifact.predict(files[:1])) == 1500
    kernels = await asyncio.get_running_loop().run_in_executor(None, client.kernels)
    assert "python3" in [k.name for k in kernels.kernels]

    bad = Client(os.environ["MLAAS4HEP_LAB_URL"], token="expired-or-wrong")
    with pytest.raises(ServerError) as err:
        await asyncio.get_running_loop().run_in_executor(None, bad.jobs)
    assert err.value.status == 403 and "token is missing, wrong or expired" in str(err.value)


def test_without_a_server_the_client_runs_jobs_in_process(files, tmp_path, monkeypatch):
    monkeypatch.delenv("MLAAS4HEP_LAB_URL", raising=False)
    monkeypatch.setenv("MLAAS4HEP_JOB_ROOT", str(tmp_path / "local-jobs"))
    client = Client()
    try:
        assert client.local
        job, done, seen, folder = run_job(client, files, tmp_path)
        assert done.status == "succeeded", done.error
        assert (tmp_path / "local-jobs" / "jobs" / job.id / "events.jsonl").exists()
        assert (folder / "mlaas4hep.json").exists()
        assert [j.id for j in client.jobs()] == [job.id]
    finally:
        client.close()


def test_unreachable_server_is_a_clear_error():
    from servers import free_port

    client = Client(f"http://127.0.0.1:{free_port()}", token="x")
    with pytest.raises(ServerError, match=r"cannot reach the MLaaS4HEP server: connection refused.*is the server running"):
        client.jobs()


def test_client_side_request_checks():
    client = Client("http://127.0.0.1:1", token="x")
    with pytest.raises(mlaas4hep.ConfigError, match="job request: .*give exactly one of 'model'"):
        client.submit(files=["a.root"])


def test_the_kernels_secret_never_goes_to_another_server(monkeypatch):
    monkeypatch.setenv("MLAAS4HEP_LAB_URL", "http://127.0.0.1:8888/")
    monkeypatch.setenv("MLAAS4HEP_LAB_TOKEN", "server-secret")
    assert Client().token == "server-secret"
    assert Client("http://127.0.0.1:8888").token == "server-secret"  # the same server
    other = Client("https://mlaas.example.org/api/v1")
    assert other.token is None and "Authorization" not in other._http.headers
    assert Client("https://mlaas.example.org", token="mine").token == "mine"
