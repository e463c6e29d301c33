"""Model serving (issue 14): the registry, the TFaaS, Open Inference v2 and raw-event routes of a
real ``mlaas4hep serve`` process with tokens of a real OIDC issuer, against the artifacts' own
``predict`` and ``mlaas4hep predict``; dynamic batching by counting model calls; access between
users; hostile inputs (4xx with a reason while a steady client keeps being served)."""

from __future__ import annotations

import io
import json
import tarfile
import threading
from pathlib import Path

import awkward as ak
import numpy as np
import pytest
import requests
import uproot

from servers import ServiceProcess
from support import need

AUD = "mlaas4hep"


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def tar_gz(folder: Path, arcname: str = "artifact") -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(folder, arcname=arcname)
    return buf.getvalue()


@pytest.fixture(scope="module")
def tokens(oidc_issuer):
    return {user: oidc_issuer.token(user) for user in ("alice", "bob")}


@pytest.fixture(scope="module")
def service(oidc_issuer, tmp_path_factory):
    svc = ServiceProcess(oidc_issuer.url, tmp_path_factory.mktemp("serving") / "data", audience=AUD,
                         batch_max_delay=0.05, max_predict_rows=5000, max_archive_members=500)
    yield svc
    svc.stop()


@pytest.fixture(scope="module")
def published(service, served_artifacts, tokens):
    """alice's Keras model (private) and PyTorch model (public), uploaded as artifact tar.gz."""
    for name, framework, public in (("kmlp", "keras", "false"), ("tmlp", "torch", "true")):
        r = requests.post(service.url + "/api/v1/models", headers=auth(tokens["alice"]), timeout=120,
                          data={"name": name, "public": public},
                          files={"file": ("artifact.tar.gz", tar_gz(served_artifacts[framework].path))})
        assert r.status_code == 201, r.text
        assert r.json()["framework"] == framework and r.json()["version"] == 1
    return {"kmlp": served_artifacts["keras"], "tmlp": served_artifacts["torch"]}


def raw_events(artifact, path, stop=300) -> dict:
    with uproot.open(path) as f:
        return f[artifact.tree].arrays(artifact.contract["branches"], entry_stop=stop)


def as_json(arrays, strict: bool = False) -> dict:
    """Columns as JSON lists; ``strict``: NaN as null (JSON proper), else as Python's NaN token."""
    out = {b: ak.to_list(arrays[b]) for b in arrays.fields}
    if strict:
        out = {b: [None if isinstance(v, float) and v != v else v for v in values] for b, values in out.items()}
    return out


def post(url: str, headers: dict, body) -> requests.Response:
    """POST a JSON body as Python's json writes it (NaN allowed, as ROOT branches have it)."""
    return requests.post(url, headers={**headers, "Content-Type": "application/json"}, data=json.dumps(body),
                         timeout=60)


@pytest.mark.parametrize("name", ["kmlp", "tmlp"])
def test_every_api_gives_the_artifacts_own_scores(service, published, served_artifacts, tokens, name):
    artifact = published[name]
    arrays = raw_events(artifact, served_artifacts["fresh"])
    expected = artifact.predict({b: arrays[b] for b in arrays.fields})  # NaN where the cuts fail
    X, mask = artifact.features({b: arrays[b] for b in arrays.fields})
    assert 0 < mask.sum() < len(mask)  # some events fail the cuts
    headers = auth(tokens["alice"])

    # raw events: the artifact's own preproc, specs and tensorize on the server
    r = post(f"{service.url}/api/v1/models/{name}/predict", headers, {"events": as_json(arrays)})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["passed"] == mask.tolist()
    got = np.array([np.nan if s is None else s for s in body["scores"]], np.float64)
    np.testing.assert_allclose(got[mask], expected[mask], rtol=1e-5, atol=1e-6)
    assert all(s is None for s, p in zip(body["scores"], body["passed"]) if not p)

    # TFaaS: normalised rows, keys in another order than the model's
    features = artifact.feature_names
    order = list(reversed(range(len(features))))
    r = requests.post(service.url + "/tfaas/json", headers=headers, timeout=60, json={
        "model": name, "keys": [features[i] for i in order], "values": X[:, order].tolist()})
    assert r.status_code == 200, r.text
    tfaas = np.array([row[0]["probability"] for row in r.json()])
    np.testing.assert_allclose(tfaas, expected[mask], rtol=1e-5, atol=1e-6)
    one = requests.post(service.url + "/tfaas/json", headers=headers, timeout=60,
                        json={"model": name, "keys": features, "values": X[0].tolist()}).json()
    assert one[0]["label"] == "1" and abs(one[0]["probability"] - expected[mask][0]) < 1e-5

    # Open Inference Protocol v2 through tritonclient
    need(__import__("importlib").util.find_spec("tritonclient") is not None, "tritonclient[http]")
    import tritonclient.http as triton

    client = triton.InferenceServerClient(service.url.removeprefix("http://"))
    assert client.is_server_live(headers=headers) and client.is_model_ready(name, headers=headers)
    meta = client.get_model_metadata(name, headers=headers)
    assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, len(features)]}]
    assert meta["outputs"] == [{"name": "scores", "datatype": "FP32", "shape": [-1]}]
    tensor = triton.InferInput("input", list(X.shape), "FP32")
    tensor.set_data_from_numpy(X, binary_data=False)
    result = client.infer(name, [tensor], outputs=[triton.InferRequestedOutput("scores", binary_data=False)],
                          headers=headers)
    v2 = result.as_numpy("scores")
    assert v2.dtype == np.float32 and v2.shape == (len(X),)
    np.testing.assert_allclose(v2, expected[mask], rtol=1e-5, atol=1e-6)


def test_raw_events_equal_mlaas4hep_predict_on_the_same_root_file(service, published, served_artifacts, tokens,
                                                                   tmp_path):
    from mlaas4hep.cli import main

    artifact = published["tmlp"]
    out = tmp_path / "scores.root"
    assert main(["predict", "--artifact", str(artifact.path), "--files", str(served_artifacts["fresh"]),
                 "--out", str(out)]) == 0
    with uproot.open(out) as f:
        cli = f[artifact.tree]["score"].array(library="np")
    arrays = raw_events(artifact, served_artifacts["fresh"], stop=None)
    events = as_json(arrays, strict=True)
    assert any(v is None for v in events["lep1Pt"])  # NaN in the file: null in strict JSON
    r = requests.post(f"{service.url}/api/v1/models/tmlp/predict", headers=auth(tokens["alice"]), timeout=60,
                      json={"events": events})
    assert r.status_code == 200, r.text
    served = np.array([-1.0 if s is None else s for s in r.json()["scores"]])
    assert len(served) == len(cli) == 400
    np.testing.assert_allclose(served, cli, rtol=1e-5, atol=1e-6)


def test_owner_public_and_other_user(service, published, tokens):
    alice, bob = auth(tokens["alice"]), auth(tokens["bob"])
    assert {m["name"] for m in requests.get(service.url + "/api/v1/models", headers=alice, timeout=30).json()
            ["models"]} == {"kmlp", "tmlp"}
    assert [m["name"] for m in requests.get(service.url + "/api/v1/models", headers=bob, timeout=30).json()
            ["models"]] == ["tmlp"]
    info = requests.get(service.url + "/api/v1/models/kmlp", headers=alice, timeout=30).json()
    assert info["branches"] and info["features"] and info["preproc"]["flat_cut"] and "accuracy" in str(info["metrics"])
    # bob: alice's private model does not exist for him, on every face
    width = len(info["features"])
    for method, path, body in (
            ("GET", "/api/v1/models/kmlp", None), ("GET", "/api/v1/models/kmlp/1", None),
            ("DELETE", "/api/v1/models/kmlp", None), ("DELETE", "/api/v1/models/tmlp", None),
            ("POST", "/api/v1/models/kmlp/predict", {"events": {"x": [1]}}),
            ("POST", "/tfaas/json", {"model": "kmlp", "values": [0.5] * width}),
            ("DELETE", "/tfaas/delete?model=tmlp", None),
            ("GET", "/v2/models/kmlp", None), ("GET", "/v2/models/kmlp/ready", None),
            ("POST", "/v2/models/kmlp/infer", {"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32",
                                                          "data": [0.5] * width}]})):
        r = requests.request(method, service.url + path, headers=bob, json=body, timeout=30)
        assert r.status_code == 404, (method, path, r.status_code, r.text)
        assert "kmlp" in r.text or "tmlp" in r.text
    # the public one works for bob
    r = requests.post(service.url + "/tfaas/json", headers=bob, timeout=30,
                      json={"model": "tmlp", "values": [0.5] * width})
    assert r.status_code == 200 and 0 <= r.json()[0]["probability"] <= 1
    # a name is its first publisher's
    r = requests.post(service.url + "/api/v1/models", headers=bob, timeout=60, data={"name": "tmlp"},
                      files={"file": ("a.tar.gz", tar_gz(published["tmlp"].path))})
    assert r.status_code == 409 and "taken" in r.json()["message"]


def test_every_serving_route_needs_a_token(service, published):
    for method, path in (("GET", "/api/v1/models"), ("POST", "/api/v1/models"), ("GET", "/api/v1/models/tmlp"),
                         ("GET", "/api/v1/models/tmlp/1"), ("DELETE", "/api/v1/models/tmlp"),
                         ("DELETE", "/api/v1/models/tmlp/1"), ("POST", "/api/v1/models/tmlp/predict"),
                         ("POST", "/api/v1/jobs/x/publish"), ("POST", "/tfaas/json"), ("GET", "/tfaas/models"),
                         ("DELETE", "/tfaas/delete?model=tmlp"), ("POST", "/tfaas/upload"), ("GET", "/v2"),
                         ("GET", "/v2/health/live"), ("GET", "/v2/health/ready"), ("GET", "/v2/models/tmlp"),
                         ("GET", "/v2/models/tmlp/ready"), ("POST", "/v2/models/tmlp/infer"),
                         ("GET", "/v2/models/tmlp/versions/1"), ("POST", "/v2/models/tmlp/versions/1/infer")):
        for headers in ({}, {"Authorization": "Bearer not-a-token"}):
            r = requests.request(method, service.url + path, headers=headers, timeout=30)
            assert r.status_code == 401, (method, path, r.status_code)
            if path.startswith("/v2"):
                assert r.json()["error"]
    assert requests.get(service.url + "/api/v1/models/tmlp", timeout=30).status_code == 401


def test_concurrent_requests_are_coalesced_into_fewer_model_calls(service, published, tokens):
    """32 requests sent at once on 32 connections (all sent before any answer is read, so that
    they overlap in the service however fast the model is) are served by far fewer model calls."""
    import http.client
    from urllib.parse import urlsplit

    headers = auth(tokens["alice"])
    width = len(published["tmlp"].feature_names)
    before = requests.get(service.url + "/api/v1/models/tmlp", headers=headers, timeout=30).json()["stats"]
    before = before or {"requests": 0, "calls": 0}
    n = 32
    rng = np.random.default_rng(3)
    rows = rng.random((n, width)).astype(np.float32)
    address = urlsplit(service.url)
    connections = [http.client.HTTPConnection(address.hostname, address.port, timeout=60) for _ in range(n)]
    try:
        for conn in connections:
            conn.connect()
        for conn, row in zip(connections, rows):
            conn.request("POST", "/tfaas/json", body=json.dumps({"model": "tmlp", "values": row.tolist()}),
                         headers={**headers, "Content-Type": "application/json"})
        answers = []
        for conn in connections:
            response = conn.getresponse()
            answers.append((response.status, json.loads(response.read())))
    finally:
        for conn in connections:
            conn.close()
    assert [status for status, _ in answers] == [200] * n, answers
    after = requests.get(service.url + "/api/v1/models/tmlp", headers=headers, timeout=30).json()["stats"]
    requests_made = after["requests"] - before["requests"]
    calls = after["calls"] - before["calls"]
    assert requests_made == n
    assert calls < n / 2, after  # coalesced: far fewer model calls than requests
    assert after["largest_call"] > 1
    # and each request got its own row's score
    expected = published["tmlp"].adapter.predict(rows)
    np.testing.assert_allclose([body[0]["probability"] for _, body in answers], expected, rtol=1e-5, atol=1e-6)


def test_hostile_inputs_get_a_4xx_with_a_reason_while_a_steady_client_is_served(service, published, tokens):
    headers = auth(tokens["alice"])
    artifact = published["tmlp"]
    width = len(artifact.feature_names)
    steady_codes: list[int] = []
    stop = threading.Event()

    def steady():
        while not stop.is_set() and len(steady_codes) < 2000:
            r = requests.post(service.url + "/tfaas/json", headers=headers, timeout=30,
                              json={"model": "tmlp", "values": [0.25] * width})
            steady_codes.append(r.status_code)

    thread = threading.Thread(target=steady)
    thread.start()
    row = [0.5] * width
    v2 = service.url + "/v2/models/tmlp/infer"
    cases = [
        ("/tfaas/json", {"model": "tmlp", "values": [0.5] * (width - 1)}, 400, f"{width} features"),
        ("/tfaas/json", {"model": "tmlp", "values": [row, row[:-1]]}, 400, "as long as the first"),
        ("/tfaas/json", {"model": "tmlp", "values": ["a"] * width}, 400, "number"),
        ("/tfaas/json", {"model": "tmlp", "values": [True] * width}, 400, "true/false"),
        # numpy would read these as 1.5 and 1.0: refused in every row, not only the first
        ("/tfaas/json", {"model": "tmlp", "values": ["1.5"] * width}, 400, "number"),
        ("/tfaas/json", {"model": "tmlp", "values": [row, [True] + row[1:]]}, 400, "true/false"),
        ("/tfaas/json", {"model": "tmlp", "values": [row, row[:-1] + ["0.5"]]}, 400, "number"),
        ("/tfaas/json", {"model": "nosuch", "values": row}, 404, "nosuch"),
        ("/tfaas/json", {"model": "tmlp", "keys": ["x"] * width, "values": row}, 400, "keys"),
        ("/tfaas/json", {"model": "tmlp", "values": []}, 400, "non-empty"),
        ("/tfaas/json", {"model": "tmlp", "values": [10 ** 400] * width}, 400, "number"),
        ("/tfaas/json", {"model": "tmlp", "values": [1e39] * width}, 400, "32-bit"),
        ("/tfaas/json", {"model": "tmlp", "values": [row] * 5001}, 413, "5000"),
        (v2, {"inputs": [{"name": "input", "shape": [1, width + 1], "datatype": "FP32", "data": row}]}, 400,
         "shape"),
        (v2, {"inputs": [{"name": "input", "shape": [2, width], "datatype": "FP32", "data": row}]}, 400,
         "values"),
        (v2, {"inputs": [{"name": "input", "shape": [1, width], "datatype": "BYTES", "data": row}]}, 400,
         "datatype"),
        (v2, {"inputs": []}, 400, "inputs"),
        (v2, {"inputs": [{"name": "input", "shape": [2, width], "datatype": "FP32", "data": [row, [None] + row[1:]]}]},
         400, "null"),
        (v2, {"inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32", "data": row}],
              "outputs": [{"name": "nope"}]}, 400, "nope"),
        (service.url + "/v2/models/nosuch/infer", {"inputs": []}, 404, "nosuch"),
        ("/api/v1/models/tmlp/predict", {"events": {"nJets": [1, 2]}}, 400, "needs branch"),
        ("/api/v1/models/tmlp/predict", {"events": {**{b: [1.0] for b in artifact.contract["branches"]},
                                                    "nJets": [1.5]}}, 400, "int32"),
        ("/api/v1/models/tmlp/predict", {"events": {b: ([[1.0]] if artifact.contract["kinds"][b] == "flat" else [1.0])
                                                    for b in artifact.contract["branches"]}}, 400, "events."),
        ("/api/v1/models/tmlp/predict", {"events": {b: ["x"] for b in artifact.contract["branches"]}}, 400,
         "number"),
        ("/api/v1/models/tmlp/predict", {"rows": []}, 400, "events"),
        ("/api/v1/models/tmlp/predict", {"events": {b: [10 ** 400] if artifact.contract["kinds"][b] == "flat"
                                                    else [[10 ** 400]] for b in artifact.contract["branches"]}},
         400, "number"),
        ("/api/v1/models/tmlp/versions/9/predict", {"events": {}}, 404, ""),
    ]
    try:
        for path, body, status, text in cases:
            url = path if path.startswith("http") else service.url + path
            r = requests.post(url, headers=headers, json=body, timeout=60)
            assert r.status_code == status, (path, body if len(str(body)) < 300 else "...", r.status_code, r.text)
            if text:
                assert text in r.text, (path, r.text)
            if url.startswith(service.url + "/v2"):
                assert r.json()["error"]  # the protocol's error body
        # NaN, which Python's json writes, in a feature row
        r = requests.post(service.url + "/tfaas/json", headers={**headers, "Content-Type": "application/json"},
                          data=json.dumps({"model": "tmlp", "values": [float("nan")] * width}), timeout=30)
        assert r.status_code == 400 and "finite" in r.json()["message"]
        # a body over the size limit
        r = requests.post(service.url + "/tfaas/json", headers={**headers, "Content-Type": "application/json"},
                          data=b"[" + b"0," * (9 << 20) + b"0]", timeout=60)
        assert r.status_code == 413
        # not JSON
        r = requests.post(v2, headers=headers, data=b"{nope", timeout=30)
        assert r.status_code == 400 and r.json()["error"]
    finally:
        stop.set()
        thread.join(60)
    assert steady_codes and set(steady_codes) == {200}, set(steady_codes)


def test_bad_uploads_are_refused_with_a_reason(service, tokens, tmp_path):
    headers = auth(tokens["alice"])
    url = service.url + "/api/v1/models"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("../evil.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    r = requests.post(url, headers=headers, data={"name": "evil"}, files={"file": ("a.tar.gz", buf.getvalue())},
                      timeout=30)
    assert r.status_code == 400 and r.json()["reason"] == "unsafe_archive" and ".." in r.json()["message"]
    r = requests.post(url, headers=headers, data={"name": "junk"}, files={"file": ("a.tar.gz", b"not a tar")},
                      timeout=30)
    assert r.status_code == 400 and "tar.gz" in r.json()["message"]
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hi")
    r = requests.post(url, headers=headers, data={"name": "nomodel"},
                      files={"file": ("a.tar.gz", tar_gz(tmp_path / "empty", "x"))}, timeout=30)
    assert r.status_code == 400 and "params.json" in r.json()["message"]
    r = requests.post(url, headers=headers, data={"name": "../x"},
                      files={"file": ("a.tar.gz", tar_gz(tmp_path / "empty", "x"))}, timeout=30)
    assert r.status_code == 400 and "valid model name" in r.json()["message"]
    (tmp_path / "params.json").write_text(json.dumps({"model": "model.pb"}))
    r = requests.post(url, headers=headers, data={"name": "frozen"}, timeout=30,
                      files={"model": ("model.keras", b"garbage"), "params": ("params.json", b'{"x": 1}')})
    assert r.status_code == 400 and "Keras" in r.json()["message"]
    listed = requests.get(url, headers=headers, timeout=30).json()["models"]
    assert not {m["name"] for m in listed} & {"evil", "junk", "nomodel", "frozen"}


def test_tfaas_style_keras_and_saved_model_uploads(service, served_artifacts, tokens, tmp_path):
    artifact = served_artifacts["keras"]
    headers = auth(tokens["alice"])
    features = artifact.feature_names
    params = {"name": "kfile", "features": features}
    files = {"model": ("model.keras", (artifact.path / "model.keras").read_bytes()),
             "params": ("params.json", json.dumps(params).encode()), "labels": ("labels.txt", b"bkg\nsig\n")}
    r = requests.post(service.url + "/tfaas/upload", headers=headers, data={"name": "kfile"}, files=files, timeout=120)
    assert r.status_code == 201, r.text
    arrays = raw_events(artifact, served_artifacts["fresh"])
    X, _ = artifact.features({b: arrays[b] for b in arrays.fields})
    expected = artifact.adapter.predict(X)
    r = requests.post(service.url + "/tfaas/json", headers=headers, timeout=60,
                      json={"model": "kfile", "keys": features, "values": X.tolist()})
    assert r.status_code == 200, r.text
    assert r.json()[0][0]["label"] == "sig"
    np.testing.assert_allclose([row[0]["probability"] for row in r.json()], expected, rtol=1e-5, atol=1e-6)
    names = [m["name"] for m in requests.get(service.url + "/tfaas/models", headers=headers, timeout=30).json()]
    assert "kfile" in names
    r = requests.delete(service.url + "/tfaas/delete?model=kfile", headers=headers, timeout=30)
    assert r.status_code == 200
    assert requests.get(service.url + "/api/v1/models/kfile", headers=headers, timeout=30).status_code == 404
    # the SavedModel the Keras artifact exports for serving (TensorFlow may fail to export one: recorded)
    need((artifact.path / "saved_model").is_dir(), f"no SavedModel export: {artifact.contract['model']}")
    files = {"model": ("saved_model.tar.gz", tar_gz(artifact.path / "saved_model", "saved_model")),
             "params": ("params.json", json.dumps({"features": features}).encode())}
    r = requests.post(service.url + "/api/v1/models", headers=headers, data={"name": "ksaved"}, files=files,
                      timeout=120)
    assert r.status_code == 201, r.text
    r = requests.post(service.url + "/v2/models/ksaved/infer", headers=headers, timeout=60, json={
        "inputs": [{"name": "input", "shape": list(X.shape), "datatype": "FP32", "data": X.ravel().tolist()}]})
    assert r.status_code == 200, r.text
    np.testing.assert_allclose(r.json()["outputs"][0]["data"], expected, rtol=1e-5, atol=1e-6)


def test_versions_and_delete_evicts(service, served_artifacts, tokens):
    headers = auth(tokens["alice"])
    for expected_version in (1, 2):
        r = requests.post(service.url + "/api/v1/models", headers=headers, data={"name": "vmlp"}, timeout=120,
                          files={"file": ("a.tar.gz", tar_gz(served_artifacts["torch"].path))})
        assert r.status_code == 201 and r.json()["version"] == expected_version
    info = requests.get(service.url + "/api/v1/models/vmlp", headers=headers, timeout=30).json()
    assert info["version"] == 2 and info["versions"] == [1, 2] and info["public"] is False
    width = len(info["features"])
    r = requests.post(service.url + "/v2/models/vmlp/versions/1/infer", headers=headers, timeout=60, json={
        "inputs": [{"name": "input", "shape": [1, width], "datatype": "FP32", "data": [0.5] * width}]})
    assert r.status_code == 200 and r.json()["model_version"] == "1"
    assert requests.get(service.url + "/api/v1/models/vmlp/1", headers=headers, timeout=30).json()["loaded"]
    assert requests.delete(service.url + "/api/v1/models/vmlp/1", headers=headers, timeout=30).status_code == 204
    assert requests.get(service.url + "/api/v1/models/vmlp/1", headers=headers, timeout=30).status_code == 404
    assert requests.delete(service.url + "/api/v1/models/vmlp", headers=headers, timeout=30).status_code == 204
    assert requests.get(service.url + "/api/v1/models/vmlp", headers=headers, timeout=30).status_code == 404


@pytest.mark.slow
def test_jobs_publish_their_artifact(service, tokens, served_artifacts):
    """A job submitted with 'publish' is published when it succeeds; a succeeded job can be published
    again under another name; another user's job cannot."""
    import time

    from support import torch_model

    alice, bob = auth(tokens["alice"]), auth(tokens["bob"])
    folder = served_artifacts["folder"]
    files = {"file": ("inputs.tar.gz", tar_gz(folder, "inputs"))}
    up = requests.post(service.url + "/api/v1/uploads", headers=alice, files=files, timeout=120)
    assert up.status_code == 201, up.text
    base = f"{up.json()['path']}/inputs"
    request = {"files": [f"{base}/sig.root", f"{base}/bkg.root"], "labels": [1, 0], "model": torch_model(8),
               "params": {"chunk_size": 1500, "epochs": 1, "batch_size": 256}}
    bad = requests.post(service.url + "/api/v1/jobs", headers=alice, json={**request, "publish": {"name": "../x"}},
                        timeout=60)
    assert bad.status_code == 400 and "valid model name" in bad.text
    job = requests.post(service.url + "/api/v1/jobs", headers=alice, timeout=60,
                        json={**request, "publish": {"name": "jobmlp", "public": False}})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        r = requests.get(service.url + "/api/v1/models/jobmlp", headers=alice, timeout=30)
        if r.status_code == 200:
            break
        status = requests.get(f"{service.url}/api/v1/jobs/{job_id}", headers=alice, timeout=30).json()
        assert status["status"] not in ("failed", "cancelled"), status
        time.sleep(1)
    assert r.status_code == 200 and r.json()["source"] == {"job": job_id}
    assert requests.post(f"{service.url}/api/v1/jobs/{job_id}/publish", headers=bob, json={"name": "stolen"},
                         timeout=60).status_code == 404
    again = requests.post(f"{service.url}/api/v1/jobs/{job_id}/publish", headers=alice, timeout=120,
                          json={"name": "jobmlp2", "public": True})
    assert again.status_code == 201 and again.json()["public"] is True
    assert requests.get(service.url + "/api/v1/models/jobmlp2", headers=bob, timeout=30).status_code == 200
    assert requests.get(service.url + "/api/v1/models/jobmlp", headers=bob, timeout=30).status_code == 404


def test_serving_only_service(oidc_issuer, service, published, tokens, tmp_path):
    """``--models DIR --no-jobs``: the registry is served, jobs and uploads are not."""
    svc = ServiceProcess(oidc_issuer.url, tmp_path / "data", audience=AUD, models=service.data_dir / "models",
                         env={"MLAAS4HEP_SERVE_NO_JOBS": "1"})
    try:
        headers = auth(tokens["alice"])
        r = requests.get(svc.url + "/api/v1/jobs", headers=headers, timeout=30)
        assert r.status_code == 404 and "--no-jobs" in r.json()["message"]
        assert "tmlp" in [m["name"] for m in requests.get(svc.url + "/api/v1/models", headers=headers,
                                                          timeout=30).json()["models"]]
        width = len(published["tmlp"].feature_names)
        r = requests.post(svc.url + "/tfaas/json", headers=headers, timeout=60,
                          json={"model": "tmlp", "values": [0.5] * width})
        assert r.status_code == 200
        expected = published["tmlp"].adapter.predict(np.full((1, width), 0.5, np.float32))
        assert abs(r.json()[0]["probability"] - float(expected[0])) < 1e-6
    finally:
        svc.stop()


def test_client_predict_and_predict_remote_equal_the_local_predict(service, published, served_artifacts, tokens,
                                                                    tmp_path, monkeypatch, capsys):
    from mlaas4hep.cli import main
    from mlaas4hep.client import Client

    artifact = published["kmlp"]
    arrays = raw_events(artifact, served_artifacts["fresh"], stop=None)
    client = Client(service.url + "/api/v1", token=tokens["alice"])
    assert "kmlp" in [m["name"] for m in client.models()]
    remote = client.predict("kmlp", {b: arrays[b] for b in arrays.fields})
    local = artifact.predict({b: arrays[b] for b in arrays.fields})
    assert remote.dtype == np.float32 and remote.shape == local.shape == (400,)
    np.testing.assert_array_equal(np.isnan(remote), np.isnan(local))
    np.testing.assert_allclose(remote, local, rtol=1e-5, atol=1e-6)

    monkeypatch.setenv("MLAAS4HEP_TOKEN", tokens["alice"])
    local_out, remote_out = tmp_path / "local.root", tmp_path / "remote.root"
    assert main(["predict", "--artifact", str(artifact.path), "--files", str(served_artifacts["fresh"]),
                 "--out", str(local_out)]) == 0
    assert main(["predict", "--remote", service.url, "--model", "kmlp", "--files",
                 str(served_artifacts["fresh"]), "--out", str(remote_out)]) == 0
    with uproot.open(local_out) as a, uproot.open(remote_out) as b:
        ta, tb = a[artifact.tree], b[artifact.tree]
        assert set(ta.keys()) == set(tb.keys())
        for key in ta.keys():
            np.testing.assert_allclose(tb[key].array(library="np"), ta[key].array(library="np"), rtol=1e-5,
                                       atol=1e-6)
    # another user's private model: the command says so, nothing is written
    monkeypatch.setenv("MLAAS4HEP_TOKEN", tokens["bob"])
    code = main(["predict", "--remote", service.url + "/api/v1", "--model", "kmlp", "--files",
                 str(served_artifacts["fresh"]), "--out", str(tmp_path / "bob.root")])
    assert code != 0 and "no model 'kmlp'" in capsys.readouterr().err
    assert not (tmp_path / "bob.root").exists()
