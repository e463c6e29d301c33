"""The Jupyter server extension: every endpoint through a real Jupyter server (pytest-jupyter),
authentication on every one, the kernels' secret, and the API document."""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import time

import pytest
from tornado.httpclient import HTTPClientError

from mlaas4hep.datagen import write_tth
from mlaas4hep.jobs.api import DOCUMENT, OPERATIONS, render
from support import keras_model, torch_model

pytest_plugins = ["pytest_jupyter.jupyter_server"]

MODEL = keras_model()
SLOW_TORCH = torch_model(8)


@pytest.fixture
def jp_server_config(tmp_path):
    return {
        "ServerApp": {"jpserver_extensions": {"mlaas4hep_lab": True}},
        "MLaaS4HEPLab": {"job_root": str(tmp_path / "job-root"), "concurrency": 1},
    }


@pytest.fixture
def files(tmp_path):
    sig = write_tth(tmp_path / "sig.root", 2000, signal=True, seed=4, separation=1.5)
    bkg = write_tth(tmp_path / "bkg.root", 2000, signal=False, seed=4, separation=1.5)
    return [str(sig), str(bkg)]


def body(files, model=MODEL, **params):
    return {"name": "test job", "files": files, "labels": ["1", "0"], "model": model,
            "params": {"chunk_size": 1000, "epochs": 2, "batch_size": 128, **params}}


async def call(jp_fetch, method, path, payload=None, **kwargs):
    if payload is not None:
        kwargs["body"] = json.dumps(payload)
    response = await jp_fetch("mlaas4hep", "api", "v1", *path.strip("/").split("/"), method=method, **kwargs)
    return response


async def as_json(response):
    return json.loads(response.body) if response.body else None


async def test_a_job_through_the_api_from_submit_to_artifact(jp_fetch, jp_serverapp, files):
    response = await call(jp_fetch, "POST", "jobs", body(files))
    assert response.code == 201
    job = await as_json(response)
    assert job["status"] == "queued" and job["name"] == "test job"

    since, seen, status = 0, [], "queued"
    deadline = time.monotonic() + 180
    while status not in ("succeeded", "failed", "cancelled"):
        page = await as_json(await call(jp_fetch, "GET", f"jobs/{job['id']}/events", params={"since": since,
                                                                                             "timeout": 5}))
        seen += page["events"]
        since, status = page["last_seq"], page["status"]
        assert time.monotonic() < deadline
    assert status == "succeeded", seen[-1]
    epochs = [e for e in seen if e["event"] == "epoch"]
    assert epochs and all(e["loss"] > 0 and e["val_loss"] > 0 for e in epochs)
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))

    info = await as_json(await call(jp_fetch, "GET", f"jobs/{job['id']}"))
    assert info["artifact"] and info["metrics"]["test_auc"] > 0.5 and info["progress"]["events_processed"] > 0
    listed = await as_json(await call(jp_fetch, "GET", "jobs"))
    assert [j["id"] for j in listed["jobs"]] == [job["id"]]

    logs = await as_json(await call(jp_fetch, "GET", f"jobs/{job['id']}/logs", params={"offset": 0}))
    assert f"mlaas4hep job {job['id']}" in logs["text"] and logs["offset"] == logs["size"]
    tail = await as_json(await call(jp_fetch, "GET", f"jobs/{job['id']}/logs", params={"offset": logs["offset"]}))
    assert tail["text"] == ""

    archive = await call(jp_fetch, "GET", f"jobs/{job['id']}/artifact")
    assert archive.headers["Content-Type"] == "application/gzip"
    with tarfile.open(fileobj=io.BytesIO(archive.body), mode="r:gz") as tar:
        contract = json.load(tar.extractfile("artifact/mlaas4hep.json"))
    assert contract["framework"] == "keras"

    with pytest.raises(HTTPClientError) as err:  # already finished: nothing to cancel
        await call(jp_fetch, "POST", f"jobs/{job['id']}/cancel", {})
    assert err.value.code == 409
    assert (await call(jp_fetch, "DELETE", f"jobs/{job['id']}")).code == 204
    with pytest.raises(HTTPClientError) as err:
        await call(jp_fetch, "GET", f"jobs/{job['id']}")
    assert err.value.code == 404
    assert "no job" in json.loads(err.value.response.body)["message"]


async def test_cancel_and_delete_rules(jp_fetch, files):
    job = await as_json(await call(jp_fetch, "POST", "jobs", body(files, SLOW_TORCH, chunk_size=100, epochs=50)))
    with pytest.raises(HTTPClientError) as err:  # running or queued: delete refuses
        await call(jp_fetch, "DELETE", f"jobs/{job['id']}")
    assert err.value.code == 409 and "cancel it before deleting it" in json.loads(err.value.response.body)["message"]
    cancelled = await as_json(await call(jp_fetch, "POST", f"jobs/{job['id']}/cancel", {}))
    assert cancelled["status"] == "cancelled"
    assert (await call(jp_fetch, "DELETE", f"jobs/{job['id']}")).code == 204


@pytest.mark.parametrize("payload, message", [
    ({"files": [], "labels": [], "model": "x"}, "files: List should have at least 1 item"),
    ({"files": ["a.root"], "model": "x", "model_path": "m.py"}, "give exactly one of 'model'"),
    ({"files": ["a.root"], "model": "x", "colour": "red"}, "colour: Extra inputs are not permitted"),
    ({"files": ["nope.root"], "labels": ["1"], "model": "def model(idim): pass"}, "nope.root: file not found"),
])
async def test_bad_requests_are_400_with_a_message(jp_fetch, payload, message):
    with pytest.raises(HTTPClientError) as err:
        await call(jp_fetch, "POST", "jobs", payload)
    assert err.value.code == 400
    assert message in json.loads(err.value.response.body)["message"]


async def test_bad_json_and_bad_query(jp_fetch):
    with pytest.raises(HTTPClientError) as err:
        await jp_fetch("mlaas4hep", "api", "v1", "jobs", method="POST", body="{not json")
    assert err.value.code == 400 and "not valid JSON" in json.loads(err.value.response.body)["message"]
    with pytest.raises(HTTPClientError) as err:
        await call(jp_fetch, "GET", "jobs/0123456789ab/events", params={"since": "x"})
    assert err.value.code == 400


async def test_kernels(jp_fetch):
    kernels = await as_json(await call(jp_fetch, "GET", "kernels"))
    names = [k["name"] for k in kernels["kernels"]]
    assert "python3" in names and kernels["default"] == "python3"
    assert all(os.path.exists(k["python"]) for k in kernels["kernels"])


def _concrete(path: str) -> str:
    return path.replace("{job_id}", "0123456789ab")


async def test_every_endpoint_needs_authentication(jp_fetch, jp_serverapp):
    for op in OPERATIONS:
        kwargs = {"body": "{}"} if op.method in ("POST", "PUT") else {}
        with pytest.raises(HTTPClientError) as err:
            await jp_fetch("mlaas4hep", "api", "v1", *_concrete(op.path).strip("/").split("/"), method=op.method,
                           headers={"Authorization": ""}, **kwargs)
        assert err.value.code == 403, (op.method, op.path)
        with pytest.raises(HTTPClientError) as err:  # a wrong secret is no better
            await jp_fetch("mlaas4hep", "api", "v1", *_concrete(op.path).strip("/").split("/"), method=op.method,
                           headers={"Authorization": "Bearer not-the-secret"}, **kwargs)
        assert err.value.code == 403, (op.method, op.path)


async def test_kernels_reach_their_server_with_the_secret(jp_fetch, jp_serverapp, files):
    secret = os.environ["MLAAS4HEP_LAB_TOKEN"]
    assert os.environ["MLAAS4HEP_LAB_URL"].startswith("http://") and secret
    headers = {"Authorization": f"Bearer {secret}"}
    listed = await jp_fetch("mlaas4hep", "api", "v1", "jobs", headers=headers)
    assert listed.code == 200
    submitted = await jp_fetch("mlaas4hep", "api", "v1", "jobs", method="POST", headers=headers,
                               body=json.dumps(body(files, SLOW_TORCH, epochs=1)))
    assert submitted.code == 201  # a POST with the secret needs no XSRF cookie
    job = json.loads(submitted.body)
    await jp_fetch("mlaas4hep", "api", "v1", "jobs", job["id"], "cancel", method="POST", headers=headers, body="{}")


def test_the_api_document_is_current_and_valid():
    from openapi_spec_validator import validate

    assert DOCUMENT.read_text() == render(), "run: python -m mlaas4hep.jobs.api"
    validate(json.loads(DOCUMENT.read_text()))


def test_routes_match_the_api_document():
    from mlaas4hep_lab.handlers import JOB_ID, ROUTES

    document = json.loads(DOCUMENT.read_text())
    routes = {path.replace(JOB_ID, "{job_id}"): handler for path, handler in ROUTES}
    assert set(routes) == set(document["paths"])
    for path, item in document["paths"].items():
        handler = routes[path]
        implemented = {m for m in ("get", "post", "put", "patch", "delete") if m in handler.__dict__}
        assert implemented == set(item), (path, implemented, set(item))
    assert re.fullmatch(JOB_ID, "0123456789ab")


async def test_openapi_document_is_served(jp_fetch):
    served = json.loads((await call(jp_fetch, "GET", "openapi.json")).body)
    assert served == json.loads(DOCUMENT.read_text())
