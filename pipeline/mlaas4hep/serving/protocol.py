"""Request and response bodies of the serving routes, as pydantic types: the registry's
(``/api/v1/models``), TFaaS's (``/tfaas``) and the Open Inference Protocol v2's (``/v2``, the
KServe / Triton REST protocol: server and model metadata, readiness, and ``infer`` with JSON
tensors)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

# -- the registry --------------------------------------------------------------------------------


class ModelStats(BaseModel):
    requests: int = Field(..., description="requests served since the model was loaded")
    calls: int = Field(..., description="model calls made for them (fewer when requests were coalesced)")
    rows: int
    largest_call: int = Field(..., description="the most rows in one model call")


class ModelInfo(BaseModel):
    """A published model version and its feature contract."""

    name: str
    version: int
    versions: list[int] = Field(..., description="the versions this user may use")
    owner: str
    public: bool
    created: float
    kind: str = Field(..., description="'artifact' (a job's artifact) or 'tfaas' (a model with a params.json)")
    framework: str | None = None
    features: list[str] = Field(default_factory=list, description="the feature columns, in order")
    branches: list[str] = Field(default_factory=list, description="the branches raw events must have")
    preproc: dict[str, Any] | None = None
    labels: dict[str, Any] | None = None
    classes: list[str] | None = None
    metrics: dict[str, Any] = Field(default_factory=dict)
    tree: str | None = None
    identifier: list[str] = Field(default_factory=list, description="branches that identify an event (run, event, "
                                                                      "...), copied beside the scores")
    params: dict[str, Any] | None = Field(None, description="a TFaaS-style model's params.json")
    source: dict[str, Any] = Field(default_factory=dict, description="where it came from (a job id, an upload)")
    loaded: bool = Field(..., description="whether it is in memory now")
    stats: ModelStats | None = None


class ModelList(BaseModel):
    models: list[ModelInfo]


class PublishRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., description="the model's name: 1 to 64 letters, digits, '.', '_' or '-'")
    public: bool = Field(False, description="usable by every authenticated user (else by its owner only)")


class EventsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    events: dict[str, list[Any]] = Field(..., description="branch name to values, one per event: a number "
                                                          "(flat branch) or a list of numbers (jagged branch)")
    version: int | None = Field(None, description="default: the latest")


class EventScores(BaseModel):
    scores: list[float | None | list[float] | None] = Field(
        ..., description="per event: the probability of class 1 (several classes: one per class); null where "
                         "the event fails the cuts")
    passed: list[bool] = Field(..., description="whether each event passed the artifact's cuts")
    classes: list[str]
    model: str
    version: int


# -- TFaaS ---------------------------------------------------------------------------------------


class TFaaSRequest(BaseModel):
    keys: list[str] | None = Field(None, description="feature names in the order of the values")
    values: list[Any] = Field(..., description="one row of numbers, or a list of rows")
    model: str
    version: int | None = None


class TFaaSScore(BaseModel):
    label: str
    probability: float


# -- Open Inference Protocol v2 ------------------------------------------------------------------


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(default_factory=list)


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict)


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[Any]


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[RequestInput] = Field(..., min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: list[float]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str | None = None
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


class V2Error(BaseModel):
    error: str
