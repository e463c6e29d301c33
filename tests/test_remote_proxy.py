"""The server extension's routes to remote MLaaS4HEP services (for the JupyterLab sidebar):
a real Jupyter server (pytest-jupyter) forwarding to a real ``mlaas4hep serve`` with the user's
own token, which the browser never sees; every mistake a clear 4xx/502."""

from __future__ import annotations

import json

import pytest
from tornado.httpclient import HTTPClientError

from mlaas4hep.client import Client
from mlaas4hep.datagen import write_tth
from servers import ServiceProcess, free_port
from support import torch_model

pytest_plugins = ["pytest_jupyter.jupyter_server"]


@pytest.fixture(scope="module")
def service(oidc_issuer, tmp_path_factory):
    svc = ServiceProcess(oidc_issuer.url, tmp_path_factory.mktemp("proxied") / "data", audience="mlaas4hep",
                         required_scope="mlaas4hep")
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def alice_job(service, oidc_issuer, tmp_path_factory):
    """A finished job of alice on the service (submitted with her token, inputs uploaded)."""
    folder = tmp_path_factory.mktemp("proxied-inputs")
    write_tth(folder / "sig.root", 1200, signal=True, seed=2, separation=1.5)
    write_tth(folder / "bkg.root", 1200, signal=False, seed=2, separation=1.5)
    client = Client(service.url + "/api/v1", token=oidc_issuer.token("alice"))
    job = client.submit(files=[str(folder / "sig.root"), str(folder / "bkg.root")], labels=[1, 0],
                        model=torch_model(), params={"chunk_size": 1200, "epochs": 1,
                                                     "identifier": "run,event,luminosityBlock"})
    assert client.follow(job.id, timeout=240).status == "succeeded"
    return job.id


@pytest.fixture
def jp_server_config(tmp_path, service):
    return {
        "ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
        "MLaaS4HEPLab": {"job_root": str(tmp_path / "job-root"),
                         "remotes": {"cern": service.url, "down": f"http://127.0.0.1:{free_port()}"}},
    }


@pytest.fixture
def token_of(monkeypatch, oidc_issuer):
    """The user's token as the server finds it (here: MLAAS4HEP_TOKEN; on a hub: auth_state)."""
    from mlaas4hep_lab import hub

    for name in ("MLAAS4HEP_TOKEN_FILE", "BEARER_TOKEN", "BEARER_TOKEN_FILE", "JUPYTERHUB_API_URL",
                 "JUPYTERHUB_API_TOKEN", "MLAAS4HEP_REMOTES"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/nonexistent-mlaas4hep-test")
    hub.forget()

    def use(user: str | None) -> str | None:
        if user is None:
            monkeypatch.delenv("MLAAS4HEP_TOKEN", raising=False)
            return None
        token = oidc_issuer.token(user)
        monkeypatch.setenv("MLAAS4HEP_TOKEN", token)
        return token

    return use


async def fetch_json(jp_fetch, *path, **kwargs):
    response = await jp_fetch("mlaas4hep", "lab", "remotes", *path, **kwargs)
    return response.code, json.loads(response.body)


async def test_the_sidebar_sees_remote_jobs_through_the_server_with_the_users_token(
        token_of, jp_fetch, jp_serverapp, alice_job, service):
    token = token_of("alice")
    code, listed = await fetch_json(jp_fetch)
    assert code == 200 and listed["remotes"] == [{"name": "cern", "url": service.url},
                                                 {"name": "down", "url": listed["remotes"][1]["url"]}]
    assert token not in json.dumps(listed)
    code, jobs = await fetch_json(jp_fetch, "cern", "jobs")
    assert code == 200 and alice_job in [j["id"] for j in jobs["jobs"]]
    code, job = await fetch_json(jp_fetch, "cern", "jobs", alice_job)
    assert job["status"] == "succeeded" and job["id"] == alice_job
    code, page = await fetch_json(jp_fetch, "cern", "jobs", alice_job, "events", params={"since": "0"})
    events = [e["event"] for e in page["events"]]
    assert events[0] == "job_start" and "epoch" in events and events[-1] == "finished"
    code, logs = await fetch_json(jp_fetch, "cern", "jobs", alice_job, "logs")
    assert f"mlaas4hep job {alice_job}" in logs["text"]
    response = await jp_fetch("mlaas4hep", "lab", "remotes", "cern", "jobs", alice_job, "artifact")
    assert response.code == 200 and response.body[:2] == b"\x1f\x8b"  # the artifact's tar.gz
    # cancelling a finished job: the service's own answer (409) and reason come through
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("mlaas4hep", "lab", "remotes", "cern", "jobs", alice_job, "cancel", method="POST", body="")
    assert err.value.code == 409 and json.loads(err.value.response.body)["message"]
    # another user (another token on this server) does not see alice's job
    token_of("bob")
    code, jobs = await fetch_json(jp_fetch, "cern", "jobs")
    assert alice_job not in [j["id"] for j in jobs["jobs"]]


@pytest.mark.parametrize("path, user, status, words", [
    (("nowhere", "jobs"), "alice", 404, "no remote service 'nowhere' (configured: cern, down"),
    (("cern", "uploads"), "alice", 404, "is not a jobs API path of a remote service"),
    (("cern", "jobs"), None, 401, "no access token for the MLaaS4HEP service"),
    (("down", "jobs"), "alice", 502, "cannot reach the MLaaS4HEP server"),
], ids=["unknown-remote", "not-forwarded", "no-token", "unreachable"])
async def test_proxy_mistakes_are_clear(token_of, jp_fetch, jp_serverapp, path, user, status, words):
    token_of(user)
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("mlaas4hep", "lab", "remotes", *path)
    assert err.value.code == status
    assert words in json.loads(err.value.response.body)["message"]


async def test_proxy_routes_need_authentication(token_of, jp_fetch, jp_serverapp):
    token_of("alice")
    for path in ((), ("cern", "jobs")):
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("mlaas4hep", "lab", "remotes", *path, headers={"Authorization": ""})
        assert err.value.code == 403
