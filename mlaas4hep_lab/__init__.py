"""MLaaS4HEP Lab: the Jupyter side of MLaaS4HEP (server extension; widgets and magic to come)."""

from mlaas4hep import __version__


def _jupyter_server_extension_points() -> list[dict]:
    from .app import MLaaS4HEPLab

    return [{"module": "mlaas4hep_lab", "app": MLaaS4HEPLab}]


__all__ = ["__version__"]
