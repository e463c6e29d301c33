"""Model serving (the paper's Data Inference Layer): a registry of published models, loaded
lazily into an LRU, a dynamic batcher that coalesces concurrent requests to one model into one
model call, and the TFaaS-compatible (``/tfaas``), Open Inference Protocol v2 (``/v2``) and
raw-event (``/api/v1/models/{name}/predict``) routes of ``mlaas4hep serve``.

Only :mod:`.routes` imports FastAPI; the registry and the batcher are plain Python."""

from .batcher import DynamicBatcher
from .registry import ModelRegistry, ServedModel

__all__ = ["DynamicBatcher", "ModelRegistry", "ServedModel"]
