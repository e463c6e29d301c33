"""The prediction routes' fast path (``mlaas4hep.serving.fastpath``) answers every request exactly
as FastAPI's own routes of the same app: the same status, body and headers for good requests and
for each kind of bad one (token, model, body, shape, numbers, limits), with tokens of the real
issuer and a real published model. The same requests go once through the service's app (fast
path) and once through FastAPI's ``__call__`` of that same app (its middleware, routing and
dependencies), so that the comparison cannot drift from what FastAPI does."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from fastapi import FastAPI

AUD = "mlaas4hep"


@pytest.fixture(scope="module")
def clients(oidc_issuer, served_artifacts, tmp_path_factory):
    from starlette.testclient import TestClient

    from mlaas4hep.service.app import create_app
    from mlaas4hep.service.config import ServeConfig

    folder = tmp_path_factory.mktemp("fastpath")
    app = create_app(ServeConfig(issuer=oidc_issuer.url, audience=AUD, data_dir=str(folder / "data"), no_jobs=True,
                                 max_predict_rows=50))

    async def routed(scope, receive, send):  # the same app without its fast path
        await FastAPI.__call__(app, scope, receive, send)

    alice, bob = oidc_issuer.token("alice"), oidc_issuer.token("bob")
    with TestClient(app) as fast:  # the service starts here (lifespan); `routed` shares it
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(served_artifacts["torch"].path, arcname="artifact")
        r = fast.post("/api/v1/models", headers={"Authorization": f"Bearer {alice}"},
                      data={"name": "tmlp", "public": "false"}, files={"file": ("a.tar.gz", buffer.getvalue())})
        assert r.status_code == 201, r.text
        yield fast, TestClient(routed), {"alice": alice, "bob": bob}, served_artifacts["torch"]


def _same(fast, routed, method: str, path: str, **kwargs) -> tuple[int, bytes]:
    a = fast.request(method, path, **kwargs)
    b = routed.request(method, path, **kwargs)
    assert (a.status_code, a.content) == (b.status_code, b.content), (path, a.text[:300], b.text[:300])
    for header in ("content-type", "content-length", "www-authenticate", "retry-after"):
        assert a.headers.get(header) == b.headers.get(header), (path, header)
    return a.status_code, a.content


def test_the_fast_path_answers_as_fastapis_routes(clients, monkeypatch):
    from mlaas4hep.serving import fastpath

    fast, routed, tokens, artifact = clients
    taken = []
    predict = fastpath._predict

    async def counted(*args):
        taken.append(args[1]["path"])
        await predict(*args)

    monkeypatch.setattr(fastpath, "_predict", counted)
    alice = {"Authorization": f"Bearer {tokens['alice']}"}
    width = len(artifact.feature_names)
    row = [0.25] * width
    keys = list(artifact.feature_names)
    good = {"inputs": [{"name": "input", "shape": [2, width], "datatype": "FP32", "data": [row, [0.5] * width]}],
            "id": "r1"}
    cases = [
        # good requests
        ("/tfaas/json", alice, {"model": "tmlp", "values": row}, 200),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [row, [0.5] * width], "version": 1}, 200),
        ("/tfaas/json", alice, {"model": "tmlp", "keys": keys[::-1], "values": row[::-1]}, 200),
        ("/tfaas/json", alice, {"model": "tmlp", "values": row, "version": "1"}, 200),  # pydantic's coercion
        ("/v2/models/tmlp/infer", alice, good, 200),
        ("/v2/models/tmlp/versions/1/infer", alice, good, 200),
        # tokens
        ("/tfaas/json", {}, {"model": "tmlp", "values": row}, 401),
        ("/tfaas/json", {"Authorization": "Bearer not-a-token"}, {"model": "tmlp", "values": row}, 401),
        ("/tfaas/json", {"Authorization": "Basic abc"}, {"model": "tmlp", "values": row}, 401),
        ("/v2/models/tmlp/infer", {"Authorization": "Bearer not-a-token"}, good, 401),
        # models: unknown, another user's private one, a version that does not exist
        ("/tfaas/json", alice, {"model": "nosuch", "values": row}, 404),
        ("/tfaas/json", {"Authorization": f"Bearer {tokens['bob']}"}, {"model": "tmlp", "values": row}, 404),
        ("/v2/models/tmlp/versions/9/infer", alice, good, 404),
        ("/v2/models/tmlp/versions/x/infer", alice, good, 404),
        ("/v2/models/nosuch/infer", alice, {"inputs": []}, 404),
        # bodies and values
        ("/tfaas/json", alice, {"values": row}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": row[:-1]}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [row, row[:-1]]}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": ["a"] * width}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [True] * width}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [1e39] * width}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [1.0] * (width - 1) + [None]}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": []}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "keys": ["x"] * width, "values": row}, 400),
        ("/tfaas/json", alice, {"model": "tmlp", "values": [row] * 51}, 413),  # max_predict_rows 50
        ("/tfaas/json", alice, [1, 2], 400),
        ("/v2/models/tmlp/infer", alice, {"inputs": []}, 400),
        ("/v2/models/tmlp/infer", alice, {"inputs": [{**good["inputs"][0], "shape": [1, width]}]}, 400),
        ("/v2/models/tmlp/infer", alice, {"inputs": [{**good["inputs"][0], "datatype": "BYTES"}]}, 400),
        ("/v2/models/tmlp/infer", alice, {**good, "outputs": [{"name": "nope"}]}, 400),
    ]
    statuses = []
    for path, headers, body, status in cases:
        got, content = _same(fast, routed, "POST", path, headers=headers, json=body)
        assert got == status, (path, body, content[:300])
        statuses.append(got)
        if status == 200 and path == "/tfaas/json":
            answer = json.loads(content)
            assert isinstance(answer, list) and answer, answer
    # not JSON; NaN (Python's json writes it); binary tensors; a Content-Length over the limit
    text = {**alice, "Content-Type": "application/json"}
    assert _same(fast, routed, "POST", "/v2/models/tmlp/infer", headers=alice, content=b"{nope")[0] == 400
    assert _same(fast, routed, "POST", "/tfaas/json", headers=text,
                 content=json.dumps({"model": "tmlp", "values": [float("nan")] * width}))[0] == 400
    assert _same(fast, routed, "POST", "/v2/models/tmlp/infer", headers={**alice, "Inference-Header-Content-Length":
                                                                          "10"}, json=good)[0] == 400
    assert _same(fast, routed, "POST", "/tfaas/json", headers={**text, "Content-Length": str(17 << 20)},
                 content=b"{}")[0] == 413
    # every request above went through the fast path when sent to the service's app
    assert len(taken) == len(cases) + 4
    # other methods and paths are FastAPI's: 405 with Allow, a trailing slash, a GET of a model
    taken.clear()
    assert _same(fast, routed, "GET", "/tfaas/json", headers=alice)[0] == 405
    assert _same(fast, routed, "GET", "/v2/models/tmlp", headers=alice)[0] == 200
    assert _same(fast, routed, "POST", "/v2/models/tmlp/infer/x", headers=alice, json=good)[0] == 404
    assert taken == []
