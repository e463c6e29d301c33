"""``mlaas4hep serve``: the remote MLaaS4HEP service (FastAPI + uvicorn over the JobManager),
with OIDC bearer tokens, per-user isolation and the original service's verbs.

FastAPI is imported only by :mod:`.app` and its routes; the engine never needs it.
"""

from .config import ServeConfig, load_config

__all__ = ["ServeConfig", "load_config"]
