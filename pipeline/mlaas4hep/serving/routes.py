"""The serving routes of ``mlaas4hep serve``: the registry under ``/api/v1/models`` (added to the
jobs API's router, so that they are in its OpenAPI document), publishing a job's artifact, raw-event
predictions, and the TFaaS (``/tfaas``) and Open Inference Protocol v2 (``/v2``) faces. Every route
needs a token; a model another user has not made public is answered 404, like one that does not
exist."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.formparsers import MultiPartException

from .._version import __version__
from ..service import json_codec
from ..service.app import CurrentUser, json_body, upload_limits
from ..service.tokens import User
from ..errors import MLaaS4HEPError
from .batcher import BatcherClosed
from .protocol import (EventScores, EventsRequest, InferenceRequest, InferenceResponse, LiveResponse, ModelInfo,
                       ModelList, ModelMetadata, ModelReady, PublishRequest, ReadyResponse, ResponseOutput,
                       ServerMetadata, TensorMetadata, TFaaSRequest)
from .registry import BadInput, Entry, ModelRegistry, ServedModel, TooLarge, _numbers, check_model_name

log = logging.getLogger("mlaas4hep.serving")
INPUT = "input"  # the v2 input tensor's name
OUTPUT = "scores"  # the v2 output tensor's name


class Unavailable(MLaaS4HEPError):
    """The model went away while the request waited (503: try again)."""

    http_status = 503


class ModelService:
    """The registry of one ``mlaas4hep serve``, and the watcher that publishes jobs which asked to
    be published when they succeed."""

    def __init__(self, config, manager=None):
        self.config = config
        root = Path(config.models_dir or Path(config.data_dir) / "models").expanduser().resolve()
        self.registry = ModelRegistry(root, config.max_loaded_models, config.batch_max_size, config.batch_max_delay,
                                      config.max_loaded_bytes, config.model_threads)
        self.manager = manager
        self._stop = threading.Event()
        self._watcher = None
        if manager is not None:
            self._watcher = threading.Thread(target=self._watch, name="publish-on-success", daemon=True)
            self._watcher.start()

    # -- publishing ----------------------------------------------------------------------------

    def publish_job(self, owner: str, job_id: str, request: PublishRequest) -> Entry:
        from ..jobs import JobStateError

        info = self.manager.get(job_id, owner)  # 404 for another user's job
        if info.status != "succeeded":
            raise JobStateError(f"job {job_id} is {info.status}; only a succeeded job's artifact can be published")
        folder = Path(self.manager.store.get(job_id)["folder"]) / "artifact"
        if not (folder / "mlaas4hep.json").is_file():
            raise JobStateError(f"job {job_id} has no artifact")
        return self.registry.publish(owner, request.name, folder, public=request.public, source={"job": job_id})

    def publish_when_done(self, owner: str, job_id: str, request: PublishRequest) -> None:
        self.registry.add_pending(job_id, owner, request.name, request.public)

    def check_publish(self, owner: str, publish: Any) -> PublishRequest:
        request = PublishRequest.model_validate(publish)
        check_model_name(request.name, "publish.name")
        holder = self.registry.owner_of(request.name)
        if holder is not None and holder != owner:
            from .registry import ModelConflict

            raise ModelConflict(f"the model name {request.name!r} is taken; choose another", where="publish.name")
        return request

    def _watch(self) -> None:
        while not self._stop.wait(1.0):
            try:
                self.poll_pending()
            except Exception:  # noqa: BLE001 - the watcher keeps going; logged
                log.exception("publishing finished jobs")

    def poll_pending(self) -> None:
        for job_id, want in self.registry.pending():
            row = self.manager.store.get(job_id)
            if row is None or row["status"] in ("failed", "cancelled"):
                self.registry.drop_pending(job_id)
                continue
            if row["status"] != "succeeded":
                continue
            try:
                self.publish_job(want["owner"], job_id, PublishRequest(name=want["name"], public=want["public"]))
                log.info("job %s published as %s", job_id, want["name"])
            except MLaaS4HEPError as err:
                log.warning("job %s could not be published as %s: %s", job_id, want["name"], err)
            self.registry.drop_pending(job_id)

    def close(self) -> None:
        self._stop.set()
        if self._watcher is not None:
            self._watcher.join(5)
        self.registry.close()

    # -- predictions ---------------------------------------------------------------------------

    def check_rows(self, n: int) -> None:
        if n > self.config.max_predict_rows:
            raise TooLarge(f"{n} rows in one request; at most {self.config.max_predict_rows} are accepted "
                           "(send several requests)")

    async def scores(self, served: ServedModel, X: np.ndarray) -> np.ndarray:
        self.check_rows(len(X))
        try:
            return await served.batcher.scores(X)
        except BatcherClosed as err:
            raise Unavailable(f"{err} (unloaded or deleted meanwhile); send the request again") from None


async def loaded(registry: ModelRegistry, entry: Entry) -> ServedModel:
    """The model in memory (no thread hop), else loaded in a worker thread."""
    return registry.loaded_model(entry) or await run_in_threadpool(registry.model, entry)


def _service(request: Request):
    return request.app.state.service


def _models(request: Request) -> ModelService:
    return request.app.state.service.serving


def info(registry: ModelRegistry, entry: Entry, user: str) -> ModelInfo:
    versions = [e for e in registry._versions(entry.name)]
    visible = [v for v in versions if registry.visible(registry._entry(entry.name, v), user)]
    return ModelInfo.model_validate(registry.describe(entry, visible))


def add_model_routes(api: APIRouter) -> None:
    """The registry's routes, on the service's ``/api/v1`` router."""

    @api.get("/models", response_model=ModelList)
    def list_models(request: Request, user: CurrentUser) -> ModelList:
        return ModelList(models=[ModelInfo.model_validate(m) for m in _models(request).registry.list(user.id)])

    @api.post("/models", response_model=ModelInfo, status_code=201)
    async def upload_model(request: Request, user: CurrentUser) -> ModelInfo:
        return await receive_model(request, user)

    @api.get("/models/{name}", response_model=ModelInfo)
    def get_model(name: str, request: Request, user: CurrentUser) -> ModelInfo:
        registry = _models(request).registry
        return info(registry, registry.resolve(user.id, name), user.id)

    @api.get("/models/{name}/{version}", response_model=ModelInfo)
    def get_model_version(name: str, version: str, request: Request, user: CurrentUser) -> ModelInfo:
        registry = _models(request).registry
        return info(registry, registry.resolve(user.id, name, version), user.id)

    @api.delete("/models/{name}", status_code=204)
    def delete_model(name: str, request: Request, user: CurrentUser) -> Response:
        _models(request).registry.delete(user.id, name)
        return Response(status_code=204)

    @api.delete("/models/{name}/{version}", status_code=204)
    def delete_model_version(name: str, version: str, request: Request, user: CurrentUser) -> Response:
        _models(request).registry.delete(user.id, name, version)
        return Response(status_code=204)

    @api.post("/models/{name}/predict", response_model=EventScores)
    async def predict_events(name: str, request: Request, user: CurrentUser) -> EventScores:
        body = EventsRequest.model_validate(await json_body(request))
        models = _models(request)
        entry = models.registry.resolve(user.id, name, body.version)
        served = await loaded(models.registry, entry)
        n = max((len(v) for v in body.events.values()), default=0)
        models.check_rows(n)
        X, mask = await run_in_threadpool(served.events, body.events)
        scores = await models.scores(served, X) if len(X) else np.empty((0,), np.float32)
        out: list[Any] = [None] * len(mask)
        for i, s in zip(np.flatnonzero(mask).tolist(), scores.tolist()):
            out[i] = s
        return EventScores(scores=out, passed=mask.tolist(), classes=served.classes, model=entry.name,
                           version=entry.version)

    @api.post("/jobs/{job_id}/publish", response_model=ModelInfo, status_code=201)
    async def publish_job(job_id: str, request: Request, user: CurrentUser) -> ModelInfo:
        body = PublishRequest.model_validate(await json_body(request))
        models = _models(request)
        entry = await run_in_threadpool(models.publish_job, user.id, job_id, body)
        return info(models.registry, entry, user.id)


async def receive_model(request: Request, user) -> ModelInfo:
    """A model upload: multipart fields ``name``, ``public`` (true/false) and either ``file`` (a
    tar.gz of an artifact folder or of a TFaaS-style folder) or, the TFaaS way, ``model`` (a Keras
    file, or a tar.gz of a SavedModel folder), ``params`` (params.json) and ``labels`` (labels.txt)."""
    service = _service(request)
    models = _models(request)
    await upload_limits(request, service, user)
    try:
        form = await request.form(max_files=4, max_fields=8)
    except (MultiPartException, StarletteHTTPException, ValueError) as err:
        raise MLaaS4HEPError(f"the multipart body cannot be read: {getattr(err, 'detail', err)}") from None
    try:
        name = form.get("name")
        if not isinstance(name, str):
            raise MLaaS4HEPError("no model name: send it in the multipart field 'name'", where="name")
        check_model_name(name)
        public = str(form.get("public") or "false").strip().lower()
        if public not in ("true", "false", "1", "0", "yes", "no"):
            raise MLaaS4HEPError(f"public must be true or false, got {public!r}", where="public")
        public_flag = public in ("true", "1", "yes")
        files = {k: v for k, v in form.items() if isinstance(v, UploadFile)}
        config = service.config

        def publish() -> Entry:
            with service.user_lock(user):
                left = service.check_disk(user)
                limit = min(config.max_unpacked_bytes, left)
                if "file" in files:
                    return models.registry.publish_archive(user.id, name, files["file"].file, public=public_flag,
                                                           max_members=config.max_archive_members, max_bytes=limit,
                                                           source={"upload": files["file"].filename or "file"})
                if "model" in files and "params" in files:
                    return _publish_parts(models.registry, user.id, name, files, public_flag,
                                          config.max_archive_members, limit)
                raise MLaaS4HEPError("send the model as a tar.gz in the field 'file', or a Keras file (or a tar.gz "
                                     "of a SavedModel) in 'model' with its params.json in 'params'", where="upload")

        entry = await run_in_threadpool(publish)
        return info(models.registry, entry, user.id)
    finally:
        await form.close()


def _publish_parts(registry: ModelRegistry, owner: str, name: str, files: dict[str, UploadFile], public: bool,
                   max_members: int, max_bytes: int) -> Entry:
    """TFaaS's upload: model + params (+ labels) as separate files."""
    import json

    from ..service.archive import unpack_tar_gz
    from .registry import BadModel

    with tempfile.TemporaryDirectory(dir=registry.root, prefix=".parts-") as tmp:
        folder = Path(tmp) / "model"
        folder.mkdir()
        params_raw = files["params"].file.read(1 << 20)
        try:
            params = json.loads(params_raw)
        except (ValueError, UnicodeDecodeError) as err:
            raise BadModel(f"params.json is not valid JSON: {err}", where="params") from None
        if not isinstance(params, dict):
            raise BadModel("params.json must be an object", where="params")
        model = files["model"]
        filename = Path(model.filename or "model.keras").name
        head = model.file.read(2)
        model.file.seek(0)
        if head == b"\x1f\x8b":  # a tar.gz: a SavedModel folder
            unpack_tar_gz(model.file, folder / "saved", max_members=max_members, max_bytes=max_bytes)
            inner = [p for p in (folder / "saved").iterdir()]
            target = inner[0] if len(inner) == 1 and inner[0].is_dir() else folder / "saved"
            params["model"] = str(target.relative_to(folder))
        else:
            if not filename.endswith((".keras", ".h5")):
                raise BadModel(f"the model file {filename!r} is neither a Keras file (.keras, .h5) nor a tar.gz of "
                               "a SavedModel folder", where="model")
            with open(folder / filename, "wb") as out:
                shutil.copyfileobj(model.file, out)
            params["model"] = filename
        if "labels" in files:
            with open(folder / "labels.txt", "wb") as out:
                shutil.copyfileobj(files["labels"].file, out)
            params["labels"] = "labels.txt"
        else:
            params.pop("labels", None)
        (folder / "params.json").write_text(json.dumps(params, indent=1))
        return registry.publish(owner, name, folder, public=public, source={"upload": filename})


# -- TFaaS ---------------------------------------------------------------------------------------


def tfaas_router() -> APIRouter:
    router = APIRouter(prefix="/tfaas", include_in_schema=False)

    @router.post("/json")
    async def tfaas_json(request: Request, user: CurrentUser) -> Response:
        """TFaaS's predictions (answered by :mod:`.fastpath` when the service runs in ServiceApp)."""
        answer = await tfaas_predict(_models(request), user, await json_body(request))
        return Response(answer, media_type="application/json")

    @router.get("/models")
    def tfaas_models(request: Request, user: CurrentUser) -> list[dict[str, Any]]:
        return [{"name": m["name"], "version": m["version"], "model": m.get("framework"),
                 "features": m["features"], "labels": m.get("classes"), "public": m["public"]}
                for m in _models(request).registry.list(user.id)]

    @router.delete("/delete")
    def tfaas_delete(request: Request, user: CurrentUser, model: str | None = None) -> dict[str, str]:
        if not model:
            raise MLaaS4HEPError("name the model: /tfaas/delete?model=NAME", where="model")
        _models(request).registry.delete(user.id, model)
        return {"deleted": model}

    @router.post("/upload", status_code=201, response_model=ModelInfo)
    async def tfaas_upload(request: Request, user: CurrentUser) -> ModelInfo:
        return await receive_model(request, user)

    return router


async def tfaas_predict(models: ModelService, user: User, body: Any) -> bytes:
    """TFaaS's predictions: already normalised rows in (``body``, the request's JSON value), per
    row a list of {label, probability} out (a flat list for one row), as JSON bytes."""
    request = TFaaSRequest.model_validate(body)
    entry = models.registry.resolve(user.id, request.model, request.version)
    served = await loaded(models.registry, entry)
    X = served.rows(request.values, request.keys)
    scores = await models.scores(served, X)
    rows = [_labelled(served.classes, s) for s in scores.tolist()]
    single = not isinstance(request.values[0], list)
    # encoded here (the hottest route): FastAPI's generic encoder walks every value again
    return json_codec.dumps(rows[0] if single else rows)


def _labelled(classes: list[str], score: float | list[float]) -> list[dict[str, Any]]:
    """TFaaS's answer for one row (the shape of :class:`.protocol.TFaaSScore`)."""
    if isinstance(score, list):
        return [{"label": c, "probability": p} for c, p in zip(classes, score)]
    return [{"label": classes[-1] if classes else "1", "probability": score}]


# -- Open Inference Protocol v2 ------------------------------------------------------------------

_FLOATS = {"FP32", "FP64", "FP16"}
_INTS = {"INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64"}


def v2_router() -> APIRouter:
    router = APIRouter(prefix="/v2", include_in_schema=False)

    @router.get("", response_model=ServerMetadata)
    def server_metadata(user: CurrentUser) -> ServerMetadata:
        return ServerMetadata(name="mlaas4hep", version=__version__, extensions=[])

    @router.get("/health/live", response_model=LiveResponse)
    def live(user: CurrentUser) -> LiveResponse:
        return LiveResponse(live=True)

    @router.get("/health/ready", response_model=ReadyResponse)
    def ready(request: Request, user: CurrentUser) -> ReadyResponse:
        return ReadyResponse(ready=_models(request).registry.root.is_dir())

    async def metadata(request: Request, user, name: str, version: str | None) -> ModelMetadata:
        registry = _models(request).registry
        entry = registry.resolve(user.id, name, version)
        meta = registry.describe(entry)
        n_features = len(meta["features"])
        served = None
        if not n_features:  # a TFaaS-style model without feature names: its width from the model
            served = await run_in_threadpool(registry.model, entry)
            n_features = served.n_features
        classes = meta.get("classes") or (served.classes if served else ["0", "1"])
        out_shape = [-1] if len(classes) <= 2 else [-1, len(classes)]
        visible = [str(v) for v in registry._versions(name) if registry.visible(registry._entry(name, v), user.id)]
        return ModelMetadata(name=name, versions=visible, platform=f"mlaas4hep_{meta.get('framework') or 'model'}",
                             inputs=[TensorMetadata(name=INPUT, datatype="FP32", shape=[-1, n_features])],
                             outputs=[TensorMetadata(name=OUTPUT, datatype="FP32", shape=out_shape)],
                             parameters={"features": meta["features"], "classes": classes,
                                         "version": str(entry.version)})

    @router.get("/models/{name}", response_model=ModelMetadata)
    async def model_metadata(name: str, request: Request, user: CurrentUser) -> ModelMetadata:
        return await metadata(request, user, name, None)

    @router.get("/models/{name}/versions/{version}", response_model=ModelMetadata)
    async def model_version_metadata(name: str, version: str, request: Request, user: CurrentUser) -> ModelMetadata:
        return await metadata(request, user, name, version)

    async def model_ready(request: Request, user, name: str, version: str | None) -> ModelReady:
        registry = _models(request).registry
        entry = registry.resolve(user.id, name, version)
        await run_in_threadpool(registry.model, entry)  # ready = loadable; it is loaded now
        return ModelReady(name=name, ready=True)

    @router.get("/models/{name}/ready", response_model=ModelReady)
    async def ready_model(name: str, request: Request, user: CurrentUser) -> ModelReady:
        return await model_ready(request, user, name, None)

    @router.get("/models/{name}/versions/{version}/ready", response_model=ModelReady)
    async def ready_model_version(name: str, version: str, request: Request, user: CurrentUser) -> ModelReady:
        return await model_ready(request, user, name, version)

    async def infer(request: Request, user, name: str, version: str | None) -> Response:
        answer = await v2_infer(_models(request), user, name, version,
                                bool(request.headers.get("inference-header-content-length")),
                                lambda: json_body(request))
        return Response(answer, media_type="application/json")

    @router.post("/models/{name}/infer", response_model=InferenceResponse)
    async def infer_latest(name: str, request: Request, user: CurrentUser) -> Response:
        return await infer(request, user, name, None)

    @router.post("/models/{name}/versions/{version}/infer", response_model=InferenceResponse)
    async def infer_version(name: str, version: str, request: Request, user: CurrentUser) -> Response:
        return await infer(request, user, name, version)

    return router


async def v2_infer(models: ModelService, user: User, name: str, version: str | None, binary: bool,
                   read_body: Callable[[], Awaitable[Any]]) -> bytes:
    """The Open Inference Protocol's ``infer``: the JSON answer. ``binary``: the request has an
    Inference-Header-Content-Length (binary tensors, refused); ``read_body`` gives the request's
    JSON value, read only once the model is known (an unknown model answers 404 first)."""
    if binary:
        raise MLaaS4HEPError("binary tensor data is not accepted; send the tensors as JSON "
                             "(tritonclient: binary_data=False)", where="Inference-Header-Content-Length")
    entry = models.registry.resolve(user.id, name, version)
    body = InferenceRequest.model_validate(await read_body())
    served = await loaded(models.registry, entry)
    X = _tensor(body, served)
    if body.outputs:
        unknown = [o.name for o in body.outputs if o.name != OUTPUT]
        if unknown:
            raise BadInput(f"no output {unknown[0]!r}; the model's output is {OUTPUT!r}", where="outputs")
    scores = await models.scores(served, X)
    answer = InferenceResponse(model_name=name, model_version=str(entry.version), id=body.id, outputs=[
        ResponseOutput(name=OUTPUT, shape=list(scores.shape), datatype="FP32", data=scores.reshape(-1).tolist())])
    # serialised once by pydantic, not dumped, validated and encoded again by FastAPI
    return answer.model_dump_json().encode()


def _tensor(body: InferenceRequest, served: ServedModel) -> np.ndarray:
    """The one input tensor as float32 rows ``[n, n_features]``, checked against its shape."""
    if len(body.inputs) != 1:
        raise BadInput(f"the model takes one input tensor ({INPUT!r}), got {len(body.inputs)}", where="inputs")
    tensor = body.inputs[0]
    where = f"inputs[0] ({tensor.name})"
    if tensor.datatype not in _FLOATS | _INTS:
        raise BadInput(f"datatype {tensor.datatype!r} is not a number type; send FP32", where=where)
    shape = tensor.shape
    if len(shape) == 1 and served.n_features == 1:
        shape = [shape[0], 1]
    if len(shape) != 2 or shape[1] != served.n_features or shape[0] < 1:
        raise BadInput(f"shape {tensor.shape} is not [n, {served.n_features}] (n rows of {served.n_features} "
                       "features)", where=where)
    n = shape[0]
    values = _numbers(tensor.data, f"{where}.data")  # flat row-major data, or nested rows
    if values.size != n * served.n_features:
        raise BadInput(f"shape {tensor.shape} needs {n * served.n_features} values, got {values.size}",
                       where=f"{where}.data")
    if values.ndim > 1 and values.shape != (n, served.n_features):
        raise BadInput(f"nested data of shape {list(values.shape)} is not the declared {tensor.shape}",
                       where=f"{where}.data")
    X = values.reshape(n, served.n_features)
    if tensor.datatype in _INTS and not np.array_equal(X, np.round(X)):
        raise BadInput(f"datatype {tensor.datatype} but the data has fractions", where=where)
    return X
